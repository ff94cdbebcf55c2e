"""``guardcli serve`` over HTTP, one real server process for the module: the official
``openai`` client on /v1/moderations, plain HTTP on /v1/guard (and its stream), the probes,
metrics, logs, and every kind of bad request. Verdicts must equal ``guardcli classify``'s."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx
import pytest

from guardcli.io.outputs import FIELDS
from testkit.pairs import FIXTURE_PAIRS
from tests.cli_support import GEN as CLI_GEN
from tests.cli_support import PAIRS, PROMPT_ONLY, WITH_RESPONSE, invoke, jsonl_records
from tests.serve_support import Server, sse_events, start

pytestmark = pytest.mark.slow

# Fields that describe the run, not the verdict (timings, and the source each path names).
RUN_FIELDS = {"latency_ms", "source", "id"}


@pytest.fixture(scope="module")
def server(fixture_bundle, tmp_path_factory):
    home = tmp_path_factory.mktemp("serve-api")
    server = start(fixture_bundle, home, "--max-inputs", "16", "--max-body", "4096")
    yield server
    assert server.stop() == 0, server.stderr()


@pytest.fixture(scope="module")
def classified(fixture_bundle) -> dict[str, dict]:
    """``guardcli classify -f jsonl`` for every fixture pair: the reference verdicts."""
    records = {}
    for pair in FIXTURE_PAIRS:
        args = ["classify", "-p", pair.prompt, "-m", str(fixture_bundle), *CLI_GEN, "-f", "jsonl"]
        if pair.response is not None:
            args += ["-r", pair.response]
        [records[pair.id]] = jsonl_records(invoke(*args).stdout)
    return records


def verdict(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in RUN_FIELDS}


def client(server: Server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_openai_client_single_and_list_inputs_match_classify(server, classified):
    openai = client(server)
    pair = PAIRS["fake-id"]
    single = openai.moderations.create(input=pair.prompt)
    assert single.id.startswith("modr-") and single.model == "guardcli-fixture"
    [result] = single.results
    assert result.flagged is True
    assert not any(result.categories.model_dump().values())
    assert not any(result.category_scores.model_dump().values())

    many = openai.moderations.create(input=[p.prompt for p in PROMPT_ONLY])
    assert len(many.results) == len(PROMPT_ONLY)
    for pair, result in zip(PROMPT_ONLY, many.results, strict=True):
        record = result.model_extra["guardcli"]
        assert list(record) == list(FIELDS)
        assert verdict(record) == verdict(classified[pair.id]), pair.id
        assert result.flagged == (classified[pair.id]["request"] == "harmful"), pair.id


def test_moderation_reasoning_on_request(server):
    pair = PAIRS["fake-id"]
    answer = client(server).moderations.create(input=pair.prompt, extra_body={"reasoning": True})
    assert answer.results[0].model_extra["guardcli"]["reasoning"]["text"] == pair.trace


def test_guard_endpoint_single_and_list_match_classify(server, classified):
    pair = PAIRS["poison-dog"]
    one = httpx.post(
        f"{server.url}/v1/guard",
        json={"prompt": pair.prompt, "response": pair.response, "id": "q1"},
    )
    assert one.status_code == 200, one.text
    record = one.json()
    assert list(record) == list(FIELDS) and record["id"] == "q1"
    assert verdict(record) == verdict(classified[pair.id])

    inputs = [{"prompt": p.prompt, "response": p.response, "id": p.id} for p in WITH_RESPONSE]
    many = httpx.post(f"{server.url}/v1/guard", json={"inputs": inputs}, timeout=60)
    assert many.status_code == 200, many.text
    records = many.json()["results"]
    assert [r["id"] for r in records] == [p.id for p in WITH_RESPONSE]
    for record in records:
        assert verdict(record) == verdict(classified[record["id"]]), record["id"]


def test_guard_fast_mode_per_request(server):
    pair = PAIRS["fake-id"]
    answer = httpx.post(f"{server.url}/v1/guard", json={"prompt": pair.prompt, "mode": "fast"})
    record = answer.json()
    assert record["mode"] == "fast" and record["output_tokens"] == 0
    assert 0.0 <= record["request_score"] <= 1.0


def test_streaming_sends_the_reasoning_as_written_then_the_verdict(server, classified):
    pair = PAIRS["poison-dog"]
    body = {"prompt": pair.prompt, "response": pair.response, "stream": True, "reasoning": True}
    with httpx.stream("POST", f"{server.url}/v1/guard", json=body, timeout=60) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        text = answer.read().decode()
    events = sse_events(text)
    names = [name for name, _ in events]
    assert names[-2:] == ["verdict", "done"] and events[-1][1] == "[DONE]"
    pieces = [json.loads(data) for name, data in events if name == "reasoning"]
    assert len(pieces) > 10 and {p["index"] for p in pieces} == {0}
    assert "".join(p["text"] for p in pieces) == pair.trace
    record = json.loads(events[-2][1])
    assert record["reasoning"]["text"] == pair.trace
    assert verdict({k: v for k, v in record.items() if k != "reasoning"}) == verdict(
        classified[pair.id]
    )


def post(server: Server, path: str, content: bytes | str, **kwargs) -> httpx.Response:
    headers = {"content-type": "application/json"}
    return httpx.post(f"{server.url}{path}", content=content, headers=headers, **kwargs)


@pytest.mark.parametrize(
    ("path", "body", "status", "param", "code"),
    [
        ("/v1/moderations", b'{"input": "x"', 400, None, "invalid_json"),
        ("/v1/moderations", b"[]", 400, None, "invalid_json"),
        ("/v1/moderations", b'{"input": 5}', 400, "input", "invalid_value"),
        ("/v1/moderations", b'{"input": ""}', 400, "input", "empty"),
        ("/v1/moderations", json.dumps({"input": ["x"] * 17}), 400, "input", "too_many_inputs"),
        ("/v1/moderations", json.dumps({"input": "x" * 5000}), 413, None, "body_too_large"),
        ("/v1/guard", b'{"prompt": "x", "mode": "slow"}', 400, "mode", "invalid_value"),
        ("/v1/guard", b'{"prompt": ["x"]}', 400, "prompt", "invalid_value"),
        (
            "/v1/guard",
            b'{"prompt": "x", "max_new_tokens": 9999}',
            400,
            "max_new_tokens",
            "invalid_value",
        ),
        ("/v1/nope", b"{}", 404, None, "not_found"),
    ],
)
def test_bad_requests_get_openai_shaped_errors(server, path, body, status, param, code):
    answer = post(server, path, body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["param"], error["code"]) == (param, code)
    assert error["message"]


def test_a_chunked_body_over_the_limit_is_cut_off(server):
    def chunks():
        yield b'{"input": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    answer = httpx.post(f"{server.url}/v1/moderations", content=chunks())
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "body_too_large"


def test_the_openai_client_raises_its_own_errors(server):
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        client(server).moderations.create(input="")
    assert caught.value.code == "empty"


def test_wrong_method_probes_and_metrics(server):
    assert httpx.post(f"{server.url}/v1/moderations", json={"input": "hi"}).status_code == 200
    assert httpx.post(f"{server.url}/v1/guard", json={"prompt": 1}).status_code == 400
    assert httpx.get(f"{server.url}/v1/moderations").status_code == 405
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").json()["status"] == "ready"
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    assert 'guardcli_requests_total{route="/v1/moderations",status="200"}' in text
    assert 'guardcli_requests_total{route="/v1/guard",status="400"}' in text
    assert "guardcli_batch_size_count" in text and "guardcli_queue_depth 0" in text
    tokens = next(line for line in text.splitlines() if line.startswith("guardcli_generated"))
    assert int(tokens.split()[1]) > 0


def test_logs_hold_no_request_content_and_no_control_characters(server):
    secret = "my-secret-prompt-text"
    assert httpx.post(f"{server.url}/v1/moderations", json={"input": secret}).status_code == 200
    httpx.get(f"{server.url}/x%1b%5b31mred%0aforged")
    log = server.stderr()
    for _ in range(100):  # the line is written just after the answer is sent
        if "forged" in log:
            break
        time.sleep(0.02)
        log = server.stderr()
    assert secret not in log
    assert "\x1b" not in log and "\nforged" not in log
    assert "\\x1b[31mred\\nforged" in log


def test_a_client_that_hangs_up_gives_its_place_up(server):
    """B hangs up while A's batches run: B's input is dropped from the queue, never judged."""

    def metric(name: str) -> float:
        text = httpx.get(f"{server.url}/metrics").text
        line = next(x for x in text.splitlines() if x.startswith(name))
        return float(line.split()[1])

    before = metric("guardcli_inputs_judged")
    # Three requests of 16 (six batches of 8): B queues behind at least three batches, far
    # more than its 50 ms, on a fast machine or a loaded one (one request of 16 was not).
    inputs = [pair.prompt for pair in PROMPT_ONLY] * 8
    post = partial(httpx.post, f"{server.url}/v1/moderations", json={"input": inputs}, timeout=60)
    with ThreadPoolExecutor(3) as pool:
        firsts = [pool.submit(post) for _ in range(3)]
        for _ in range(2000):
            if metric("guardcli_queue_depth") >= 3 * 8 or any(f.done() for f in firsts):
                break
            time.sleep(0.002)
        assert not any(f.done() for f in firsts), "A finished before B could queue behind it"
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.url}/v1/moderations", json={"input": "late"}, timeout=0.05)
        assert [f.result().status_code for f in firsts] == [200] * 3
    time.sleep(0.2)
    assert metric("guardcli_inputs_judged") == before + 3 * len(inputs)
    assert "/v1/moderations 499" in server.stderr()
