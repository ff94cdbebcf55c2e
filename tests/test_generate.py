"""export.sampling: sampling settings, the OpenAI-compatible teacher against a local fake server,
and (slow) seeded sampling from the fixture bundle and the fixture checkpoint.

    GUARDCLI_TEST_CACHE=1 pytest tests/test_generate.py          # add -m 'not slow' to skip models
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from export.sampling.endpoint import SYNTHESIS_PROMPT, chat_url, synthesis_messages, synthesize
from export.sampling.generate import GenerateError, SamplingConfig, model_kind, sample_outputs
from guardcli.core.prompt import format_pair
from guardcli.core.records import Label, Sample
from guardcli.errors import UsageError
from guardcli.eval.labelled import Gold, LabelledSample

# ---- a fake OpenAI-compatible server -----------------------------------------------------------

Reply = tuple[int, dict | str, dict[str, str]]  # status, JSON body (or raw text), headers


def choices(*texts: str) -> Reply:
    return 200, {"choices": [{"message": {"role": "assistant", "content": t}} for t in texts]}, {}


@dataclass
class FakeOpenAI:
    """Answers POST /v1/chat/completions with ``respond(body, call_number)``; records requests."""

    respond: Callable[[dict, int], Reply]
    requests: list[tuple[str, dict[str, str], dict]] = field(default_factory=list)
    url: str = ""

    def __enter__(self) -> FakeOpenAI:
        fake = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw)
                with lock:
                    fake.requests.append((self.path, dict(self.headers), body))
                    number = len(fake.requests)
                if self.path != "/v1/chat/completions":
                    status, payload, headers = 404, {"error": {"message": "no route"}}, {}
                else:
                    status, payload, headers = fake.respond(body, number)
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # noqa: ANN002 - keep pytest output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _item(prompt: str = "How do I pick a lock?", **gold: Label) -> LabelledSample:
    """A labelled pair whose AI response is always the same text (``gold`` is by task)."""
    sample = Sample(id=prompt, prompt=prompt, response="Use a tension wrench.")
    return LabelledSample(sample, Gold(**gold))


TRACE = "## Reasoning Step 1: ...\n---\n\nAnswers: \nRequest: harmful\nCompletion: compliance\n"


# ---- settings ----------------------------------------------------------------------------------


def test_sampling_config_defaults_and_validation():
    assert SamplingConfig() == SamplingConfig(
        k=4, temperature=0.7, top_p=0.95, max_new_tokens=1024, seed=0, batch_size=8
    )
    with pytest.raises(UsageError, match="k 0.*top_p 1.5"):
        SamplingConfig(k=0, top_p=1.5)
    with pytest.raises(UsageError, match="temperature 0"):
        SamplingConfig(temperature=0)


def test_model_kind(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "guardcli.json").write_text("{}")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.json").write_text("{}")
    assert model_kind(tmp_path / "b") == "bundle"
    assert model_kind(tmp_path / "c") == "checkpoint"
    with pytest.raises(GenerateError, match="neither a guardcli bundle"):
        model_kind(tmp_path)
    with pytest.raises(GenerateError):
        sample_outputs(tmp_path, ["x"], SamplingConfig())


def test_no_inputs_no_work(tmp_path):
    assert sample_outputs(tmp_path / "absent", [], SamplingConfig()) == []
    assert synthesize("http://127.0.0.1:9", "m", None, []) == []


@pytest.mark.parametrize(
    "given",
    [
        "http://h:1",
        "http://h:1/",
        "http://h:1/v1",
        "http://h:1/v1/",
        "http://h:1/v1/chat/completions",
    ],
)
def test_chat_url(given):
    assert chat_url(given) == "http://h:1/v1/chat/completions"


def test_synthesis_messages_show_gold_and_the_pair():
    item = _item(request=Label.HARMFUL, response=Label.UNHARMFUL)
    system, user = synthesis_messages(item)
    assert system["role"] == "system" and user["role"] == "user"
    assert user["content"] == format_pair(item.sample.prompt, item.sample.response)
    assert (
        "Answers: \nRequest: harmful\nCompletion: decide\nResponse: unharmful\n"
        in (system["content"])
    )
    gold = Gold(request=Label.UNHARMFUL, completion=Label.NONE, response=Label.NONE)
    prompt_only = LabelledSample(Sample("a", "hi"), gold)
    system, user = synthesis_messages(prompt_only)
    assert "Request: unharmful\nCompletion: None\nResponse: None\n" in system["content"]
    assert user["content"].endswith("AI assistant:\nNone\n\n")
    assert "{" not in SYNTHESIS_PROMPT.replace("{request}", "").replace("{completion}", "").replace(
        "{response}", ""
    )


# ---- the HTTP teacher --------------------------------------------------------------------------


def test_synthesize_posts_chat_completions():
    with FakeOpenAI(lambda body, n: choices(*[f"{TRACE}#{i}" for i in range(body["n"])])) as srv:
        out = synthesize(
            srv.url,
            "gpt-4o-2024-08-06",
            "sk-test",
            [_item("a", request=Label.HARMFUL), _item("b", request=Label.UNHARMFUL)],
            SamplingConfig(k=2, temperature=0.5, top_p=0.9, max_new_tokens=321, seed=7),
            workers=1,
        )
    assert out == [[f"{TRACE}#0", f"{TRACE}#1"], [f"{TRACE}#0", f"{TRACE}#1"]]
    assert len(srv.requests) == 2
    path, headers, body = srv.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "gpt-4o-2024-08-06"
    assert (body["n"], body["temperature"], body["top_p"], body["max_tokens"]) == (2, 0.5, 0.9, 321)
    assert body["messages"] == synthesis_messages(_item("a", request=Label.HARMFUL))
    assert {b["messages"][1]["content"].split("\n")[1] for _, _, b in srv.requests} == {"a", "b"}


def test_synthesize_keeps_input_order_with_parallel_workers():
    def respond(body, n):
        return choices(body["messages"][1]["content"])

    items = [_item(f"prompt {i}", request=Label.HARMFUL) for i in range(12)]
    with FakeOpenAI(respond) as srv:
        out = synthesize(srv.url, "m", None, items, SamplingConfig(k=1), workers=4)
    assert [o[0] for o in out] == [format_pair(i.sample.prompt, i.sample.response) for i in items]
    assert "Authorization" not in srv.requests[0][1]


def test_synthesize_asks_again_when_the_server_ignores_n():
    with FakeOpenAI(lambda body, n: choices(f"trace {n}")) as srv:
        (out,) = synthesize(srv.url, "m", None, [_item(request=Label.HARMFUL)], SamplingConfig(k=3))
    assert out == ["trace 1", "trace 2", "trace 3"]
    assert [b["n"] for _, _, b in srv.requests] == [3, 2, 1]


def test_synthesize_retries_rate_limits_and_server_errors():
    script = {1: (429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}),
              2: (503, "busy", {})}  # fmt: skip
    with FakeOpenAI(lambda body, n: script.get(n, choices("ok"))) as srv:
        out = synthesize(srv.url, "m", None, [_item(request=Label.HARMFUL)], SamplingConfig(k=1),
                         retries=2, backoff_s=0)  # fmt: skip
    assert out == [["ok"]] and len(srv.requests) == 3


def test_synthesize_gives_up_after_retries():
    with FakeOpenAI(lambda body, n: (500, {"error": {"message": "boom"}}, {})) as srv:
        with pytest.raises(GenerateError, match=r"HTTP 500: boom"):
            synthesize(srv.url, "m", None, [_item(request=Label.HARMFUL)], SamplingConfig(k=1),
                       retries=2, backoff_s=0)  # fmt: skip
    assert len(srv.requests) == 3


def test_synthesize_bad_key_fails_at_once():
    with FakeOpenAI(lambda body, n: (401, {"error": {"message": "Incorrect API key"}}, {})) as srv:
        with pytest.raises(GenerateError, match="refused the API key.*Incorrect API key") as err:
            synthesize(srv.url, "m", "bad", [_item(request=Label.HARMFUL)], SamplingConfig(k=1),
                       retries=3, backoff_s=0)  # fmt: skip
    assert len(srv.requests) == 1
    assert "\n" not in str(err.value) and "--api-key-env" in str(err.value)


def test_synthesize_wrong_path_and_non_openai_answers():
    with FakeOpenAI(lambda body, n: (200, {"result": "hi"}, {})) as srv:
        with pytest.raises(GenerateError, match="not found"):
            synthesize(srv.url + "/api", "m", None, [_item(request=Label.HARMFUL)])
        with pytest.raises(GenerateError, match="did not answer like an OpenAI chat completion"):
            synthesize(srv.url, "m", None, [_item(request=Label.HARMFUL)])


def test_synthesize_unreachable_server():
    with FakeOpenAI(lambda body, n: choices("x")) as srv:
        url = srv.url
    with pytest.raises(GenerateError, match="cannot reach .* after 2 tries"):
        synthesize(url, "m", None, [_item(request=Label.HARMFUL)], retries=1, backoff_s=0,
                   timeout_s=5)  # fmt: skip


# ---- sampling the fixture model (slow) ---------------------------------------------------------


def _fixture_inputs():
    from testkit.pairs import FIXTURE_PAIRS

    return FIXTURE_PAIRS[:3], [p.model_input() for p in FIXTURE_PAIRS[:3]]


@pytest.fixture(params=["bundle", "checkpoint"])
def fixture_model(request):
    """The fixture bundle (onnxruntime-genai) and the checkpoint it was converted from."""
    path = request.getfixturevalue(f"fixture_{request.param}")
    assert model_kind(path) == request.param
    return path


@pytest.mark.slow
def test_sampling_is_seeded(fixture_model):
    pairs, inputs = _fixture_inputs()
    hot = SamplingConfig(k=3, temperature=1.5, top_p=1.0, max_new_tokens=48, batch_size=4)
    ticks: list[int] = []
    first = sample_outputs(fixture_model, inputs, hot, progress=ticks.append)
    again = sample_outputs(fixture_model, inputs, hot)
    other = sample_outputs(fixture_model, inputs, SamplingConfig(**{**hot.__dict__, "seed": 1}))
    assert [len(outs) for outs in first] == [3, 3, 3]
    assert sum(ticks) == len(inputs) and all(t > 0 for t in ticks)
    assert first == again
    assert first != other
    # a hot temperature really samples: the copies of one input differ from each other
    assert any(len(set(outs)) > 1 for outs in first)
    assert all(isinstance(text, str) and text for outs in first for text in outs)


@pytest.mark.slow
def test_low_temperature_reproduces_the_greedy_trace(fixture_model):
    pairs, inputs = _fixture_inputs()
    cold = SamplingConfig(k=2, temperature=0.01, max_new_tokens=300, batch_size=3)
    outputs = sample_outputs(fixture_model, inputs, cold)
    # EOS excluded and special tokens skipped: exactly the trace text
    assert outputs == [[pair.trace, pair.trace] for pair in pairs]


@pytest.mark.slow
def test_a_time_limit_stops_between_batches_and_leaves_the_rest_unsampled(
    fixture_model, monkeypatch
):
    """A GPU lease's share: batches stop at the limit, and what was sampled is kept (the
    distillation then counts the inputs without candidates)."""
    import itertools

    from export.sampling import generate

    _, inputs = _fixture_inputs()
    config = SamplingConfig(k=2, max_new_tokens=8, batch_size=3, time_limit=1.5)
    ticks = itertools.count()  # start 0, before batch 0: 1 s, before batch 1: 2 s (stop)
    monkeypatch.setattr(generate.time, "perf_counter", lambda: float(next(ticks)))
    outputs = sample_outputs(fixture_model, inputs, config)
    assert [len(outs) for outs in outputs] == [2, 1, 0]  # one batch of 3 rows, k = 2
    monkeypatch.undo()
    none = sample_outputs(fixture_model, inputs, SamplingConfig(k=2, time_limit=0))
    assert none == [[], [], []]
