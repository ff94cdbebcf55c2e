"""``--shard K/N``: a stable partition of the sample ids, and N sharded scans (and evals) whose
union is the unsharded run, each resumable on its own."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardcli.errors import UsageError
from guardcli.io.shard import Shard, parse_shard, shard_of
from testkit.pairs import FIXTURE_PAIRS
from tests.cli_support import GEN, invoke, jsonl_records, pair_record, summary_of, write_jsonl
from tests.test_eval_cli import benchmark_json

ids = st.text(min_size=0, max_size=40)


@given(st.lists(ids, unique=True, max_size=60), st.integers(1, 12))
def test_shards_partition_the_ids(sample_ids, count):
    """Every id is kept by exactly one of the N shards."""
    shards = [Shard(k, count) for k in range(count)]
    for sample_id in sample_ids:
        assert sum(shard.keeps(sample_id) for shard in shards) == 1
    union = [i for shard in shards for i in sample_ids if shard.keeps(i)]
    assert sorted(union) == sorted(sample_ids)


@given(ids, st.integers(1, 1000))
def test_a_shard_depends_on_the_id_alone(sample_id, count):
    assert 0 <= shard_of(sample_id, count) < count
    assert shard_of(sample_id, count) == shard_of(str(sample_id), count)


def test_the_hash_is_the_same_in_every_process():
    """Python's hash() is salted per process; a shard must not be."""
    code = (
        "from guardcli.io.shard import shard_of; print([shard_of(f'id-{i}', 7) for i in range(50)])"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "", "PYTHONPATH": ":".join(sys.path)},
        ).stdout
        for seed in ("1", "2")
    }
    assert outs == {str([shard_of(f"id-{i}", 7) for i in range(50)]) + "\n"}


def test_shards_are_roughly_even():
    counts = [0] * 4
    for i in range(4000):
        counts[shard_of(f"sample-{i}", 4)] += 1
    assert all(900 < c < 1100 for c in counts), counts


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0/1", Shard(0, 1)), ("2/3", Shard(2, 3)), (" 1 / 4 ", Shard(1, 4)), (None, None)],
)
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3/3", "K must be 0..2 - K counts from 0, like $JOB_COMPLETION_INDEX: --shard 0/3 "),
        ("0/0", "N must be at least 1"),
        ("1", "is not K/N"),
        ("-1/3", "is not K/N"),
        ("a/b", "is not K/N"),
    ],
)
def test_bad_shards_are_one_line_errors(text, message, tmp_path):
    with pytest.raises(UsageError) as raised:
        parse_shard(text)
    assert message in str(raised.value)
    data = write_jsonl(tmp_path / "in.jsonl", [pair_record(FIXTURE_PAIRS[0])])
    for command in (["scan", "--dry-run", str(data)], ["eval", str(data)]):
        result = invoke(*command, "--shard", text, env={"GUARDCLI_MODEL": "/nope"})
        assert result.exit_code == 2
        [line] = result.stderr.strip().splitlines()
        assert message in line and "--shard 0/" in line


def _inputs(tmp_path):
    """Twelve samples (the fixture pairs twice, under other ids), a bad line, and a repeated
    id (made unique as ``#2`` before sharding, as resume needs)."""
    rows = [pair_record(p, id=f"{tag}-{p.id}") for tag in ("a", "b") for p in FIXTURE_PAIRS]
    rows.append(pair_record(FIXTURE_PAIRS[1], id="a-fake-id"))  # becomes a-fake-id#2
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    return path


def test_three_shards_add_up_to_the_unsharded_scan(fixture_bundle, tmp_path):
    data = _inputs(tmp_path)
    model = ["--model", str(fixture_bundle), *GEN, "-f", "jsonl"]
    whole = invoke("scan", str(data), *model)
    assert whole.exit_code == 1, whole.stderr  # the fixture has harmful pairs
    expected = {r["id"]: r for r in jsonl_records(whole.stdout)}
    assert len(expected) == 13 and "a-fake-id#2" in expected

    union: list[dict] = []
    left_out = 0
    for k in range(3):
        out = tmp_path / f"shard-{k}.jsonl"
        part = invoke("scan", str(data), *model, "--shard", f"{k}/3", "-o", str(out))
        assert part.exit_code in (0, 1), part.stderr
        records = jsonl_records(out.read_text(encoding="utf-8"))
        assert all(shard_of(r["id"], 3) == k for r in records)
        summary = summary_of(part.stderr)
        assert summary["scanned"] == len(records) and summary["skipped"] == 1
        assert f"{13 - len(records)} in other shards (this is shard {k}/3)" in part.stderr
        left_out += 13 - len(records)
        union += records
    assert left_out == 2 * 13  # each sample is left out by the two other shards
    assert sorted(r["id"] for r in union) == sorted(expected)  # no duplicates, none missing
    for record in union:
        mine, theirs = dict(record), dict(expected[record["id"]])
        for key in ("latency_ms",):
            mine.pop(key), theirs.pop(key)
        assert mine == theirs


def test_a_shard_resumes_on_its_own(fixture_bundle, tmp_path):
    data = _inputs(tmp_path)
    model = ["--model", str(fixture_bundle), *GEN]
    out = tmp_path / "shard-1.jsonl"
    first = invoke("scan", str(data), *model, "--shard", "1/3", "-o", str(out))
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(lines) >= 3, first.stderr
    out.write_text("".join(lines[:2]) + lines[2][:30], encoding="utf-8")  # killed mid-line
    resumed = invoke("scan", str(data), *model, "--shard", "1/3", "-o", str(out), "--resume")
    assert resumed.exit_code == first.exit_code, resumed.stderr
    assert "2 already done" in resumed.stderr
    again = [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert again == [json.loads(line)["id"] for line in lines]


def test_a_shard_with_nothing_in_it_is_not_an_error(tmp_path):
    """More shards than samples: the empty ones say so and exit 0, loading no model."""
    data = write_jsonl(tmp_path / "in.jsonl", [pair_record(FIXTURE_PAIRS[3])])  # grandma-pin
    empty = next(k for k in range(5) if shard_of("grandma-pin", 5) != k)
    result = invoke("scan", str(data), "--shard", f"{empty}/5", env={"GUARDCLI_MODEL": "/nope"})
    assert result.exit_code == 0, result.stderr
    assert "0 scanned" in result.stderr and "1 in other shards" in result.stderr
    dry = invoke("scan", "--dry-run", str(data), "--shard", f"{empty}/5")
    assert dry.stdout == "" and "0 inputs, 0 skipped, 1 in other shards" in dry.stderr


def test_eval_shards_add_up_to_the_unsharded_eval(fixture_bundle, tmp_path):
    bench = benchmark_json(
        tmp_path / "SimpleSafetyTests.json", FIXTURE_PAIRS, lambda p: p.request.value
    )
    model = ["--model", str(fixture_bundle), *GEN]
    whole = invoke("eval", str(bench), *model, "-o", str(tmp_path / "all"), "--json")
    assert whole.exit_code == 0, whole.stderr
    expected = (tmp_path / "all" / "SimpleSafetyTests.jsonl").read_text(encoding="utf-8")
    expected_ids = sorted(json.loads(line)["id"] for line in expected.splitlines())
    union = []
    for k in range(3):
        out = tmp_path / f"s{k}"
        part = invoke("eval", str(bench), *model, "-o", str(out), "--shard", f"{k}/3", "--json")
        assert part.exit_code == 0, part.stderr
        assert f"shard {k}/3 keeps" in part.stderr
        target = out / "SimpleSafetyTests.jsonl"
        if target.exists():
            union += [json.loads(line) for line in target.read_text().splitlines()]
    assert sorted(r["id"] for r in union) == expected_ids
    by_id = {json.loads(line)["id"]: json.loads(line) for line in expected.splitlines()}
    assert all(r["predict"] == by_id[r["id"]]["predict"] for r in union)


def test_scoring_predictions_takes_no_shard(tmp_path):
    (tmp_path / "preds").mkdir()
    result = invoke("eval", "--predictions", str(tmp_path / "preds"), "--shard", "0/2")
    assert result.exit_code == 2
    assert "--shard are for running a model" in result.stderr
