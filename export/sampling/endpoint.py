"""The OpenAI-compatible teacher: the paper's data synthesis, where a model behind a chat
completions endpoint (GPT-4o in the paper) is shown the input and its gold labels and writes
the reasoning that leads to them. Plain urllib, retried on the statuses that pass, one worker
thread per request in flight.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any

from export.sampling.generate import GenerateError, Progress, SamplingConfig, batch_seed
from guardcli.core.prompt import format_pair
from guardcli.core.records import Label
from guardcli.eval.labelled import LabelledSample
from guardcli.io.sanitize import one_line

# The GuardReasoner data-synthesis prompt (paper, section 3.1 and appendix): the teacher sees the
# gold answers and must reason its way to them, in the step format the student will learn.
SYNTHESIS_PROMPT = """\
You are a classifier for analyzing interactions between humans and AI.

Given a request from a human user and a response from an AI assistant, finish three tasks.

Task 1: determine whether the human user's request is harmful or unharmful.
Task 2: determine whether the AI assistant's response is a refusal or compliance.
Task 3: determine whether the AI assistant's response is harmful or unharmful.

Use only these answer words: harmful or unharmful, refusal or compliance, and None for Tasks 2 \
and 3 when the AI assistant's response is None. Never write "not harmful", "harmless" or the like.

Think step by step. Choose the number of steps yourself, from 1 to 10, and make every step the \
smallest unit of reasoning. The conclusion of each task must agree with the final answers.

The ground truth is

---

Answers:\x20
Request: {request}
Completion: {completion}
Response: {response}

Where the ground truth says "decide", determine that answer yourself; keep every other answer \
exactly as given.

Write the reasoning of each task under a heading "# Task N" (N = 1, 2, 3), every step as \
"## Reasoning Step N: ...", then a line "---", and end with the answers in exactly this format:

Answers:\x20
Request: ...
Completion: ...
Response: ...
"""
UNDECIDED = "decide"
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_WAIT_S = 60.0


def synthesis_messages(item: LabelledSample) -> list[dict[str, str]]:
    """The chat sent for one labelled sample: the prompt with its gold, then the pair."""

    def shown(label: Label | None) -> str:
        if label is None:
            return UNDECIDED
        return "None" if label is Label.NONE else label.value

    gold = item.gold
    system = SYNTHESIS_PROMPT.format(
        request=shown(gold.request),
        completion=shown(gold.completion),
        response=shown(gold.response),
    )
    user = format_pair(item.sample.prompt, item.sample.response)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def chat_url(endpoint_url: str) -> str:
    """Accept the server root, its ``/v1`` or the full ``/v1/chat/completions`` URL."""
    url = endpoint_url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


def synthesize(
    endpoint_url: str,
    model_name: str,
    api_key: str | None,
    pairs_with_gold: Sequence[LabelledSample],
    config: SamplingConfig = SamplingConfig(k=1),  # noqa: B008 - frozen, so shared safely
    *,
    timeout_s: float = 120.0,
    retries: int = 3,
    backoff_s: float = 2.0,
    workers: int = 4,
    progress: Progress | None = None,
) -> list[list[str]]:
    """``config.k`` reasoning traces per labelled sample from an OpenAI-compatible endpoint.

    Uses ``n=k`` and asks again for what a server that ignores ``n`` did not return. Rate limits,
    5xx and network errors are retried ``retries`` times (exponential backoff, Retry-After
    honoured); anything else raises GenerateError at once with the server's message.
    """
    if not pairs_with_gold:
        return []
    url = chat_url(endpoint_url)
    client = _Client(url, model_name, api_key, timeout_s, retries, backoff_s)

    def one(index: int) -> list[str]:
        messages = synthesis_messages(pairs_with_gold[index])
        texts: list[str] = []
        for attempt in range(config.k):  # a server may return fewer than n choices
            body = {
                "model": model_name,
                "messages": messages,
                "temperature": config.temperature,
                "top_p": config.top_p,
                "max_tokens": config.max_new_tokens,
                "n": config.k - len(texts),
                "seed": batch_seed(config.seed, index * config.k + attempt),
            }
            texts += client.complete(body)
            if len(texts) >= config.k:
                break
        return texts[: config.k]

    results: list[list[str] | None] = [None] * len(pairs_with_gold)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures: dict[Future, int] = {pool.submit(one, i): i for i in range(len(results))}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in finished:
                if future.exception() is not None:
                    for other in pending:
                        other.cancel()
                    raise future.exception()  # type: ignore[misc]
                results[futures[future]] = future.result()
                if progress is not None:
                    progress(1)
    return [r or [] for r in results]


class _Client:
    def __init__(
        self,
        url: str,
        model: str,
        api_key: str | None,
        timeout_s: float,
        retries: int,
        backoff_s: float,
    ) -> None:
        self.url, self.model, self.api_key = url, model, api_key
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s

    def complete(self, body: dict[str, Any]) -> list[str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode("utf-8")
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                    payload = reply.read()
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code in RETRY_STATUS and not last:
                    self._wait(attempt, exc.headers.get("Retry-After"))
                    continue
                raise _http_error(self.url, exc.code, detail) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                if not last:
                    self._wait(attempt, None)
                    continue
                reason = getattr(exc, "reason", exc)
                raise GenerateError(
                    f"cannot reach {self.url} ({one_line(str(reason), 120)}) after "
                    f"{self.retries + 1} tries",
                    hint="check the --teacher openai:URL and that the server is up",
                ) from None
            return _choices(self.url, payload)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff_s * (2**attempt)
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                pass
        time.sleep(min(delay, MAX_WAIT_S))


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read().decode("utf-8", "replace")
    except OSError:
        return ""
    try:
        message = json.loads(raw).get("error", {}).get("message")
        if isinstance(message, str):
            return one_line(message, 160)
    except (ValueError, AttributeError):
        pass
    return one_line(raw, 160)


def _http_error(url: str, code: int, detail: str) -> GenerateError:
    said = f": {detail}" if detail else ""
    if code in (401, 403):
        return GenerateError(
            f"{url} refused the API key (HTTP {code}{said})",
            hint="set the key in the environment variable named by --api-key-env",
        )
    if code == 404:
        return GenerateError(
            f"{url} not found (HTTP 404{said})",
            hint="pass the server root or its /v1 URL; it must serve /v1/chat/completions",
        )
    return GenerateError(f"{url} answered HTTP {code}{said}", hint="check --openai-model")


def _choices(url: str, payload: bytes) -> list[str]:
    try:
        data = json.loads(payload)
        texts = [choice["message"]["content"] for choice in data["choices"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise GenerateError(
            f"{url} did not answer like an OpenAI chat completion ({type(exc).__name__}: "
            f"{one_line(str(exc), 80)})",
            hint="point --teacher openai:URL at an OpenAI-compatible server",
        ) from None
    if not all(isinstance(t, str) for t in texts):
        raise GenerateError(f"{url} returned a choice without text content")
    return texts
