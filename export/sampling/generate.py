"""k sampled outputs per model input: the teachers of distillation and the samples of HS-DPO.

Three teachers, one result shape (``list[list[str]]``, k texts per input, EOS excluded, special
tokens skipped):

* a guardcli bundle (a folder with ``guardcli.json``): onnxruntime-genai, encoded with the
  manifest's BOS rule and ``TextCodec`` exactly as ``guardcli scan`` encodes, right-padded
  batches (genai corrupts left-padded rows), ``do_sample`` with ``top_k=0`` so top-p alone
  truncates, as in transformers below;
* a Hugging Face checkpoint folder (``config.json``): transformers ``generate(do_sample=True)``,
  encoded with ``export.convert.encoding.checkpoint_codec`` (the same BOS rule), left-padded with an
  attention mask;
* an OpenAI-compatible endpoint (``synthesize``): the paper's data synthesis, where GPT-4o is
  shown the input and its gold labels and writes the reasoning that leads to them.

The k copies of every input are flattened into rows and decoded ``batch_size`` rows at a time;
batch ``b`` is seeded from ``(seed, b)``, so a run is reproducible for a given seed, k and
batch size (on one device: CPU and CUDA kernels differ).

    python -c "from export.sampling.generate import sample_outputs, SamplingConfig; ..."
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardcli.bundles.manifest import MANIFEST
from guardcli.core.prompt import format_pair
from guardcli.core.records import Label
from guardcli.errors import ExitCode, GuardError, UsageError
from guardcli.eval.labelled import LabelledSample
from guardcli.io.sanitize import one_line

Progress = Callable[[int], None]  # called with how many more inputs are done, like tqdm.update


class GenerateError(GuardError):
    """A teacher that cannot produce samples: a broken model folder, an endpoint failing."""

    exit_code = ExitCode.MODEL


@dataclass(frozen=True)
class SamplingConfig:
    k: int = 4  # outputs per input
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 1024
    seed: int = 0
    batch_size: int = 8  # rows (input copies) decoded together

    def __post_init__(self) -> None:
        problems = [
            f"{name} {value!r}"
            for name, value, ok in (
                ("k", self.k, self.k >= 1),
                ("temperature", self.temperature, self.temperature > 0),
                ("top_p", self.top_p, 0 < self.top_p <= 1),
                ("max_new_tokens", self.max_new_tokens, self.max_new_tokens >= 1),
                ("batch_size", self.batch_size, self.batch_size >= 1),
            )
            if not ok
        ]
        if problems:
            raise UsageError(
                f"bad sampling settings: {', '.join(problems)}",
                hint="k, max_new_tokens, batch_size >= 1; temperature > 0; 0 < top_p <= 1",
            )


def model_kind(model: str | Path) -> str:
    """``bundle`` (guardcli.json) or ``checkpoint`` (config.json); anything else is refused."""
    path = Path(model).expanduser()
    if (path / MANIFEST).is_file():
        return "bundle"
    if (path / "config.json").is_file():
        return "checkpoint"
    raise GenerateError(
        f"{model} is neither a guardcli bundle (no {MANIFEST}) nor a Hugging Face checkpoint "
        "(no config.json)",
        hint="pass a folder made by export.convert or a transformers save_pretrained folder",
    )


def sample_outputs(
    model: str | Path,
    inputs: Sequence[str],
    config: SamplingConfig,
    *,
    progress: Progress | None = None,
    device: str = "cpu",
) -> list[list[str]]:
    """``config.k`` sampled outputs for every full model input (``build_input`` text).

    ``device``: cpu, cuda or auto. The backend is picked from the folder (``model_kind``).
    """
    if not inputs:
        return []
    path = Path(model).expanduser()
    run = _genai_rows if model_kind(path) == "bundle" else _torch_rows
    rows = [index for index in range(len(inputs)) for _ in range(config.k)]
    texts: list[str] = []
    done = 0
    generate = run(path, config, device)
    for batch, start in enumerate(range(0, len(rows), config.batch_size)):
        chunk = rows[start : start + config.batch_size]
        texts += generate([inputs[i] for i in chunk], batch_seed(config.seed, batch))
        finished = len(texts) // config.k
        if progress is not None and finished > done:
            progress(finished - done)
        done = finished
    return [texts[i * config.k : (i + 1) * config.k] for i in range(len(inputs))]


def batch_seed(seed: int, batch: int) -> int:
    """Distinct seeds per batch that do not overlap between neighbouring run seeds."""
    return (seed * 1_000_003 + batch) % (2**31 - 1)


RowGenerator = Callable[[list[str], int], list[str]]


def _genai_rows(bundle: Path, config: SamplingConfig, device: str) -> RowGenerator:
    from guardcli.backends.genai import pick_device
    from guardcli.bundles.resolve import check_bundle
    from guardcli.core.engine import Engine
    from guardcli.core.tokenizer import TextCodec

    manifest = check_bundle(bundle)
    codec = TextCodec.for_bundle(bundle, manifest)
    backend = _sampling_backend(bundle, pick_device(device), config)
    engine = Engine(backend)

    def generate(texts: list[str], seed: int) -> list[str]:
        backend.seed = seed
        done = engine.generate(
            [codec.encode(t) for t in texts], max_new_tokens=config.max_new_tokens
        )
        return [codec.decode(c.tokens) for c in done]

    return generate


def _sampling_backend(bundle: Path, device: str, config: SamplingConfig):  # noqa: ANN202
    """guardcli's GenaiBackend (same loading, padding, EOS ids), sampling instead of greedy."""
    from guardcli.backends.genai import GenaiBackend

    class SamplingBackend(GenaiBackend):
        seed = 0

        def start(self, prompts, max_new_tokens):  # noqa: ANN001, ANN202
            options = {
                "do_sample": True,
                "temperature": config.temperature,
                "top_p": config.top_p,
                "top_k": 0,  # no top-k cut: nucleus sampling only, like the HF path
                "random_seed": self.seed,
            }
            return self.start_search(prompts, max_new_tokens, options, "sampling")

    return SamplingBackend(bundle, device=device)


def _torch_rows(checkpoint: Path, config: SamplingConfig, device: str) -> RowGenerator:
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from export.convert.encoding import checkpoint_codec

    hf_logging.disable_progress_bar()

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    codec = checkpoint_codec(checkpoint)
    try:
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types
        raise GenerateError(f"cannot load {checkpoint} with transformers: {exc}") from exc
    model.to(device).eval()
    eos = _eos_ids(model)
    pad = model.generation_config.pad_token_id
    pad = eos[0] if pad is None else int(pad)
    context = getattr(model.config, "max_position_embeddings", None)

    def generate(texts: list[str], seed: int) -> list[str]:
        encoded = [codec.encode(t) for t in texts]
        width = max(len(ids) for ids in encoded)
        budget = (
            config.max_new_tokens
            if context is None
            else min(config.max_new_tokens, context - width)
        )
        if budget < 1:
            raise GenerateError(
                f"an input of {width} tokens leaves no room to generate in a "
                f"{context}-token context",
                hint="drop or shorten the longest inputs",
            )
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, tokens in enumerate(encoded):  # left padding: every row ends at the same place
            ids[row, width - len(tokens) :] = torch.tensor(tokens)
            mask[row, width - len(tokens) :] = 1
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = model.generate(
                ids.to(device),
                attention_mask=mask.to(device),
                do_sample=True,
                temperature=config.temperature,
                top_p=config.top_p,
                top_k=0,
                max_new_tokens=budget,
                eos_token_id=eos,
                pad_token_id=pad,
            )
        return [codec.decode(_until_eos(row[width:].tolist(), eos)) for row in out]

    return generate


def _eos_ids(model: Any) -> list[int]:
    for source in (model.generation_config, model.config):
        value = getattr(source, "eos_token_id", None)
        if value is not None:
            return [int(v) for v in (value if isinstance(value, list) else [value])]
    raise GenerateError("the checkpoint names no eos_token_id", hint="set it in config.json")


def _until_eos(tokens: list[int], eos: list[int]) -> list[int]:
    for at, token in enumerate(tokens):
        if token in eos:
            return tokens[:at]
    return tokens


# ---- the OpenAI-compatible teacher ---------------------------------------------------------------

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
    config: SamplingConfig = SamplingConfig(k=1),
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
