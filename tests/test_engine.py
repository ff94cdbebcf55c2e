"""The generation loop, against a fake backend: stop rules, budgets, batching, streaming."""

from __future__ import annotations

import pytest

from guardcli.core.engine import Choice, Engine
from guardcli.errors import ModelError
from tests.fakes import FakeBackend, script


def test_stops_at_eos_and_excludes_it():
    backend = FakeBackend(script({1: [5, 6, 7], 2: [8]}))
    out = Engine(backend).generate([[1, 9, 9], [2]], max_new_tokens=10)
    assert [c.tokens for c in out] == [[5, 6, 7], [8]]
    assert [c.finish for c in out] == ["eos", "eos"]
    assert [c.prompt_tokens for c in out] == [3, 1]
    # the batch ends when its longest row does, not at the budget
    assert backend.steps == 4


def test_budget_caps_generation_and_reports_length():
    backend = FakeBackend(lambda ctx: 3)  # never emits EOS
    out = Engine(backend, reuse_prefix=False).generate([[1, 2]], max_new_tokens=5)
    assert out[0].tokens == [3] * 5
    assert out[0].finish == "length"
    assert backend.started[0][1] == 5


def test_budget_is_clamped_to_the_context():
    backend = FakeBackend(lambda ctx: 3, context_length=8)
    out = Engine(backend).generate([[1] * 6], max_new_tokens=100)
    assert len(out[0].tokens) == 2


def test_input_that_fills_the_context_is_a_model_error():
    backend = FakeBackend(lambda ctx: 3, context_length=4)
    with pytest.raises(ModelError, match="no room"):
        Engine(backend).generate([[1] * 4], max_new_tokens=3)


def test_stop_rule_ends_one_row_while_others_continue():
    backend = FakeBackend(script({1: [5, 6, 7, 8], 2: [5, 6, 7, 8]}))
    out = Engine(backend).generate(
        [[1], [2]], max_new_tokens=10, should_stop=lambda row, toks: row == 0 and toks[-1] == 6
    )
    assert out[0].tokens == [5, 6] and out[0].finish == "stop"
    assert out[1].tokens == [5, 6, 7, 8] and out[1].finish == "eos"
    assert out[0].latency_s <= out[1].latency_s


def test_streaming_callback_sees_every_kept_token_in_order():
    seen: list[tuple[int, int]] = []
    backend = FakeBackend(script({1: [5, 6], 2: [7]}))
    Engine(backend).generate(
        [[1], [2]], max_new_tokens=10, on_token=lambda r, t: seen.append((r, t))
    )
    assert [t for r, t in seen if r == 0] == [5, 6]
    assert [t for r, t in seen if r == 1] == [7]


def test_cancel_raises_keyboard_interrupt_and_closes_the_decoder():
    backend = FakeBackend(lambda ctx: 3)
    calls = iter([False, False, True])
    with pytest.raises(KeyboardInterrupt):
        Engine(backend).generate([[1]], max_new_tokens=50, cancelled=lambda: next(calls))
    assert backend.steps == 2


def test_empty_batch_and_bad_arguments():
    engine = Engine(FakeBackend(lambda ctx: 0))
    assert engine.generate([], max_new_tokens=4) == []
    with pytest.raises(ValueError):
        engine.generate([[]], max_new_tokens=4)
    with pytest.raises(ValueError):
        engine.generate([[1]], max_new_tokens=0)


def test_generate_tokens_matches_generate():
    backend = FakeBackend(script({1: [4, 4, 2], 2: [9]}))
    assert Engine(backend).generate_tokens([[1], [2]], max_new_tokens=8) == [[4, 4, 2], [9]]


# ------------------------------------------------- batch-1 generation reuses the cache


def _hash_rule(ctx) -> int:  # noqa: ANN001
    """The next id depends on every id before it, so a stale cache would change the output."""
    return 0 if len(ctx) > 70 else (sum(i * (k + 1) for k, i in enumerate(ctx)) % 40) + 1


def test_batch_1_generation_reads_the_common_head_once_and_matches_a_fresh_prefill():
    head = list(range(20, 60))
    prompts = [[*head, 1], [*head, 1, 9], [*head, 2, 5], [7, 8]]
    engine = Engine(FakeBackend(_hash_rule))
    runs = [engine.generate([p], max_new_tokens=12)[0] for p in prompts]
    fresh = Engine(FakeBackend(_hash_rule), reuse_prefix=False)
    for prompt, run in zip(prompts, runs, strict=True):
        assert run.tokens == fresh.generate([prompt], max_new_tokens=12)[0].tokens
    backend = engine.backend
    assert backend.readers == 1 and backend.started == [([p], None) for p in prompts]
    # the second prompt extends the first: it rewinds past the first one's generated ids
    assert backend.appended == [[*head, 1], [9], [2, 5], [7, 8]]
    assert backend.rewinds == [len(head) + 1, len(head), 0]
    assert [r.reused for r in runs] == [0, len(head) + 1, len(head), 0]


def test_a_cascade_reasons_on_the_prompt_its_triage_read():
    engine = Engine(FakeBackend(_hash_rule))
    prompt = list(range(30, 50))
    engine.choose(prompt, [YES_NO])
    run = engine.generate([prompt], max_new_tokens=8)[0]
    assert run.reused == len(prompt) - 1  # the last id is read again for fresh logits
    assert (
        run.tokens == Engine(FakeBackend(_hash_rule)).generate([prompt], max_new_tokens=8)[0].tokens
    )


def test_an_interrupted_generation_drops_the_cache():
    engine = Engine(FakeBackend(_hash_rule))
    calls = iter([False, False, True])
    with pytest.raises(KeyboardInterrupt):
        engine.generate([[1, 2, 3]], max_new_tokens=10, cancelled=lambda: next(calls))
    again = engine.generate([[1, 2, 3]], max_new_tokens=10)[0]
    assert engine.backend.readers == 2 and again.reused == 0
    assert (
        again.tokens
        == Engine(FakeBackend(_hash_rule)).generate([[1, 2, 3]], max_new_tokens=10)[0].tokens
    )


# ---------------------------------------------------------------- choose (fast triage)

YES_NO = Choice(lead=(3,), options=((7, 8), (9,)))
THEN = Choice(lead=(4,), options=((10,), (11,)))


def _prefers(table: dict[tuple[int, ...], dict[int, float]]):
    """logit(context, token) from the context's last ids: {suffix: {token: logit}}."""

    def logit(context, token):  # noqa: ANN001, ANN202
        for suffix, row in table.items():
            if tuple(context[-len(suffix) :]) == suffix:
                return row.get(token, 0.0)
        return 0.0

    return logit


def test_choose_picks_by_softmax_over_the_first_tokens_and_follows_the_pick():
    import math

    logit = _prefers({(3,): {7: 2.0, 9: 0.0}, (7, 8, 4): {10: 0.0, 11: 1.0}, (9, 4): {10: 3.0}})
    backend = FakeBackend(lambda ctx: 0, logit=logit)
    chosen = Engine(backend).choose([1, 2], [YES_NO, THEN])
    first, second = chosen.picks
    assert first.index == 0 and first.probs[0] == pytest.approx(1 / (1 + math.exp(-2)))
    assert sum(first.probs) == pytest.approx(1)
    # the second choice was read after the whole first pick (7, 8) and its lead
    assert second.index == 1 and second.probs[1] == pytest.approx(1 / (1 + math.exp(-1)))
    assert chosen.tokens == [3, 7, 8, 4, 11]
    assert backend.appended == [[1, 2, 3], [7, 8, 4]]


def test_the_common_head_of_consecutive_prompts_is_read_once():
    logit = _prefers({(3,): {7: 1.0}, (8, 4): {10: 1.0}})
    head = list(range(20, 60))
    prompts = [[*head, 1], [*head, 2, 5], [*head, 1]]
    cached = Engine(FakeBackend(lambda ctx: 0, logit=logit))
    runs = [cached.choose(p, [YES_NO, THEN]) for p in prompts]
    backend = cached.backend
    assert backend.readers == 1
    assert backend.appended[0] == [*head, 1, 3]  # the first prompt is read whole
    assert backend.appended[2] == [2, 5, 3]  # the next only from where it differs
    assert backend.rewinds == [len(head), len(head)]
    assert [r.reused for r in runs] == [0, len(head), len(head)]
    # the cache changes the work, never the answer: fresh engines agree exactly
    for prompt, run in zip(prompts, runs, strict=True):
        fresh = Engine(FakeBackend(lambda ctx: 0, logit=logit)).choose(prompt, [YES_NO, THEN])
        assert fresh.picks == run.picks and fresh.tokens == run.tokens


def test_an_identical_prompt_still_reads_fresh_logits():
    engine = Engine(FakeBackend(lambda ctx: 7))
    first = engine.choose([1, 2], [YES_NO])
    again = engine.choose([1, 2], [YES_NO])
    assert first.picks == again.picks
    assert engine.backend.rewinds == [1]  # back to before the prompt's last id
    assert engine.backend.appended[-1] == [2, 3]


def test_a_longer_prompt_opens_a_longer_reader():
    engine = Engine(FakeBackend(lambda ctx: 7, context_length=5000))
    engine.choose([1] * 10, [YES_NO])
    engine.choose([1] * 3000, [YES_NO])
    assert engine.backend.readers == 2


def test_choose_refuses_ambiguous_options_and_inputs_that_do_not_fit():
    engine = Engine(FakeBackend(lambda ctx: 7, context_length=16))
    with pytest.raises(ValueError, match="distinct first tokens"):
        engine.choose([1], [Choice(lead=(3,), options=((7, 8), (7, 9)))])
    with pytest.raises(ValueError):
        engine.choose([], [YES_NO])
    with pytest.raises(ModelError, match="does not fit"):
        engine.choose([1] * 14, [YES_NO])
