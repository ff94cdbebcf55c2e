"""``guardcli batch``: the Ray Data job against a local ``guardcli scan`` of the same files, on
one local Ray shared by the session (2 CPUs): same ids and verdicts, bad rows counted, a rerun
that finishes a cut-off output, and an actor killed mid-job, each ending with every id once."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from guardcli.errors import ModelError
from testkit.pairs import FIXTURE_PAIRS
from tests.cli_support import GEN, invoke, jsonl_records, pair_record, summary_of, write_jsonl

NOISY = ("latency_ms",)  # the only field that differs between two runs of the same model


@pytest.fixture(scope="session")
def local_ray():
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _shards(root: Path) -> list[Path]:
    """Three JSONL shards: 18 samples, a bad line, and an id repeated across files (scan
    makes it ``#2``; so must the job, whose read tasks each see one file)."""
    root.mkdir()
    paths = []
    for n in range(3):
        rows = [pair_record(p, id=f"{n}-{p.id}") for p in FIXTURE_PAIRS]
        if n == 2:
            rows[0]["id"] = "0-fake-id"  # the same id as the first row of shard 0
        paths.append(write_jsonl(root / f"part-{n}.jsonl", rows))
    with open(paths[1], "a", encoding="utf-8") as handle:
        handle.write('{"prompt": 3}\n')
    return paths


def _scan(paths, bundle) -> tuple[dict[str, dict], dict]:
    result = invoke("scan", *map(str, paths), "--model", str(bundle), *GEN, "-f", "jsonl")
    assert result.exit_code == 1, result.stderr
    return {r["id"]: r for r in jsonl_records(result.stdout)}, summary_of(result.stderr)


def _batch(*args: str, bundle: Path):
    return invoke(
        "batch",
        *args,
        "--model",
        str(bundle),
        "--max-new-tokens",
        "256",
        "--threads",
        "1",
        "--actors",
        "2",
        "--batch-size",
        "2",
    )


def _same(records: list[dict], expected: dict[str, dict]) -> None:
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), "an id was written twice"
    assert sorted(ids) == sorted(expected)
    for record in records:
        mine, theirs = dict(record), dict(expected[record["id"]])
        for key in NOISY:
            del mine[key], theirs[key]
        assert mine == theirs


@pytest.mark.slow  # starts a local Ray cluster and its worker processes
def test_batch_equals_scan(local_ray, fixture_bundle, tmp_path):
    paths = _shards(tmp_path / "in")
    expected, scan_summary = _scan(paths, fixture_bundle)
    assert "0-fake-id#2" in expected and scan_summary["skipped"] == 1
    out = tmp_path / "out.jsonl"
    result = _batch(str(tmp_path / "in"), "-o", str(out), bundle=fixture_bundle)
    assert result.exit_code == 1, result.stderr  # flagged, as scan
    _same(jsonl_records(out.read_text(encoding="utf-8")), expected)
    assert summary_of(result.stderr) == scan_summary
    assert "part-1.jsonl:7: 'prompt' is a number" in result.stderr  # reported as scan does
    # a rerun of a finished job judges nothing and says so
    again = _batch(str(tmp_path / "in"), "-o", str(out), "--resume", bundle=fixture_bundle)
    assert again.exit_code == 1 and "18 already done" in again.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 18


@pytest.mark.slow  # starts a local Ray cluster and its worker processes
def test_a_rerun_after_a_kill_finishes_the_output(local_ray, fixture_bundle, tmp_path):
    paths = _shards(tmp_path / "in")
    expected, _ = _scan(paths, fixture_bundle)
    out = tmp_path / "out.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in list(expected.values())[:5]]
    out.write_text("\n".join(lines) + "\n" + lines[0][:40], encoding="utf-8")  # cut mid-line
    refused = _batch(*map(str, paths), "-o", str(out), bundle=fixture_bundle)
    assert refused.exit_code == 2 and "--resume" in refused.stderr
    resumed = _batch(*map(str, paths), "-o", str(out), "--resume", bundle=fixture_bundle)
    assert resumed.exit_code == 1, resumed.stderr
    assert "5 already done" in resumed.stderr
    _same(jsonl_records(out.read_text(encoding="utf-8")), expected)


@pytest.mark.slow  # starts a local Ray cluster and its worker processes
def test_an_actor_killed_mid_job_loses_and_repeats_nothing(local_ray, fixture_bundle, tmp_path):
    from guardcli.cli.batch import BatchOptions, run_batch
    from guardcli.cli.options import ModelOptions
    from guardcli.distributed.judge import Judge
    from guardcli.io.options import InputOptions

    paths = _shards(tmp_path / "in")
    expected, _ = _scan(paths, fixture_bundle)
    marker = tmp_path / "killed"

    class DyingJudge(Judge):  # a local class: Ray ships it by value
        calls = 0

        def __call__(self, batch):  # noqa: ANN001, ANN204
            type(self).calls += 1
            if type(self).calls == 2:
                try:
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    pass
                else:  # the first actor to get here dies, once, mid-task
                    os._exit(1)
            return super().__call__(batch)

    out = tmp_path / "out.jsonl"
    options = BatchOptions(
        paths=[str(p) for p in paths],
        inputs=InputOptions(),
        model=ModelOptions(str(fixture_bundle), "cpu", 1, max_new_tokens=256),
        output=out,
        batch_size=2,
        actors=2,
        quiet=True,
    )
    assert int(run_batch(options, judge=DyingJudge)) == 1
    assert marker.exists(), "no actor was killed"
    _same(jsonl_records(out.read_text(encoding="utf-8")), expected)


# ---- no Ray needed ------------------------------------------------------------------------


def test_without_ray_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    data = write_jsonl(tmp_path / "in.jsonl", [pair_record(FIXTURE_PAIRS[0])])
    result = invoke("batch", str(data), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert "pip install 'guardcli[ray]'" in line
    assert not (tmp_path / "out.jsonl").exists()


def test_an_actor_refuses_a_bundle_that_is_not_the_drivers(fixture_bundle):
    from guardcli.core.guard import GuardOptions
    from guardcli.distributed.judge import Judge, JudgeConfig, manifest_sha256

    options = GuardOptions(max_new_tokens=256)
    good = Judge(JudgeConfig(str(fixture_bundle), manifest_sha256(fixture_bundle), options))
    batch = {"id": ["a"], "prompt": [FIXTURE_PAIRS[0].prompt], "response": [None], "source": ["x"]}
    [line] = good(batch)["line"]
    assert json.loads(line)["id"] == "a"
    with pytest.raises(ModelError, match="is not the driver's"):
        Judge(JudgeConfig(str(fixture_bundle), "0" * 64, options))


def test_the_cli_does_not_import_ray():
    import subprocess

    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom guardcli.cli import app\n"
        "CliRunner().invoke(app, ['batch', '--help'])\nprint('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
