"""A fake backend: deterministic next-token rules, no model, milliseconds per test."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class FakeBackend:
    """``rule(context) -> next token`` over the full token context of a row.

    Records what it was asked to do so tests can assert the engine's calls.
    """

    rule: Callable[[Sequence[int]], int]
    context_length: int = 512
    eos_token_ids: frozenset[int] = frozenset({0})
    pad_token_id: int = 0
    name: str = "fake"
    device: str = "cpu"
    # every generation's prompts and budget; a batch-1 one continued on a reader (the
    # engine's prefix cache) is logged with budget None when its first token is asked for
    started: list[tuple[list[list[int]], int | None]] = field(default_factory=list)
    steps: int = 0
    # ``logit(context, token)`` for readers (fast triage); default: 5 for rule(context), else 0
    logit: Callable[[Sequence[int], int], float] | None = None
    appended: list[list[int]] = field(default_factory=list)  # every reader.append, in order
    rewinds: list[int] = field(default_factory=list)
    readers: int = 0

    def reader(self, max_length: int):
        backend = self
        backend.readers += 1

        class _Reader:
            def __init__(self) -> None:
                self.context: list[int] = []
                self.fresh = False  # ids appended since the last generated token

            def append(self, ids: Sequence[int]) -> None:
                backend.appended.append(list(ids))
                self.context += ids
                self.fresh = True
                assert len(self.context) <= max_length, "appended past the reader's length"

            def rewind(self, length: int) -> None:
                backend.rewinds.append(length)
                del self.context[length:]

            def logits(self, tokens: Sequence[int]) -> list[float]:
                assert self.context, "logits read before any append"
                if backend.logit is not None:
                    return [backend.logit(self.context, t) for t in tokens]
                best = backend.rule(self.context)
                return [5.0 if t == best else 0.0 for t in tokens]

            def next_token(self) -> int:
                assert self.context, "generated before any append"
                if self.fresh:
                    backend.started.append(([list(self.context)], None))
                    self.fresh = False
                backend.steps += 1
                token = backend.rule(self.context)
                self.context.append(token)
                return token

            def close(self) -> None:
                pass

        return _Reader()

    def start(self, prompts: Sequence[Sequence[int]], max_new_tokens: int):
        self.started.append(([list(p) for p in prompts], max_new_tokens))
        contexts = [list(p) for p in prompts]
        backend = self

        class _Decoder:
            closed = False

            def step(self) -> list[int]:
                backend.steps += 1
                out = []
                for ctx in contexts:
                    token = backend.rule(ctx)
                    ctx.append(token)
                    out.append(token)
                return out

            def close(self) -> None:
                _Decoder.closed = True

        return _Decoder()


def script(text_ids: dict[int, list[int]], eos: int = 0) -> Callable[[Sequence[int]], int]:
    """Row whose first token is k emits text_ids[k] then EOS forever."""

    def rule(ctx: Sequence[int]) -> int:
        planned = text_ids[ctx[0]]
        produced = len(ctx) - prompt_len[ctx[0]]
        return planned[produced] if produced < len(planned) else eos

    prompt_len: dict[int, int] = {}

    def wrapped(ctx: Sequence[int]) -> int:
        prompt_len.setdefault(ctx[0], len(ctx))
        return rule(ctx)

    return wrapped
