"""Fitting one sample into the model's context: the exact GuardReasoner input, cut (never
the template, and never silently) when the user's text is longer than the budget."""

from __future__ import annotations

from dataclasses import dataclass

from guardcli.core.prompt import build_input
from guardcli.core.records import Sample
from guardcli.core.tokenizer import TextCodec
from guardcli.errors import UsageError


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    truncated: bool


def input_limit(context_length: int, max_new_tokens: int, max_input_tokens: int | None) -> int:
    """Tokens an input may take: ``max_input_tokens`` when given, but never more than what
    leaves ``max_new_tokens`` free in the context, since the verdict comes at the very end of
    the generation. A budget that fills the whole context is refused: every input would be
    cut to nothing and every verdict would be noise.
    """
    room = context_length - max_new_tokens
    if room < 1:
        raise UsageError(
            f"--max-new-tokens {max_new_tokens} leaves no room for the input in this "
            f"model's {context_length}-token context",
            hint=f"lower --max-new-tokens (e.g. to {max(1, context_length // 2)})",
        )
    if max_input_tokens is None:
        return room
    return max(1, min(max_input_tokens, room))


# Each cut lands within a few tokens of the limit; more rounds than this means no progress.
_MAX_CUTS = 16


def encode_sample(codec: TextCodec, sample: Sample, limit: int) -> Encoded:
    """Tokenize the exact GuardReasoner input, cutting the user's text (never the template)
    when it is longer than ``limit`` tokens.

    The response is cut first (the request matters for all three tasks), then the prompt;
    the cut keeps the head of the text. A prompt-only sample keeps its literal ``None``
    response. Truncation is reported, never silent. Re-encoding the cut text can merge
    differently at the seam, so the cut repeats until the whole input fits.
    """
    ids = codec.encode(build_input(sample.prompt, sample.response))
    if len(ids) <= limit:
        return Encoded(ids, False)
    prompt, response = sample.prompt, sample.response
    for _ in range(_MAX_CUTS):
        excess = len(ids) - limit
        if excess <= 0:
            return Encoded(ids, True)
        if response:
            response = _cut(codec, response, excess)
        elif prompt:
            prompt = _cut(codec, prompt, excess)
        else:
            break
        ids = codec.encode(build_input(prompt, response))
    if len(ids) > limit:  # a cut that never converged: fall back to empty user text
        ids = codec.encode(build_input("", None if sample.response is None else ""))
    if len(ids) > limit:
        ids = ids[:limit]  # the template alone does not fit: a tiny context, still bounded
    return Encoded(ids, True)


def _cut(codec: TextCodec, text: str, excess_tokens: int) -> str:
    kept = codec.head(text, codec.count(text) - excess_tokens)
    return kept if len(kept) < len(text) else text[:-1]  # always progress
