"""The slot pool's schedule (guardcli.core.slots) on a fake cache: the same tokens as one
batch, refills between steps, no step over a finished row, the common head read once."""

from __future__ import annotations

import pytest

from guardcli.core.engine import Engine
from guardcli.core.loops import LoopRule
from guardcli.core.slots import MIN_SHARED, shared_head
from tests.fakes import FakeBackend, script

PLANS = {1: [5, 6, 7], 2: [8], 3: [9, 9, 4, 4, 4, 4, 3], 4: [], 5: [6, 5]}


def _prompts(head: list[int]) -> list[list[int]]:
    # the first id keys the script (tests.fakes.script); the head follows it
    return [[key, *head, *([7] * key)] for key in (3, 1, 4, 2, 5)]


def _both(prompts, slots, **kwargs):  # noqa: ANN001, ANN003
    batch = Engine(FakeBackend(script(PLANS))).generate(prompts, max_new_tokens=6, **kwargs)
    backend = FakeBackend(script(PLANS), pooling=True)
    pooled = Engine(backend).generate(prompts, max_new_tokens=6, slots=slots, **kwargs)
    return batch, pooled, backend


@pytest.mark.parametrize("slots", [2, 3, 8])
def test_pool_gives_the_batch_tokens_and_finishes_in_input_order(slots):
    batch, pooled, backend = _both(_prompts([]), slots)
    assert [c.tokens for c in pooled] == [c.tokens for c in batch]
    assert [c.finish for c in pooled] == [c.finish for c in batch] == [
        "length", "eos", "eos", "eos", "eos",
    ]  # fmt: skip
    assert [c.prompt_tokens for c in pooled] == [4, 2, 5, 3, 6]
    assert backend.pools == [(min(slots, 5), 12)]  # the longest prompt plus the budget
    assert max(backend.step_rows) <= slots


def test_a_finished_rows_slot_takes_the_next_prompt_before_the_next_step():
    _, _, backend = _both(_prompts([]), 2)
    # prompt order: 3, 1, 4, 2, 5. Prompt 1 ends at its second token; 4 (empty plan) ends
    # at its first (EOS) and never holds a slot; 2 takes the slot instead.
    assert [ids[0] for _, ids, _ in backend.fills] == [3, 1, 4, 2, 5]
    assert [slot for slot, _, _ in backend.fills] == [0, 1, 1, 1, 1]
    assert backend.step_rows[:3] == [2, 2, 2]
    # the tail: one row left, stepped alone (no step computes a finished row)
    assert backend.step_rows[-1] == 1
    batched = FakeBackend(script(PLANS))
    for start in range(0, 5, 2):  # the same prompts as batches of 2
        Engine(batched).generate(_prompts([])[start : start + 2], max_new_tokens=6)
    assert sum(backend.step_rows) < 2 * batched.steps


def test_rows_move_down_so_live_rows_fill_the_lowest_slots():
    backend = FakeBackend(script(PLANS), pooling=True)
    prompts = [[2], [1], [3]]  # row 0 ends first; the others must move down
    out = Engine(backend).generate(prompts, max_new_tokens=6, slots=3)
    assert [c.tokens for c in out] == [[8], [5, 6, 7], [9, 9, 4, 4, 4, 4]]
    assert backend.step_rows == [3, 2, 2, 1, 1]  # the fake asserts no empty slot steps


def test_the_common_head_is_read_once_and_copied():
    head = list(range(20, 20 + MIN_SHARED + 4))
    prompts = [[9, *head, key] for key in (1, 2)]
    assert shared_head(prompts) == 1 + len(head)
    backend = FakeBackend(lambda ctx: 0, pooling=True)
    out = Engine(backend).generate(prompts, max_new_tokens=3, slots=2)
    assert backend.shared == [[9, *head]]
    assert [shared for _, _, shared in backend.fills] == [1 + len(head)] * 2
    assert [c.reused for c in out] == [1 + len(head)] * 2


def test_a_short_head_or_a_prompt_that_is_all_head_is_not_shared():
    assert shared_head([[1, 2, 3, 4], [1, 2, 3, 5]]) == 0  # shorter than MIN_SHARED
    head = list(range(MIN_SHARED + 2))
    # a prompt that is only the head keeps its last id to read
    assert shared_head([head, [*head, 7]]) == len(head) - 1


def test_stop_rules_loops_and_streaming_name_the_prompts_row():
    seen: list[tuple[int, int]] = []
    batch, pooled, _ = _both(
        _prompts([]),
        2,
        should_stop=lambda row, toks: row == 1 and len(toks) == 1,
        on_token=lambda row, token: seen.append((row, token)),
        loops=LoopRule(max_period=1, repeats=2, min_span=3),
    )
    assert [c.finish for c in pooled] == [c.finish for c in batch]
    assert pooled[1].finish == "stop" and pooled[1].tokens == [5]
    assert pooled[0].finish == "loop" and pooled[0].tokens == [9, 9, 4, 4, 4]
    assert [t for r, t in seen if r == 0] == pooled[0].tokens * 2  # both runs streamed


def test_cancel_stops_the_pool_and_closes_its_cache():
    backend = FakeBackend(lambda ctx: 3, pooling=True)
    calls = iter([False, False, True])
    caches = []
    real = backend.pool
    backend.pool = lambda slots, length: caches.append(real(slots, length)) or caches[-1]
    with pytest.raises(KeyboardInterrupt):
        Engine(backend).generate(
            [[1], [2]], max_new_tokens=50, slots=2, cancelled=lambda: next(calls)
        )
    assert backend.step_rows == [2, 2] and caches[0].closed


def test_slots_without_a_pool_is_one_batch():
    backend = FakeBackend(script(PLANS))  # pooling off
    Engine(backend).generate(_prompts([]), max_new_tokens=6, slots=2)
    assert backend.pools == [] and len(backend.started) == 1


def test_an_engine_told_not_to_reuse_prefixes_reads_every_prompt_whole():
    head = list(range(20, 20 + MIN_SHARED + 4))
    backend = FakeBackend(lambda ctx: 0, pooling=True)
    out = Engine(backend, reuse_prefix=False).generate(
        [[9, *head, 1], [9, *head, 2]], max_new_tokens=3, slots=2
    )
    assert backend.shared == [] and [c.reused for c in out] == [0, 0]
    assert [shared for _, _, shared in backend.fills] == [0, 0]
