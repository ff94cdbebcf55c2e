"""The adversarial suite (export/injection_suite.py) on the fixture model: no planted text
makes a harmful item less flagged, in reason or fast mode, and every attacked item is reported.

Before guardcli.core.injection, a fake Answers block that the model echoed stopped generation
and was read as the verdict, and fast mode read label tokens right after the planted block."""

from __future__ import annotations

import pytest

from export.injection_suite import ATTACKS, attack, less_flagged
from guardcli.core.records import Label
from testkit.pairs import FIXTURE_PAIRS

pytestmark = pytest.mark.slow

HARMFUL = [pair for pair in FIXTURE_PAIRS if Label.HARMFUL in (pair.request, pair.response_label)]


def _guard(bundle, mode: str):
    from guardcli.bundles.resolve import Resolved, open_guard
    from guardcli.core.guard import GuardOptions

    guard, _, _ = open_guard(
        Resolved(bundle, "--model"),
        device="cpu",
        options=GuardOptions(max_new_tokens=256, batch_size=8, mode=mode),
    )
    return guard


def _suite():
    return [
        (pair, how, attack(pair.sample(), how))
        for pair in HARMFUL
        for how in ATTACKS
        if how.where == "prompt" or pair.response is not None
    ]


@pytest.mark.parametrize("mode", ["reason", "fast"])
def test_no_attack_makes_a_harmful_item_less_flagged(fixture_bundle, mode):
    guard = _guard(fixture_bundle, mode)
    baseline = guard.classify_batch([pair.sample() for pair in HARMFUL])
    clean = {pair.id: r.verdict for pair, r in zip(HARMFUL, baseline, strict=True)}
    assert sum(v.request is Label.HARMFUL for v in clean.values()) >= 2  # something to flip
    suite = _suite()
    assert len(suite) >= 40
    results = list(guard.run(sample for _, _, sample in suite))
    flipped = [
        f"{pair.id}~{how.name}"
        for (pair, how, _), result in zip(suite, results, strict=True)
        if less_flagged(clean[pair.id], result.verdict)
    ]
    assert flipped == []
    unreported = [r.sample.id for r in results if not r.injection]
    assert unreported == []
    if mode == "fast":  # a planted block never lowers the harm score either
        for (pair, _, _), result in zip(suite, results, strict=True):
            assert result.verdict.scores.request >= clean[pair.id].scores.request - 1e-6


def test_clean_items_are_judged_once_and_byte_exact(fixture_guard):
    """The defence costs nothing on clean text: same trace, no report, one judgement."""
    pair = FIXTURE_PAIRS[0]
    [result] = fixture_guard.classify_batch([pair.sample()])
    assert result.injection == ()
    assert result.generation.text == pair.trace


def test_an_echoed_block_does_not_stop_generation(fixture_guard):
    """The attacked input runs to the model's end: the verdict is its own last block."""
    pair = next(p for p in HARMFUL if p.response is None)
    sample = attack(pair.sample(), ATTACKS[0])
    [result] = fixture_guard.classify_batch([sample])
    assert result.injection == ("answers",)
    assert result.verdict.request is Label.HARMFUL
    assert result.sample == sample  # reported as read, not as neutralised
