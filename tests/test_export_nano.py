"""export.nano's choice of what to package: every stage's adapter in recipe order, the last
stage's bundle as the skeleton (a recipe may stop after any R-SFT round)."""

from __future__ import annotations

import pytest

from export.nano import STAGES, last_bundle
from guardcli.bundles.manifest import MANIFEST
from guardcli.errors import UsageError


def test_the_skeleton_is_the_last_stage_that_has_a_bundle(tmp_path):
    with pytest.raises(UsageError, match="no stage bundle"):
        last_bundle(tmp_path)
    for name in ("rsft", "rsft-self", "rsft-broad", "hsdpo"):
        (tmp_path / "bundles" / name).mkdir(parents=True)
        (tmp_path / "bundles" / name / MANIFEST).write_text("{}", encoding="utf-8")
        assert last_bundle(tmp_path) == tmp_path / "bundles" / name


def test_the_packaged_stages_stack_in_recipe_order():
    assert [stage for stage, _ in STAGES] == ["rsft", "rsft-self", "rsft-broad", "hsdpo"]
