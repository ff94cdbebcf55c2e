"""Greedy generation over token ids, with a KV cache, on CPU or CUDA.

The engine knows only token ids: text, prompts and parsing live elsewhere, so the whole
loop is tested with a fake backend in milliseconds (tests/test_engine.py), and a second
backend could be added without touching the CLI. One ``generate`` call is:

1. prefill: the right-padded batch is appended to the backend (one forward pass) and the
   first token of every row comes out;
2. decode: one token per row per step, reusing the KV cache, until every row has stopped —
   at EOS, at ``max_new_tokens``, when the caller's ``should_stop`` says its answer is
   complete, or (given a ``LoopRule``) when its tokens have fallen into a cycle
   (guardcli.core.loops; guardcli.core.rows decides, for both ways of generating).

With ``slots=N`` and a backend that pools (onnxruntime on CPU), the prompts go through a slot
pool instead (guardcli.core.slots): N rows decode together and a finished row's slot takes
the next prompt at once, so no step is spent on padding or on rows already done.

``choose`` is the other way to use a model (fast triage): no decoding at all. The prompt is
fed once, then at each choice a few forced tokens are appended and only the logits of the
candidate tokens are read. It runs at batch 1 on one persistent reader, so consecutive
prompts share their common head (the GuardReasoner instruction) in the KV cache: each prompt
rewinds to the longest common prefix with the previous one and appends only the rest.

Batch-1 generation (live stdin, the TUI, a server answering one request) goes through the
same reader: the GuardReasoner instruction, ~200 tokens of every prompt, is read once per
process instead of once per input, and a cascade's reasoning pass reuses the whole prompt
its triage read. Greedy tokens are the ones a fresh prefill gives (tests/test_engine.py,
tests/test_generate_reuse.py); ``Engine(reuse_prefix=False)`` turns it off for comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from guardcli.core.loops import LoopRule
from guardcli.core.rows import Completion, Rows, StopRule, TokenCallback
from guardcli.core.slots import SlotCache, run_slots
from guardcli.errors import ModelError


class Decoder(Protocol):
    """One batch in flight. ``step`` returns the next greedy token for every row."""

    def step(self) -> Sequence[int]: ...

    def close(self) -> None: ...


class Reader(Protocol):
    """A batch-1 sequence whose KV cache persists between prompts."""

    def append(self, ids: Sequence[int]) -> None: ...

    def rewind(self, length: int) -> None: ...

    def logits(self, tokens: Sequence[int]) -> Sequence[float]:
        """The next-token logits of these ids after the last appended token."""
        ...

    def next_token(self) -> int:
        """Append the greedy next token and return it (batch-1 generation)."""
        ...

    def close(self) -> None: ...


class Backend(Protocol):
    name: str
    device: str
    context_length: int
    eos_token_ids: frozenset[int]
    pad_token_id: int

    def start(self, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> Decoder: ...

    def reader(self, max_length: int) -> Reader: ...

    # Optional: ``pool(slots, max_length) -> SlotCache | None`` (guardcli.core.slots), which
    # generate(slots=N) uses when the backend has it and returns one.


@dataclass(frozen=True)
class Choice:
    """One forced-answer step: append ``lead`` (after the previous pick's tokens), then pick
    among ``options`` by the logit of each option's first token. First tokens must differ.
    With a ``threshold`` (two options only), option 0 is picked when its probability reaches
    it: a bundle's calibrated cut instead of the arg-max's implicit 0.5."""

    lead: tuple[int, ...]
    options: tuple[tuple[int, ...], ...]
    threshold: float | None = None


@dataclass(frozen=True)
class Picked:
    index: int
    probs: tuple[float, ...]  # softmax over the options' first-token logits


@dataclass(frozen=True)
class Choices:
    picks: list[Picked]
    tokens: list[int]  # every token appended after the prompt (leads and picked options)
    latency_s: float
    reused: int  # prompt tokens served from the cache of the previous prompt


_GENERATED = -1  # in Engine._cached: generated ids the reader holds after the prompt


class _Continuation:
    """A Decoder over the persistent reader: the batch-1 generation that reuses its cache."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    def step(self) -> Sequence[int]:
        return [self._reader.next_token()]

    def close(self) -> None:
        pass  # the reader stays open for the next input


class Engine:
    def __init__(self, backend: Backend, *, reuse_prefix: bool = True) -> None:
        self.backend = backend
        self.reuse_prefix = reuse_prefix
        self._reader: Reader | None = None
        self._reader_len = 0
        self._cached: list[int] = []  # the ids the reader holds, in order

    def choose(self, prompt: Sequence[int], choices: Sequence[Choice]) -> Choices:
        """Walk ``choices`` after ``prompt`` greedily by restricted softmax; see the module
        docstring. Deterministic: the same ids give the same picks, cached or not."""
        import math

        if not prompt:
            raise ValueError("the prompt needs at least one token")
        for choice in choices:
            firsts = [option[0] for option in choice.options]
            if len(choice.options) < 2 or len(set(firsts)) != len(firsts) or not all(firsts):
                raise ValueError("each choice needs options with distinct first tokens")
        need = len(prompt) + sum(len(c.lead) + max(map(len, c.options)) for c in choices)
        if need > self.backend.context_length:
            raise ModelError(
                f"input of {len(prompt)} tokens does not fit a "
                f"{self.backend.context_length}-token context with the answer tokens",
                hint="lower --max-input-tokens",
            )
        start = time.perf_counter()
        reader, keep = self._reader_for(prompt, need)
        picks: list[Picked] = []
        tokens: list[int] = []
        try:
            pending = list(prompt[keep:])
            for choice in choices:
                pending += choice.lead
                tokens += choice.lead
                if pending:
                    reader.append(pending)
                    self._cached += pending
                logits = [float(x) for x in reader.logits([o[0] for o in choice.options])]
                top = max(logits)
                weights = [math.exp(x - top) for x in logits]
                probs = tuple(w / sum(weights) for w in weights)
                if choice.threshold is not None and len(probs) == 2:
                    index = 0 if probs[0] >= choice.threshold else 1
                else:
                    index = max(range(len(probs)), key=probs.__getitem__)
                picks.append(Picked(index, probs))
                pending = list(choice.options[index])
                tokens += pending
        except BaseException:  # the cache no longer matches what we think it holds
            self.close_reader()
            raise
        # The last pick's tokens stay unappended: the next prompt rewinds past them anyway.
        return Choices(picks, tokens, time.perf_counter() - start, keep)

    def _reader_for(self, prompt: Sequence[int], need: int) -> tuple[Reader, int]:
        """The open reader, rewound to its longest common prefix with ``prompt``, and that
        prefix's length; a new reader when there is none or the current one is too short."""
        if self._reader is not None and need <= self._reader_len:
            keep = 0
            for cached, new in zip(self._cached, prompt, strict=False):
                if cached != new:
                    break
                keep += 1
            # The reader must append at least one id to have fresh logits to read.
            keep = min(keep, len(prompt) - 1)
            if keep < len(self._cached):
                try:
                    self._reader.rewind(keep)
                except BaseException:
                    self.close_reader()
                    raise
                del self._cached[keep:]
            return self._reader, keep
        self.close_reader()
        length = min(self.backend.context_length, max(need, 2048))
        self._reader, self._reader_len = self.backend.reader(length), length
        return self._reader, 0

    def close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader, self._reader_len, self._cached = None, 0, []

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        should_stop: StopRule | None = None,
        on_token: TokenCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
        loops: LoopRule | None = None,
        slots: int | None = None,
    ) -> list[Completion]:
        """Greedy completions of ``prompts``, in their order. With ``slots`` (and a backend
        that pools), at most that many rows decode together and a finished row's slot takes
        the next prompt at once (guardcli.core.slots); otherwise all rows are one batch."""
        if not prompts:
            return []
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        longest = max(len(p) for p in prompts)
        context = self.backend.context_length
        if context - longest < 1:
            raise ModelError(
                f"input of {longest} tokens leaves no room to generate in a "
                f"{context}-token context",
                hint="lower --max-input-tokens",
            )
        watch = {"eos": self.backend.eos_token_ids, "should_stop": should_stop}
        watch |= {"on_token": on_token, "loops": loops}
        cache = self._pool(slots, prompts, max_new_tokens)
        if cache is not None:
            budgets = [min(max_new_tokens, context - len(p)) for p in prompts]
            rows = Rows(budgets, **watch)
            try:
                timing = run_slots(
                    cache, prompts, rows, cancelled=cancelled, share=self.reuse_prefix
                )
            finally:
                cache.close()
            return [
                Completion(
                    tokens=rows.out[row],
                    finish=rows.finish[row] or "length",
                    prompt_tokens=len(prompts[row]),
                    latency_s=rows.ended_at[row],
                    prefill_s=timing.prefill_s[row],
                    reused=timing.reused,
                )
                for row in range(len(prompts))
            ]
        budget = min(max_new_tokens, context - longest)
        rows = Rows([budget] * len(prompts), **watch)
        start = time.perf_counter()
        decoder, reused = self._decoder(prompts, budget)
        prefill_s = 0.0
        try:
            for step in range(budget):
                if cancelled is not None and cancelled():
                    raise KeyboardInterrupt
                tokens = decoder.step()
                if step == 0:
                    prefill_s = time.perf_counter() - start
                now = time.perf_counter() - start
                for row, token in enumerate(tokens[: len(prompts)]):
                    rows.take(row, int(token), now)
                if rows.all_done():
                    break
        except BaseException:
            if isinstance(decoder, _Continuation):  # the cache holds an unknown tail now
                self.close_reader()
            raise
        finally:
            decoder.close()
        end = time.perf_counter() - start
        return [
            Completion(
                tokens=rows.out[row],
                finish=rows.finish[row] or "length",
                prompt_tokens=len(prompts[row]),
                latency_s=rows.ended_at[row] if rows.finish[row] else end,
                prefill_s=prefill_s,
                reused=reused,
            )
            for row in range(len(prompts))
        ]

    @property
    def pooling(self) -> bool:
        """Whether ``generate(slots=N)`` runs a slot pool here (guardcli.core.slots)."""
        return bool(getattr(self.backend, "pooling", False)) and hasattr(self.backend, "pool")

    def _pool(
        self, slots: int | None, prompts: Sequence[Sequence[int]], max_new_tokens: int
    ) -> SlotCache | None:
        """The backend's slot pool for these prompts, when asked for and worth it."""
        if slots is None or slots < 2 or len(prompts) < 2 or not self.pooling:
            return None
        context = self.backend.context_length
        length = max(min(context, len(p) + max_new_tokens) for p in prompts)
        return self.backend.pool(min(slots, len(prompts)), length)

    def _decoder(self, prompts: Sequence[Sequence[int]], budget: int) -> tuple[Decoder, int]:
        """A fresh batch, or at batch 1 the reader continued from its longest common prefix
        with this prompt (and how many prompt ids that prefix served)."""
        if len(prompts) != 1 or not self.reuse_prefix:
            return self.backend.start(prompts, budget), 0
        [prompt] = prompts
        reader, keep = self._reader_for(prompt, len(prompt) + budget)
        try:
            reader.append(prompt[keep:])
        except BaseException:
            self.close_reader()
            raise
        # The generated ids follow the prompt in the cache; one id that matches no token
        # stands for them, so the next input always rewinds to within this prompt.
        self._cached = [*prompt, _GENERATED]
        return _Continuation(reader), keep

    def generate_tokens(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        should_stop: StopRule | None = None,
    ) -> list[list[int]]:
        """Greedy ids only (EOS excluded): what parity tests and export validation compare."""
        result = self.generate(prompts, max_new_tokens=max_new_tokens, should_stop=should_stop)
        return [c.tokens for c in result]
