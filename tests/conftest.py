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
# traces, converted to an fp32 bundle. The runtime tests use the copy committed under
# tests/data/fixture/ (testkit/committed.py), so they need no torch. Building it (two minutes,
# torch) is the slow tier's job: tests/test_fixture_build.py rebuilds it and checks the committed
# copy is still what the build code makes. GUARDCLI_FIXTURE_REBUILD=1 runs every test against a
# fresh build instead; GUARDCLI_TEST_CACHE=1 keeps builds in ~/.cache/guardcli-tests/ across
# runs (keyed by a hash of the build code and the installed versions).
CACHE_ENV = "GUARDCLI_TEST_CACHE"
REBUILD_ENV = "GUARDCLI_FIXTURE_REBUILD"


def _build_fixture(tmp_path_factory) -> Path:
    """A fresh build: ``checkpoint/`` (transformers) and ``bundle/`` side by side."""
    from guardcli.bundles.manifest import MANIFEST
    from testkit.fixture import build_fixture_bundle, fingerprint

    if os.environ.get(CACHE_ENV) != "1":
        return build_fixture_bundle(tmp_path_factory.mktemp("fixture-model")).parent
    # Path.home(), not XDG_CACHE_HOME: the autouse fixture above points that at a temp dir.
    root = Path.home() / ".cache" / "guardcli-tests" / f"fixture-{fingerprint()}"
    if (root / "bundle" / MANIFEST).is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    build_fixture_bundle(staging)
    try:
        staging.rename(root)
    except OSError:  # a concurrent session got there first: theirs is as good as ours
        shutil.rmtree(staging, ignore_errors=True)
    return root


@pytest.fixture(scope="session")
def fixture_build(tmp_path_factory) -> Path:
    """The fixture model trained and converted now (needs torch; skips without it)."""
    pytest.importorskip("torch", reason="building the fixture model needs torch")
    return _build_fixture(tmp_path_factory)


@pytest.fixture(scope="session")
def fixture_checkpoint(fixture_build) -> Path:
    """The transformers checkpoint the fixture bundle is converted from."""
    return fixture_build / "checkpoint"


@pytest.fixture(scope="session")
def fixture_bundle(request, tmp_path_factory) -> Path:
    """An fp32 bundle whose model writes FIXTURE_PAIRS' traces (testkit/fixture.py).

    A session copy of the committed one, so no test can alter the repository's."""
    if os.environ.get(REBUILD_ENV) == "1":
        return request.getfixturevalue("fixture_build") / "bundle"
    from testkit.committed import BUNDLE

    return Path(shutil.copytree(BUNDLE, tmp_path_factory.mktemp("fixture") / "bundle"))


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
