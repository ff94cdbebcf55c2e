"""guardcli.serve's pure parts: request checks, the moderation mapping, auth, options, logs,
metrics. No server, no model."""

from __future__ import annotations

import json

import pytest

from guardcli.core.records import Label, ParseStatus, Result, Sample, Scores, Verdict
from guardcli.errors import UsageError
from guardcli.io.outputs import FIELDS
from guardcli.serve.auth import authorized
from guardcli.serve.config import ServeOptions, is_loopback
from guardcli.serve.errors import ApiError
from guardcli.serve.logs import escape
from guardcli.serve.metrics import Metrics
from guardcli.serve.moderation import CATEGORIES, moderation_body
from guardcli.serve.requests import Limits, guard_call, load_json, moderation_call

LIMITS = Limits(max_inputs=3, max_new_tokens=256, mode="reason")


def refused(call, data, limits=LIMITS) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(data, limits, "rid")
    assert caught.value.status == 400
    body = caught.value.body()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    assert body["type"] == "invalid_request_error"
    return caught.value


def test_moderation_inputs_string_list_and_multimodal_text():
    one = moderation_call({"input": "hi"}, LIMITS, "rid")
    assert [s.prompt for s in one.samples] == ["hi"]
    assert one.samples[0].response is None and one.samples[0].source == "rid#0"
    many = moderation_call({"input": ["a", "b"], "model": "omni-moderation-latest"}, LIMITS, "r")
    assert [s.prompt for s in many.samples] == ["a", "b"] and many.model == "omni-moderation-latest"
    parts = [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]
    multi = moderation_call({"input": parts, "reasoning": True}, LIMITS, "rid")
    assert [s.prompt for s in multi.samples] == ["first\nsecond"] and multi.reasoning


@pytest.mark.parametrize(
    ("data", "param", "code"),
    [
        ({}, "input", "invalid_value"),
        ({"input": 3}, "input", "invalid_value"),
        ({"input": ""}, "input", "empty"),
        ({"input": "   \n"}, "input", "empty"),
        ({"input": []}, "input", "invalid_value"),
        ({"input": ["ok", 7]}, "input[1]", "invalid_value"),
        ({"input": ["ok", ""]}, "input[1]", "empty"),
        ({"input": ["a", "b", "c", "d"]}, "input", "too_many_inputs"),
        (
            {"input": [{"type": "image_url", "image_url": {"url": "x"}}]},
            "input[0]",
            "unsupported_input_type",
        ),
        ({"input": "x", "model": 5}, "model", "invalid_value"),
        ({"input": "x", "reasoning": "yes"}, "reasoning", "invalid_value"),
        ({"input": "\ud800"}, "input", "invalid_value"),
    ],
)
def test_moderation_refusals_name_the_field(data, param, code):
    error = refused(moderation_call, data)
    assert (error.param, error.code) == (param, code)


def test_guard_single_and_list_with_options():
    one = guard_call({"prompt": "p", "response": "r", "id": "x1"}, LIMITS, "rid")
    assert one.single and one.samples == (Sample("x1", "p", "r", "rid#0"),)
    assert (one.mode, one.max_new_tokens, one.stream) == ("reason", 256, False)
    data = {
        "inputs": [{"prompt": "a"}, {"prompt": "b", "response": None}],
        "mode": "fast",
        "max_new_tokens": 64,
        "reasoning": True,
        "stream": True,
    }
    many = guard_call(data, LIMITS, "rid")
    assert not many.single and [s.prompt for s in many.samples] == ["a", "b"]
    assert [s.id for s in many.samples] == ["0", "1"]
    assert (many.mode, many.max_new_tokens, many.reasoning, many.stream) == ("fast", 64, True, True)


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({}, "prompt"),
        ({"prompt": 1}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "p", "response": 2}, "response"),
        ({"prompt": "p", "response": "\udfff"}, "response"),
        ({"prompt": "p", "mode": "slow"}, "mode"),
        ({"prompt": "p", "max_new_tokens": 0}, "max_new_tokens"),
        ({"prompt": "p", "max_new_tokens": True}, "max_new_tokens"),
        ({"prompt": "p", "max_new_tokens": 257}, "max_new_tokens"),
        ({"prompt": "p", "stream": 1}, "stream"),
        ({"prompt": "p", "reasonning": True}, "reasonning"),
        ({"inputs": []}, "inputs"),
        ({"inputs": "p"}, "inputs"),
        ({"inputs": [{"prompt": "a"}], "prompt": "b"}, "inputs"),
        ({"inputs": ["a"]}, "inputs[0]"),
        ({"inputs": [{"response": "a"}]}, "inputs[0].prompt"),
        ({"inputs": [{"prompt": "a", "extra": 1}]}, "inputs[0].extra"),
        ({"inputs": [{"prompt": "a"}] * 4}, "inputs"),
    ],
)
def test_guard_refusals_name_the_field(data, param):
    assert refused(guard_call, data).param == param


@pytest.mark.parametrize("body", [b"{", b"[1, 2]", b'"text"', b"\xff\xfe", b""])
def test_bodies_that_are_not_a_json_object(body):
    with pytest.raises(ApiError) as caught:
        load_json(body)
    assert (caught.value.status, caught.value.code) == (400, "invalid_json")


def verdict_result(label: Label, status: ParseStatus = ParseStatus.OK) -> Result:
    verdict = Verdict(request=label, status=status, raw="trace", scores=Scores(request=0.75))
    return Result(Sample("0", "text", source="rid#0"), verdict)


def test_moderation_body_flags_only_what_the_model_said_and_invents_no_category():
    results = [
        verdict_result(Label.HARMFUL),
        verdict_result(Label.UNHARMFUL),
        verdict_result(Label.UNKNOWN, ParseStatus.FAILED),
    ]
    body = moderation_body(results, request_id="modr-1", model="m", reasoning=False)
    assert (body["id"], body["model"]) == ("modr-1", "m")
    assert [r["flagged"] for r in body["results"]] == [True, False, True]  # unreadable: closed
    for item in body["results"]:
        assert item["categories"] == dict.fromkeys(CATEGORIES, False)
        assert item["category_scores"] == dict.fromkeys(CATEGORIES, 0.0)
        assert all(v == [] for v in item["category_applied_input_types"].values())
        assert list(item["guardcli"]) == list(FIELDS)
    first = body["results"][0]["guardcli"]
    assert (first["request"], first["status"], first["request_score"]) == ("harmful", "ok", 0.75)
    with_reasoning = moderation_body(results[:1], request_id="x", model="m", reasoning=True)
    assert with_reasoning["results"][0]["guardcli"]["reasoning"]["text"] == "trace"


def test_the_openai_client_parses_the_moderation_body():
    from openai.types import ModerationCreateResponse

    body = moderation_body(
        [verdict_result(Label.HARMFUL)], request_id="r", model="m", reasoning=False
    )
    parsed = ModerationCreateResponse.model_validate(json.loads(json.dumps(body)))
    assert parsed.results[0].flagged is True
    assert parsed.results[0].categories.self_harm is False


def test_authorization_needs_the_exact_bearer_key():
    assert authorized(None, None) and authorized("anything", None)
    assert authorized("Bearer s3cret", "s3cret") and authorized("bearer s3cret", "s3cret")
    for header in (None, "", "s3cret", "Bearer", "Bearer s3cre", "Bearer s3cret2", "Basic s3cret"):
        assert not authorized(header, "s3cret"), header


def test_an_open_bind_needs_a_key_and_limits_must_admit_a_request():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    with pytest.raises(UsageError, match="API key"):
        ServeOptions(host="0.0.0.0")
    assert ServeOptions(host="0.0.0.0", api_key="k").api_key == "k"
    with pytest.raises(UsageError, match="empty"):
        ServeOptions(api_key="")
    with pytest.raises(UsageError, match="max-queue"):
        ServeOptions(max_inputs=10, max_queue=5)


def test_log_escape_leaves_no_control_character():
    line = escape("GET /\x1b[31mred\r\nforged line\x07\u2028\x9b")
    assert line.isprintable()
    assert "\\x1b" in line and "\\n" in line and "\\u2028" in line


def test_metrics_exposition():
    metrics = Metrics()
    metrics.request_done("/v1/guard", 200, 0.2)
    metrics.request_done("/v1/guard", 429, 0.001)
    metrics.batch_done(3, 42)
    text = metrics.render()
    assert 'guardcli_requests_total{route="/v1/guard",status="429"} 1' in text
    assert 'guardcli_request_duration_seconds_bucket{route="/v1/guard",le="0.25"} 2' in text
    assert 'guardcli_request_duration_seconds_count{route="/v1/guard"} 2' in text
    assert 'guardcli_batch_size_bucket{le="2"} 0' in text
    assert 'guardcli_batch_size_bucket{le="4"} 1' in text
    assert "guardcli_generated_tokens_total 42" in text
