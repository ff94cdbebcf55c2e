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
    # generate(slots=N) runs a slot pool (guardcli.core.slots) only when this is set
    pooling: bool = False
    fills: list[tuple[int, list[int], int]] = field(default_factory=list)  # (slot, ids, shared)
    shared: list[list[int]] = field(default_factory=list)  # every pool's share()
    step_rows: list[int] = field(default_factory=list)  # rows in each pool step
    pools: list[tuple[int, int]] = field(default_factory=list)  # (slots, max_length)

    def pool(self, slots: int, max_length: int):
        backend = self
        backend.pools.append((slots, max_length))

        class _Cache:
            def __init__(self) -> None:
                self.slots = slots
                self.rows: list[list[int] | None] = [None] * slots
                self.head: list[int] = []
                self.closed = False

            def share(self, ids: Sequence[int]) -> None:
                backend.shared.append(list(ids))
                self.head = list(ids)

            def fill(self, slot: int, ids: Sequence[int], shared: int) -> int:
                assert 0 <= slot < slots and len(ids) <= max_length
                assert list(ids[:shared]) == self.head[:shared], "copied a head it was not given"
                backend.fills.append((slot, list(ids), shared))
                self.rows[slot] = list(ids)
                return backend.rule(self.rows[slot])

            def move(self, dst: int, src: int) -> None:
                assert dst < src, "rows move down, to the lowest free slots"
                self.rows[dst], self.rows[src] = self.rows[src], None

            def step(self, tokens: Sequence[int]) -> list[int]:
                backend.steps += 1
                backend.step_rows.append(len(tokens))
                out = []
                for slot, token in enumerate(tokens):
                    row = self.rows[slot]
                    assert row is not None, f"slot {slot} stepped while empty"
                    row.append(token)
                    assert len(row) <= max_length, "a row ran past the pool's length"
                    out.append(backend.rule(row))
                return out

            def close(self) -> None:
                self.closed = True

        return _Cache()

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
