"""One record -> a Sample (or the Skip that says what is wrong with it).

A JSON object is read by our fields (``--prompt-field``/``--response-field``/``--id-field``),
else as a chat (``messages``: the last user turn and the assistant's reply to it), else as
GuardReasoner data (an ``input`` holding "Human user: ... AI assistant: ..."). CSV rows come
through ``checked_sample`` too, so every reader refuses the same bad text the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from guardcli.core.prompt import split_input
from guardcli.core.records import Sample, Skip
from guardcli.io.options import InputOptions
from guardcli.io.sanitize import one_line


def json_type(value: object) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def key_list(keys: Iterable[str], limit: int = 5) -> str:
    keys = [one_line(str(key), 40) for key in keys]
    if not keys:
        return "none"
    shown = ", ".join(keys[:limit])
    return shown + (f", +{len(keys) - limit} more" if len(keys) > limit else "")


def sample_of(obj: dict, where: str, options: InputOptions) -> Sample | Skip:
    """One JSON object -> a Sample: our fields, else chat ``messages``, else GuardReasoner."""
    prompt_field, response_field = options.prompt_field, options.response_field
    if prompt_field in obj:
        prompt, response = obj[prompt_field], obj.get(response_field)
        for field, value in ((prompt_field, prompt), (response_field, response)):
            if value is not None and not isinstance(value, str):
                kind = json_type(value)
                return Skip(where, f"'{field}' is a {kind}, not a string - fix the record")
        if prompt is None:
            return Skip(where, f"'{prompt_field}' is null - give it the text to scan")
    elif isinstance(obj.get("messages"), list):
        turns = _from_messages(obj["messages"], where)
        if isinstance(turns, Skip):
            return turns
        prompt, response = turns
    elif isinstance(obj.get("input"), str) and (pair := split_input(obj["input"])) is not None:
        prompt, response = pair  # GuardReasoner data: {"instruction", "input", "output"}
    else:
        return Skip(
            where,
            f"no '{prompt_field}' field (keys: {key_list(obj)}) - use --prompt-field NAME",
        )
    raw_id = obj.get(options.id_field)
    if raw_id is None or raw_id == "":
        ident = where
    else:
        ident = raw_id if isinstance(raw_id, str) else json.dumps(raw_id, ensure_ascii=False)
    return checked_sample(ident, prompt, response, where)


def checked_sample(ident: str, prompt: str, response: str | None, where: str) -> Sample | Skip:
    if not prompt.strip():
        return Skip(where, "empty prompt - nothing to scan")
    for text in (ident, prompt, response or ""):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape: nothing can use it
            return Skip(where, "invalid \\u escape (a lone surrogate) - fix the record")
    return Sample(id=ident, prompt=prompt, response=response, source=where)


def _content(content: object) -> str | None:
    """A chat turn's text: a string, or the text parts of a multi-part content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part if isinstance(part, str) else part.get("text")
            for part in content
            if isinstance(part, str) or (isinstance(part, dict) and part.get("type") == "text")
        ]
        texts = [part for part in parts if isinstance(part, str)]
        return "\n".join(texts) if texts else None
    return None


def _from_messages(messages: list, where: str) -> tuple[str, str | None] | Skip:
    """The last user turn is what is being judged; the assistant's reply to it, if any."""
    last = None
    for index, turn in enumerate(messages):
        if isinstance(turn, dict) and turn.get("role") == "user":
            last = index
    if last is None:
        return Skip(where, "no 'user' turn in 'messages' - nothing to scan")
    prompt = _content(messages[last].get("content"))
    if prompt is None:
        return Skip(where, "the last 'user' turn has no text content - nothing to scan")
    response = None
    if last + 1 < len(messages):
        reply = messages[last + 1]
        if isinstance(reply, dict) and reply.get("role") == "assistant":
            response = _content(reply.get("content"))
    return prompt, response
