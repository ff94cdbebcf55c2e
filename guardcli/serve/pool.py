"""One loaded Guard, judged in several ways: a view per (mode, budget), sharing its engine.

A request may choose its mode and lower its generation budget; each combination gets its own
Guard over the same engine, codec and thresholds, so nothing is loaded twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from guardcli.core.records import Result, Sample
from guardcli.serve.batcher import BatchKey, TextSink

if TYPE_CHECKING:
    from guardcli.core.guard import Guard


class GuardPool:
    def __init__(self, guard: Guard) -> None:
        self.base = guard
        self._views: dict[BatchKey, Guard] = {}

    @property
    def default_key(self) -> BatchKey:
        return BatchKey(self.base.options.mode, self.base.options.max_new_tokens)

    def judge(
        self,
        key: BatchKey,
        samples: Sequence[Sample],
        on_text: TextSink,
        cancelled: Callable[[], bool],
    ) -> list[Result]:
        """On the worker thread only (the engine is not thread-safe)."""
        return self._view(key).classify_batch(samples, on_text=on_text, cancelled=cancelled)

    def _view(self, key: BatchKey) -> Guard:
        if key == self.default_key:
            return self.base
        if key not in self._views:
            from guardcli.core.guard import Guard

            options = replace(
                self.base.options,
                mode=key.mode,
                max_new_tokens=key.max_new_tokens,
                batch_size=max(self.base.options.batch_size, 1),
            )
            base = self.base
            self._views[key] = Guard(base.engine, base.codec, options, base.thresholds)
        return self._views[key]
