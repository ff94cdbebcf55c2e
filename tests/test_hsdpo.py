"""export.train.hsdpo: sampling files, hard-sample mining and weights (the weighted DPO loss and
training: tests/test_hsdpo_training.py).

Synthetic outputs: the fixture traces (right) and variants with the Request answer flipped or
the Answers block missing (wrong). Training runs use the tiny Llama of test_rsft.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from export.train.hsdpo import build_parser, mine
from export.train.hsdpo_config import PRESETS, HSDPOConfig
from export.train.hsdpo_sample import sample
from export.train.mining import (
    SampleRow,
    input_id,
    mine_pairs,
    pair_weights,
    read_pairs,
    read_samples,
)
from guardcli.core.parse import parse
from guardcli.core.prompt import build_input
from guardcli.errors import UsageError
from guardcli.eval.labelled import Gold
from testkit.pairs import FIXTURE_PAIRS
from tests.test_rsft import write_train_jsonl

UNREADABLE = "## Reasoning Step 1: The request seems fine to me."


def bare(trace: str) -> str:
    """Right labels, no reasoning: the label-only form ("The ground truth is ... Answers")."""
    return "The ground truth is \n\nAnswers:" + trace.rpartition("Answers:")[2]


def flip(trace: str) -> str:
    """The trace with its final Request answer reversed: a wrong output."""
    head, marker, tail = trace.rpartition("Answers:")
    swap = {"Request: harmful": "Request: unharmful", "Request: unharmful": "Request: harmful"}
    for old, new in swap.items():
        if old + "\n" in tail:
            return head + marker + tail.replace(old + "\n", new + "\n", 1)
    raise AssertionError("no Request answer to flip")


def gold_of(pair) -> Gold:  # noqa: ANN001
    return Gold(request=pair.request, completion=pair.completion, response=pair.response_label)


def row_of(pair, outputs: list[str]) -> SampleRow:  # noqa: ANN001
    text = pair.model_input()
    return SampleRow(
        input_id(text), text, gold_of(pair), [{"source": "t", "text": o} for o in outputs]
    )


def test_synthetic_outputs_are_right_and_wrong():
    from guardcli.eval.labelled import agrees

    for pair in FIXTURE_PAIRS:
        assert agrees(parse(pair.trace), gold_of(pair))
        assert not agrees(parse(flip(pair.trace)), gold_of(pair))
        assert parse(flip(pair.trace)).request is not pair.request
        assert not agrees(parse(UNREADABLE), gold_of(pair))


# ------------------------------------------------------------------------------ mining


def hand_rows() -> list[SampleRow]:
    a, b, c, d, e = FIXTURE_PAIRS[:5]
    return [
        row_of(a, [a.trace, flip(a.trace), a.trace, a.trace]),  # 3 right, 1 wrong: hard
        row_of(b, [flip(b.trace), UNREADABLE, flip(b.trace), b.trace]),  # 1 right, 3 wrong: hard
        row_of(c, [c.trace] * 4),  # all right: easy
        row_of(d, [flip(d.trace)] * 4),  # all wrong: no chosen output
        row_of(e, []),  # nothing sampled
    ]


def test_mining_gives_the_hand_computed_pairs_and_weights():
    a, b = FIXTURE_PAIRS[:2]
    pairs, stats = mine_pairs(hand_rows(), pairs_per_input=1, gamma=1.0, seed=0)
    assert (stats.inputs, stats.hard, stats.all_right, stats.all_wrong, stats.no_outputs) == (
        5,
        2,
        1,
        1,
        1,
    )
    assert [p.input_id for p in pairs] == [input_id(a.model_input()), input_id(b.model_input())]
    first, second = pairs
    assert (first.chosen, first.rejected) == (a.trace, flip(a.trace))
    assert (first.n_right, first.n_wrong) == (3, 1)
    assert second.chosen == b.trace and second.rejected in (flip(b.trace), UNREADABLE)
    assert (second.n_right, second.n_wrong) == (1, 3)
    assert first.prompt == build_input(a.prompt, a.response)
    # raw = 1 + n_wrong/n: 1.25 and 1.75, mean 1.5
    assert first.weight == pytest.approx(1.25 / 1.5)
    assert second.weight == pytest.approx(1.75 / 1.5)


def test_more_pairs_per_input_use_distinct_texts_and_keep_mean_one():
    pairs, stats = mine_pairs(hand_rows(), pairs_per_input=5, gamma=1.0, seed=0)
    # input a: 1 distinct right x 1 distinct wrong; input b: 1 right x 2 distinct wrongs
    assert stats.pairs == len(pairs) == 3
    assert len({(p.chosen, p.rejected) for p in pairs}) == 3
    assert [p.weight for p in pairs] == pytest.approx([3.75 / 4.75, 5.25 / 4.75, 5.25 / 4.75])


def test_mining_is_deterministic_for_a_seed():
    b = FIXTURE_PAIRS[1]
    rows = [row_of(b, [b.trace, "x" + b.trace, flip(b.trace), UNREADABLE, "y" + UNREADABLE])]
    runs = [mine_pairs(rows, pairs_per_input=3, seed=7)[0] for _ in range(2)]
    assert runs[0] == runs[1]
    choices = {tuple((p.chosen, p.rejected) for p in mine_pairs(rows, seed=s)[0]) for s in range(8)}
    assert len(choices) > 1  # the seed, not the order of the outputs, picks the pair


@given(
    st.lists(st.floats(0.01, 0.99), min_size=1, max_size=50),
    st.one_of(st.just(0.0), st.floats(0.01, 10.0)),
)
def test_weights_average_one_and_grow_with_the_wrong_fraction(fractions, gamma):
    weights = pair_weights(fractions, gamma)
    assert sum(weights) / len(weights) == pytest.approx(1.0)
    ranked = sorted(zip(fractions, weights, strict=True))
    for (fa, wa), (fb, wb) in zip(ranked, ranked[1:], strict=False):
        assert wa <= wb + 1e-12  # more often wrong: never lighter
        if gamma > 0 and fb > fa + 1e-6:
            assert wb > wa  # ... and strictly heavier


def test_gamma_zero_is_plain_dpo():
    assert pair_weights([0.1, 0.5, 0.9], 0.0) == [1.0, 1.0, 1.0]


# ------------------------------------------------------------------------------ files


def write_traces(path: Path, pairs, wrong: bool) -> Path:  # noqa: ANN001
    """A {prompt, label, predict} file, like GuardReasoner's generated_predictions.jsonl."""
    with path.open("w", encoding="utf-8") as out:
        for pair in pairs:
            predict = flip(pair.trace) if wrong else pair.trace
            row = {"prompt": pair.model_input(), "label": pair.trace, "predict": predict}
            out.write(json.dumps(row) + "\n")
    return path


@pytest.fixture
def traced(tmp_path) -> HSDPOConfig:
    """Training data + one right and one wrong trace file; k=0: no model is sampled."""
    data = write_train_jsonl(tmp_path / "train.jsonl")
    right = write_traces(tmp_path / "right.jsonl", FIXTURE_PAIRS, wrong=False)
    wrong = write_traces(tmp_path / "wrong.jsonl", FIXTURE_PAIRS[:4], wrong=True)
    return HSDPOConfig(
        output=tmp_path / "hsdpo", data=[data], extra_traces=[right, wrong], k=0, chunk=2
    )


def test_sample_collects_traces_and_continues_a_killed_file(traced, capsys):
    path = sample(traced)
    rows = read_samples(path)
    assert [r.prompt for r in rows] == [p.model_input() for p in FIXTURE_PAIRS]
    assert rows[0].gold == gold_of(FIXTURE_PAIRS[0])
    assert [len(r.outputs) for r in rows] == [2, 2, 2, 2, 1, 1]
    assert rows[0].outputs[0] == {"source": "trace:right.jsonl", "text": FIXTURE_PAIRS[0].trace}

    complete = path.read_bytes()
    path.write_bytes(complete[: complete.rindex(b"\n", 0, -1) + 20])  # kill mid-line
    sample(traced)
    assert path.read_bytes() == complete  # the cut line is dropped and redone
    capsys.readouterr()
    sample(traced)
    assert "complete" in capsys.readouterr().out


def test_limit_bounds_every_input_the_traces_own_included(traced, tmp_path):
    """--limit N samples N inputs in all, even when trace files cover inputs --data lacks
    (the nano recipe passes every teacher file: without this, --limit 32 meant 1,647)."""
    only_first = write_train_jsonl(tmp_path / "one.jsonl", FIXTURE_PAIRS[:1])
    cfg = replace(traced, data=[only_first], limit=3, output=tmp_path / "limited")
    rows = read_samples(sample(cfg))
    assert len(rows) == 3
    everything = {p.model_input() for p in FIXTURE_PAIRS}
    assert {r.prompt for r in rows} <= everything
    again = read_samples(sample(replace(cfg, output=tmp_path / "again")))
    assert [r.prompt for r in again] == [r.prompt for r in rows]  # seeded: the same subset


def test_holdout_split_keeps_validation_prompts_out_of_the_samples(
    traced, tmp_path, monkeypatch, capsys
):
    """Hard samples mined from a validation prompt would carry it into DPO: --holdout-split
    leaves those prompts out of --data and of the trace files alike, and says how many."""
    from export.data import splits

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"prompt": p.prompt, "request": p.request.value, "source": "S"}) + "\n"
            for p in FIXTURE_PAIRS
        ),
        encoding="utf-8",
    )
    monkeypatch.setattr(splits, "PROMPTS", prompts)
    lines = tmp_path / "validation.lines"
    splits.write_lines(lines, {1, 5}, "")  # the first and fifth fixture prompts
    held = {splits.prompt_key(FIXTURE_PAIRS[i].prompt) for i in (0, 4)}
    cfg = replace(traced, output=tmp_path / "held", holdout_split=lines)
    rows = read_samples(sample(cfg))
    kept = [p.model_input() for p in FIXTURE_PAIRS if splits.prompt_key(p.prompt) not in held]
    assert [r.prompt for r in rows] == kept and len(kept) == len(FIXTURE_PAIRS) - 2
    assert "2 record(s) of the validation split (--holdout-split) left out" in (
        capsys.readouterr().out
    )


def test_mine_writes_pairs_once(traced, capsys):
    sample(traced)
    path = mine(traced)
    pairs = read_pairs(path)
    assert len(pairs) == 4  # the first four inputs have a right and a wrong trace
    assert all(
        p.chosen == next(f.trace for f in FIXTURE_PAIRS if f.model_input() == p.prompt)
        for p in pairs
    )
    assert all((p.n_right, p.n_wrong, p.weight) == (1, 1, 1.0) for p in pairs)
    line = json.loads(path.read_text().splitlines()[0])
    assert set(line) == {"prompt", "chosen", "rejected", "weight", "input_id", "n_right", "n_wrong"}
    mine(traced)
    assert "exists, skipped" in capsys.readouterr().out


def test_preset_and_help():
    preset = PRESETS["guardreasoner-1b"]
    assert (preset["lr"], preset["epochs"], preset["beta"], preset["sft_weight"]) == (
        5e-6,
        2.0,
        0.01,
        2.0,
    )
    assert (preset["k"], preset["temperature"], preset["top_p"]) == (4, 0.7, 0.95)
    parser = build_parser()
    for command in ("sample", "mine", "train", "all"):
        sub = parser._subparsers._group_actions[0].choices[command]
        for action in sub._actions:
            assert action.help, f"{command} {action.option_strings} has no help"


def test_focus_takes_the_inputs_nearest_the_cut_half_from_each_label():
    from export.train.hsdpo_focus import nearest_cut

    rows = [row_of(p, []) for p in FIXTURE_PAIRS]
    labels = [r.gold.request for r in rows]
    assert len(set(labels)) == 2
    scores = [0.05, 0.5, 0.9, 0.45, 0.99, 0.6][: len(rows)]
    chosen = nearest_cut(rows, scores, 0.5, 2)
    for label in set(labels):  # one of each label: the one whose score is nearest 0.5
        mine = [(abs(s - 0.5), r.input_id) for r, s in zip(rows, scores, strict=True)]
        best = min(m for m, r in zip(mine, rows, strict=True) if r.gold.request == label)
        assert best[1] in {r.input_id for r in chosen}
    assert [r.input_id for r in chosen] == [r.input_id for r in rows if r in chosen]  # file order
    assert nearest_cut(rows, scores, 0.5, 99) == rows
    only_one = [r for r in rows if r.gold.request == labels[0]]  # a label short of its share
    assert len(nearest_cut(only_one, scores[: len(only_one)], 0.5, 2)) == 2


def test_focus_scores_with_the_bundle_once_and_resumes_from_its_choice(
    traced, tmp_path, fixture_bundle, capsys
):
    cfg = replace(traced, output=tmp_path / "focus", focus=2, focus_model=str(fixture_bundle))
    rows = read_samples(sample(cfg))
    assert len(rows) == 2
    assert len({r.gold.request for r in rows}) == 2  # one harmful, one harmless
    saved = json.loads(cfg.focus_path.read_text(encoding="utf-8"))
    assert saved["ids"] == [r.input_id for r in rows] and saved["n"] == 2
    assert "focus: 2 of" in capsys.readouterr().out
    cfg.samples_path.unlink()
    again = read_samples(sample(replace(cfg, focus_model="/nonexistent")))  # focus.json reused
    assert [r.input_id for r in again] == saved["ids"]
    with pytest.raises(UsageError, match="--focus needs a bundle"):
        sample(replace(cfg, output=tmp_path / "nobundle", focus_model=""))


def test_a_right_answer_without_reasoning_is_never_chosen():
    """The label-only form (Answers with no reasoning step) has the gold labels but explains
    nothing: mined as a wrong output, so DPO cannot learn to skip the reasoning."""
    a = FIXTURE_PAIRS[0]
    label_only = bare(a.trace)
    assert parse(label_only).request is a.request  # right labels...
    pairs, stats = mine_pairs([row_of(a, [label_only, a.trace, label_only])], pairs_per_input=5)
    assert stats.unreasoned == 2 and stats.hard == 1
    assert [(p.chosen, p.rejected) for p in pairs] == [(a.trace, label_only)]
    only_bare, stats = mine_pairs([row_of(a, [label_only, flip(a.trace)])])
    assert only_bare == [] and stats.all_wrong == 1
