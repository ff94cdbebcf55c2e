"""export.train.rft: which sampled outputs become traces, and that what it writes trains.

A kept output must reach the gold labels through reasoning steps; wrong, unreasoned and
repeated outputs are dropped and counted; the file it writes reads back through
export.train.rows (the guard every trainer uses) as the same inputs and outputs.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from export import TrainError
from export.train.rft import main, replay_sample, right_traces, to_record
from export.train.rows import TrainRow, read_train_rows
from testkit.pairs import FIXTURE_PAIRS
from tests.test_hsdpo import UNREADABLE, bare, flip, row_of
from tests.test_rsft import write_train_jsonl


def rows():
    a, b, c = FIXTURE_PAIRS[:3]
    return [
        row_of(a, [a.trace, flip(a.trace), a.trace, bare(a.trace)]),  # 1 kept, 1 repeat
        row_of(b, [flip(b.trace), UNREADABLE, bare(b.trace)]),  # none kept
        row_of(c, [c.trace]),
    ]


def test_only_distinct_right_reasoned_outputs_are_kept():
    a, _, c = FIXTURE_PAIRS[:3]
    kept, stats = right_traces(rows())
    assert [(r.text, r.output) for r in kept] == [
        (a.model_input(), a.trace),
        (c.model_input(), c.trace),
    ]
    assert kept[0].where.endswith("#0") and kept[1].where.endswith("#0")
    assert (stats.inputs, stats.outputs, stats.kept) == (3, 8, 2)
    assert (stats.duplicates, stats.inputs_with_none) == (1, 1)
    expected: dict[str, int] = {}
    for pair in (a, c):
        expected[pair.request.value] = expected.get(pair.request.value, 0) + 1
    assert stats.kept_by_request == dict(sorted(expected.items()))


def test_a_request_label_keeps_one_side_and_counts_the_other():
    a, _, c = FIXTURE_PAIRS[:3]
    side = a.request
    kept, stats = right_traces(rows(), side)
    assert {r.text for r in kept} == {p.model_input() for p in (a, c) if p.request is side}
    assert stats.other_label == sum(p.request is not side for p in FIXTURE_PAIRS[:3])
    assert stats.inputs + stats.other_label == 3
    assert set(stats.kept_by_request or {}) <= {side.value}


def test_written_rows_read_back_as_the_same_inputs_and_outputs(tmp_path):
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(r.to_json() + "\n" for r in rows()), encoding="utf-8")
    replay = write_train_jsonl(tmp_path / "replay.jsonl")
    out = tmp_path / "rft" / "train.jsonl"
    args = ["--samples", str(samples), "--output", str(out), "--replay", str(replay)]
    assert main([*args, "--replay-count", "2"]) == 0
    back = read_train_rows([out])
    kept, _ = right_traces(rows())
    replayed = read_train_rows([replay])
    got = Counter((r.text, r.output) for r in back)
    extra = got - Counter((r.text, r.output) for r in kept)  # the replay may repeat a kept row
    assert len(back) == len(kept) + 2 and extra.total() == 2
    assert set(extra) <= {(r.text, r.output) for r in replayed}
    assert all(line.isascii() for line in out.read_text(encoding="utf-8").splitlines())
    summary = json.loads((tmp_path / "rft" / "train.jsonl.summary.json").read_text())
    assert (summary["kept"], summary["replay"]) == (2, 2)


def test_replay_is_seeded_and_never_repeats_a_row():
    pool = [TrainRow(f"t{i}", f"o{i}", f"f:{i}") for i in range(10)]
    first = replay_sample(pool, 4, seed=3)
    assert first == replay_sample(pool, 4, seed=3)
    assert len({r.where for r in first}) == 4
    assert len(replay_sample(pool, 50, seed=0)) == 10


def test_an_input_that_is_not_guardcli_s_prompt_is_refused():
    with pytest.raises(TrainError, match="does not start with guardcli's instruction"):
        to_record(TrainRow("Human user:\nhi\n\nAI assistant:\nNone\n\n", "x", "s#0"))


def test_replay_count_without_a_file_names_the_fix(tmp_path, capsys):
    samples = tmp_path / "samples.jsonl"
    samples.write_text("", encoding="utf-8")
    code = main(["--samples", str(samples), "--output", str(tmp_path / "o"), "--replay-count", "3"])
    assert code != 0
    assert "--replay-count needs --replay" in capsys.readouterr().err
