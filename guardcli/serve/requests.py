"""Request bodies -> typed calls, or an ApiError naming what to fix.

Every shape check happens here, before anything is queued: a request either becomes a list
of Samples with checked options or a 400 that says which field is wrong and why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from guardcli.core.guard import MODES
from guardcli.core.records import Sample
from guardcli.errors import one_of
from guardcli.serve.errors import ApiError, invalid

GUARD_KEYS = frozenset(
    {"prompt", "response", "id", "inputs", "mode", "reasoning", "max_new_tokens", "stream"}
)


@dataclass(frozen=True)
class Limits:
    max_inputs: int
    max_new_tokens: int  # the server's budget: a request may lower it, never raise it
    mode: str  # the server's --mode, used when a request names none


@dataclass(frozen=True)
class Call:
    """One checked request: what to judge and how."""

    samples: tuple[Sample, ...]
    mode: str
    max_new_tokens: int
    reasoning: bool = False
    stream: bool = False
    single: bool = True  # /v1/guard: one object in, one record out
    model: str | None = None  # /v1/moderations: what the client named (accepted, not used)


def load_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid(
            f"the body is not valid JSON ({exc.__class__.__name__}: {exc})", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise invalid(f"the body must be a JSON object, not {_kind(data)}", code="invalid_json")
    return data


def moderation_call(data: dict[str, Any], limits: Limits, request_id: str) -> Call:
    """OpenAI's moderation body: ``input`` is a string, a list of strings, or a list of
    multimodal parts (whose text parts are judged as one input)."""
    if "input" not in data:
        raise invalid("'input' is required: a string or a list of strings", param="input")
    raw = data["input"]
    if isinstance(raw, str):
        texts = [_text(raw, "input")]
    elif isinstance(raw, list):
        if not raw:
            raise invalid("'input' is an empty list: give at least one string", param="input")
        if all(isinstance(item, dict) for item in raw):
            texts = [_multimodal(raw)]
        else:
            texts = [_text(item, f"input[{i}]") for i, item in enumerate(raw)]
    else:
        raise invalid(
            f"'input' must be a string or a list of strings, not {_kind(raw)}", param="input"
        )
    _check_count(len(texts), limits, "input")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise invalid(f"'model' must be a string, not {_kind(model)}", param="model")
    samples = tuple(
        Sample(id=str(i), prompt=text, source=f"{request_id}#{i}") for i, text in enumerate(texts)
    )
    reasoning = _bool(data, "reasoning")
    return Call(samples, limits.mode, limits.max_new_tokens, reasoning=reasoning, model=model)


def guard_call(data: dict[str, Any], limits: Limits, request_id: str) -> Call:
    """The native body: ``{prompt, response?, id?}`` or ``{inputs: [...]}``, with options."""
    unknown = sorted(set(data) - GUARD_KEYS)
    if unknown:
        raise invalid(
            f"unknown field {unknown[0]!r}; known: {', '.join(sorted(GUARD_KEYS))}",
            param=unknown[0],
            code="unknown_field",
        )
    if "inputs" in data:
        if "prompt" in data or "response" in data:
            raise invalid("give either 'prompt' or 'inputs', not both", param="inputs")
        items = data["inputs"]
        if not isinstance(items, list) or not items:
            raise invalid("'inputs' must be a non-empty list of objects", param="inputs")
        _check_count(len(items), limits, "inputs")
        samples = tuple(_pair(item, f"inputs[{i}]", i, request_id) for i, item in enumerate(items))
        single = False
    else:
        samples = (_pair(data, "", 0, request_id),)
        single = True
    mode = data.get("mode", limits.mode)
    if mode not in MODES:
        raise invalid(f"'mode' must be {one_of(MODES)}, not {mode!r}", param="mode")
    budget = data.get("max_new_tokens", limits.max_new_tokens)
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise invalid("'max_new_tokens' must be a positive integer", param="max_new_tokens")
    if budget > limits.max_new_tokens:
        raise invalid(
            f"'max_new_tokens' {budget} is above this server's budget of {limits.max_new_tokens}",
            param="max_new_tokens",
        )
    return Call(
        samples,
        mode,
        budget,
        reasoning=_bool(data, "reasoning"),
        stream=_bool(data, "stream"),
        single=single,
    )


def _pair(item: Any, where: str, index: int, request_id: str) -> Sample:
    dot = f"{where}." if where else ""
    if not isinstance(item, dict):
        raise invalid(f"'{where}' must be an object with 'prompt'", param=where)
    if "prompt" not in item:
        raise invalid(f"'{dot}prompt' is required", param=f"{dot}prompt")
    if where and set(item) - {"prompt", "response", "id"}:
        extra = sorted(set(item) - {"prompt", "response", "id"})[0]
        raise invalid(f"unknown field '{dot}{extra}'", param=f"{dot}{extra}", code="unknown_field")
    prompt = _text(item["prompt"], f"{dot}prompt")
    response = item.get("response")
    if response is not None and not isinstance(response, str):
        raise invalid(
            f"'{dot}response' must be a string or null, not {_kind(response)}",
            param=f"{dot}response",
        )
    if response is not None:
        response = _utf8(response, f"{dot}response")
    sample_id = item.get("id", str(index))
    if not isinstance(sample_id, str | int) or isinstance(sample_id, bool):
        raise invalid(f"'{dot}id' must be a string", param=f"{dot}id")
    return Sample(
        id=str(sample_id), prompt=prompt, response=response, source=f"{request_id}#{index}"
    )


def _multimodal(parts: list[dict[str, Any]]) -> str:
    texts = []
    for i, part in enumerate(parts):
        kind = part.get("type")
        if kind == "text":
            texts.append(_text(part.get("text"), f"input[{i}].text"))
        elif kind == "image_url":
            raise invalid(
                f"input[{i}] is an image: this guard reads text only; send the text parts",
                param=f"input[{i}]",
                code="unsupported_input_type",
            )
        else:
            raise invalid(f"input[{i}].type must be 'text', not {kind!r}", param=f"input[{i}].type")
    return "\n".join(texts)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"'{where}' must be a string, not {_kind(value)}", param=where)
    if not value.strip():
        raise invalid(f"'{where}' is empty: give the text to judge", param=where, code="empty")
    return _utf8(value, where)


def _utf8(value: str, where: str) -> str:
    """JSON's \\ud800 escapes can smuggle lone surrogates, which no tokenizer can encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(
            f"'{where}' holds an unpaired UTF-16 surrogate: send valid Unicode text", param=where
        ) from None
    return value


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise invalid(f"'{key}' must be true or false, not {_kind(value)}", param=key)
    return value


def _check_count(count: int, limits: Limits, param: str) -> None:
    if count > limits.max_inputs:
        raise ApiError(
            400,
            f"{count} inputs in one request; this server takes at most {limits.max_inputs} "
            "(--max-inputs): split the request",
            param=param,
            code="too_many_inputs",
        )


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)
