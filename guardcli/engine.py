"""Greedy generation over token ids, with a KV cache, on CPU or CUDA.

The engine knows only token ids: text, prompts and parsing live elsewhere, so the whole
loop is tested with a fake backend in milliseconds (tests/test_engine.py), and a second
backend could be added without touching the CLI. One ``generate`` call is:

1. prefill: the right-padded batch is appended to the backend (one forward pass) and the
   first token of every row comes out;
2. decode: one token per row per step, reusing the KV cache, until every row has stopped —
   at EOS, at ``max_new_tokens``, or when the caller's ``should_stop`` says its answer is
   complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from guardcli.errors import ModelError


class Decoder(Protocol):
    """One batch in flight. ``step`` returns the next greedy token for every row."""

    def step(self) -> Sequence[int]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    name: str
    device: str
    context_length: int
    eos_token_ids: frozenset[int]
    pad_token_id: int

    def start(self, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> Decoder: ...


@dataclass(frozen=True)
class Completion:
    """One row's outcome. ``finish`` is "eos", "stop" (the caller's stop rule) or "length"."""

    tokens: list[int]
    finish: str
    prompt_tokens: int
    latency_s: float  # batch start until this row stopped
    prefill_s: float  # the batch's prefill (shared by its rows)


# (row, token) for every generated token, as soon as it exists: the TUI streams from here.
TokenCallback = Callable[[int, int], None]
# (row, tokens so far) -> stop now?
StopRule = Callable[[int, Sequence[int]], bool]


class Engine:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        should_stop: StopRule | None = None,
        on_token: TokenCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        if not prompts:
            return []
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        longest = max(len(p) for p in prompts)
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        budget = min(max_new_tokens, self.backend.context_length - longest)
        if budget < 1:
            raise ModelError(
                f"input of {longest} tokens leaves no room to generate in a "
                f"{self.backend.context_length}-token context",
                hint="lower --max-input-tokens",
            )
        eos = self.backend.eos_token_ids
        rows = len(prompts)
        out: list[list[int]] = [[] for _ in range(rows)]
        finish: list[str | None] = [None] * rows
        ended_at = [0.0] * rows
        start = time.perf_counter()
        decoder = self.backend.start(prompts, budget)
        prefill_s = 0.0
        try:
            for step in range(budget):
                if cancelled is not None and cancelled():
                    raise KeyboardInterrupt
                tokens = decoder.step()
                if step == 0:
                    prefill_s = time.perf_counter() - start
                now = time.perf_counter() - start
                for row, token in enumerate(tokens):
                    if finish[row] is not None:
                        continue
                    token = int(token)
                    if token in eos:
                        finish[row], ended_at[row] = "eos", now
                        continue
                    out[row].append(token)
                    if on_token is not None:
                        on_token(row, token)
                    if should_stop is not None and should_stop(row, out[row]):
                        finish[row], ended_at[row] = "stop", now
                    elif len(out[row]) >= budget:
                        finish[row], ended_at[row] = "length", now
                if all(f is not None for f in finish):
                    break
        finally:
            decoder.close()
        end = time.perf_counter() - start
        return [
            Completion(
                tokens=out[row],
                finish=finish[row] or "length",
                prompt_tokens=len(prompts[row]),
                latency_s=ended_at[row] if finish[row] else end,
                prefill_s=prefill_s,
            )
            for row in range(rows)
        ]

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


def open_engine(bundle_dir, *, device: str = "cpu", threads: int | None = None) -> Engine:  # noqa: ANN001
    """An Engine over a bundle's ONNX model (no manifest checks: see guardcli.models)."""
    from guardcli.genai import GenaiBackend, pick_device

    return Engine(GenaiBackend(bundle_dir, device=pick_device(device), threads=threads))
