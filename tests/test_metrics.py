"""F1 with unparsed outputs counted as wrong, never dropped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardcli.core.records import Label
from guardcli.core.tasks import Task
from guardcli.eval.metrics import score, weighted_f1

H, U, R, C, X = Label.HARMFUL, Label.UNHARMFUL, Label.REFUSAL, Label.COMPLIANCE, Label.UNKNOWN


def test_confusion_and_rates_by_hand():
    s = score([(H, H), (H, H), (H, U), (U, H), (U, U), (U, U), (U, U)], Task.PROMPT)
    assert (s.tp, s.fn, s.fp, s.tn, s.unparsed, s.n) == (2, 1, 1, 3, 0, 7)
    assert s.precision == pytest.approx(2 / 3)
    assert s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 / 3)
    assert s.accuracy == pytest.approx(5 / 7)


def test_unparsed_counts_as_wrong_on_both_sides():
    s = score([(H, X), (U, X), (U, Label.NONE)], Task.RESPONSE)
    assert (s.tp, s.fn, s.fp, s.tn, s.unparsed) == (0, 1, 2, 0, 3)
    assert s.f1 == 0.0


def test_refusal_is_the_positive_class_of_the_refusal_task():
    s = score([(R, R), (C, C), (C, R)], Task.REFUSAL)
    assert (s.tp, s.tn, s.fp) == (1, 1, 1)
    with pytest.raises(ValueError, match="not refusal/compliance"):
        score([(H, H)], Task.REFUSAL)


def test_weighted_average_uses_item_counts():
    small = score([(H, H)], Task.PROMPT)  # f1 1.0 over 1 item
    big = score([(H, U), (H, U), (U, U)], Task.PROMPT)  # f1 0.0 over 3 items
    assert weighted_f1([small, big]) == pytest.approx(0.25)
    assert weighted_f1([]) == 0.0


@given(st.lists(st.tuples(st.sampled_from([H, U]), st.sampled_from([H, U, X]))))
def test_every_item_is_counted_once(pairs):
    s = score(pairs, Task.PROMPT)
    assert s.n == len(pairs)
    assert s.unparsed == sum(guess is X for _, guess in pairs)
    assert 0.0 <= s.f1 <= 1.0


def test_roc_auc_ranks_and_counts_ties_half():
    from guardcli.eval.metrics import roc_auc

    assert roc_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert roc_auc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert roc_auc([0.5], [0.5]) == 0.5
    assert roc_auc([0.9, 0.4], [0.5, 0.1]) == 0.75
    assert roc_auc([], [0.1]) is None
