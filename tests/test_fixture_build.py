"""The committed fixture bundle (tests/data/fixture/) is what the build code makes today.

The fast tier runs every runtime test against that committed copy, so it needs no torch; this
slow tier proves the copy is not stale: its stamp matches the build sources, and a fresh
build (training and conversion, testkit/fixture.py) reaches the same verdicts through the
real runtime.
"""

from __future__ import annotations

import json
import shutil

import pytest

from guardcli.bundles.resolve import Resolved, open_guard
from guardcli.core.guard import GuardOptions
from testkit.committed import BUNDLE, REBUILD_COMMAND, stale_reason
from testkit.fixture import TRAINING_REPORT, source_fingerprint
from testkit.pairs import FIXTURE_PAIRS

pytestmark = pytest.mark.slow


def _judge(bundle) -> list[tuple[str, tuple, str]]:  # noqa: ANN001
    guard, _manifest, _device = open_guard(
        Resolved(bundle, "--model"),
        device="cpu",
        options=GuardOptions(max_new_tokens=256, batch_size=4),
    )
    results = guard.classify_batch([pair.sample() for pair in FIXTURE_PAIRS])
    return [
        (
            r.sample.id,
            (r.verdict.request, r.verdict.completion, r.verdict.response),
            r.generation.text,
        )
        for r in results
    ]


def test_the_committed_bundle_is_stamped_with_the_current_build_sources():
    assert stale_reason() is None, stale_reason()


def test_a_stale_stamp_names_the_fix(monkeypatch):
    monkeypatch.setattr("testkit.committed.committed_fingerprint", lambda: "0" * 16)
    reason = stale_reason()
    assert reason is not None and "\n" not in reason
    assert REBUILD_COMMAND in reason and source_fingerprint() in reason


def test_a_fresh_build_judges_exactly_as_the_committed_bundle(fixture_build, tmp_path):
    committed = _judge(shutil.copytree(BUNDLE, tmp_path / "committed"))
    fresh = _judge(fixture_build / "bundle")
    assert fresh == committed
    assert [(i, labels, text) for i, labels, text in committed] == [
        (p.id, p.labels, p.trace) for p in FIXTURE_PAIRS
    ]
    report = json.loads((BUNDLE.parent / TRAINING_REPORT).read_text(encoding="utf-8"))
    assert (
        report["trace_tokens"]
        == json.loads((fixture_build / "checkpoint" / TRAINING_REPORT).read_text(encoding="utf-8"))[
            "trace_tokens"
        ]
    )
