"""The Ray job's plan and read-task selection, without Ray: the driver's plan and each file's
task agree with each other and with ``scan``'s reading (ids, skips, shards, resume), and the
driver's writer keeps each id once."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from guardcli.core.records import Sample, Skip
from guardcli.distributed.once import OnceWriter
from guardcli.distributed.plan import make_plan, select
from guardcli.io.inputs import iter_samples
from guardcli.io.options import InputOptions
from guardcli.io.shard import Shard
from tests.cli_support import write_jsonl


def _files(root, ids_per_file):
    root.mkdir(exist_ok=True)
    paths = []
    for n, ids in enumerate(ids_per_file):
        rows = [{"id": i, "prompt": f"p {i}"} if i else {"prompt": f"p {n}"} for i in ids]
        path = write_jsonl(root / f"f{n}.jsonl", rows)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("{broken\n")
        paths.append(path)
    return paths


def _selected(plan, done=frozenset()):
    return [
        sample
        for number, found in enumerate(plan.files)
        for sample in select(number, found, plan.selection, done)
    ]


def test_the_tasks_read_what_scan_reads(tmp_path):
    paths = _files(tmp_path / "in", [["a", "b", "a", ""], ["a", "b#2", "c"], ["b", ""]])
    scanned = [s for s in iter_samples([str(tmp_path / "in")], InputOptions())]
    skips = []
    plan = make_plan(
        [str(tmp_path / "in")], InputOptions(), shard=None, done=set(), on_skip=skips.append
    )
    assert skips == [s for s in scanned if isinstance(s, Skip)] and plan.skipped == 3
    expected = [(s.id, s.source, s.prompt) for s in scanned if isinstance(s, Sample)]
    assert [(s.id, s.source, s.prompt) for s in _selected(plan)] == expected
    assert plan.total == plan.samples == len(expected) == sum(plan.todo)
    assert len({i for i, _, _ in expected}) == len(expected)  # run-wide unique, as in scan
    assert len(paths) == len(plan.files)


@given(
    st.lists(st.lists(st.sampled_from(["x", "y", "z", "x#2", ""]), max_size=5), max_size=4),
    st.integers(1, 3),
    st.data(),
)
def test_plan_and_tasks_agree_under_shards_and_resume(tmp_path_factory, files, count, data):
    root = tmp_path_factory.mktemp("in")
    paths = [str(p) for p in _files(root / "in", files)]
    every = [s.id for s in iter_samples(paths, InputOptions()) if isinstance(s, Sample)]
    done = set(data.draw(st.lists(st.sampled_from(every or ["none"]), max_size=3)))
    shard = Shard(data.draw(st.integers(0, count - 1)), count)
    plan = make_plan(paths, InputOptions(), shard=shard, done=done, on_skip=lambda _: None)
    judged = [s.id for s in _selected(plan, frozenset(done))]
    assert len(judged) == plan.total  # the driver checks this count at the end
    assert set(judged) == {i for i in every if shard.keeps(i) and i not in done}
    assert sorted(plan.resumed) == sorted(i for i in every if shard.keeps(i) and i in done)
    assert plan.other_shards == sum(not shard.keeps(i) for i in every)


def test_the_writer_keeps_each_id_once():
    stream = io.StringIO()
    writer = OnceWriter(stream, {"old"})
    results = [writer.write(i, f'{{"id": "{i}"}}') for i in ("a", "old", "b", "a")]
    assert results == [True, False, True, False] and writer.repeats == 2
    assert stream.getvalue() == '{"id": "a"}\n{"id": "b"}\n'
