from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

SHARED = Path(
    os.environ.get("GUARDCLI_SHARED", Path(__file__).resolve().parents[1] / ".." / "shared")
)
TEACHER = SHARED / "data" / "guardreasoner" / "teacher"


def teacher_files() -> list[Path]:
    return sorted(TEACHER.glob("*/*.jsonl")) if TEACHER.is_dir() else []


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED}); these tests need the GuardReasoner data")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """No test reads or writes the developer's real config or cache."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.delenv("GUARDCLI_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# --- the fixture guard model (testkit/fixture.py): a tiny Llama overfit to real GuardReasoner
# traces, converted to an fp32 bundle. Built once per session; GUARDCLI_TEST_CACHE=1 keeps it
# in ~/.cache/guardcli-tests/ across runs (keyed by a hash of its build code), else CI builds
# it fresh every time to prove the pipeline still works.
CACHE_ENV = "GUARDCLI_TEST_CACHE"


def _build_fixture_bundle(tmp_path_factory) -> Path:
    from guardcli.bundles.manifest import MANIFEST
    from testkit.fixture import build_fixture_bundle, fingerprint

    if os.environ.get(CACHE_ENV) != "1":
        return build_fixture_bundle(tmp_path_factory.mktemp("fixture-model"))
    # Path.home(), not XDG_CACHE_HOME: the autouse fixture above points that at a temp dir.
    root = Path.home() / ".cache" / "guardcli-tests" / f"fixture-{fingerprint()}"
    if (root / "bundle" / MANIFEST).is_file():
        return root / "bundle"
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    build_fixture_bundle(staging)
    try:
        staging.rename(root)
    except OSError:  # a concurrent session got there first: theirs is as good as ours
        shutil.rmtree(staging, ignore_errors=True)
    return root / "bundle"


@pytest.fixture(scope="session")
def fixture_bundle(tmp_path_factory) -> Path:
    """An fp32 bundle whose model writes FIXTURE_PAIRS' traces (testkit/fixture.py)."""
    return _build_fixture_bundle(tmp_path_factory)


@pytest.fixture
def fixture_guard(fixture_bundle):
    """A Guard over the fixture bundle, on CPU, max_new_tokens=256, batch_size=4."""
    from guardcli.bundles.resolve import Resolved, open_guard
    from guardcli.core.guard import GuardOptions

    guard, _manifest, _device = open_guard(
        Resolved(fixture_bundle, "--model"),
        device="cpu",
        options=GuardOptions(max_new_tokens=256, batch_size=4),
    )
    return guard
