"""The fixture bundle committed under tests/data/fixture/, so the fast tests need no torch.

Training and converting the fixture model (testkit/fixture.py) takes about two minutes and
needs torch; the runtime tests only need the resulting 800 KB bundle. The copy in the
repository is stamped with ``source_fingerprint()`` in ``FINGERPRINT`` beside it (not inside:
a bundle refuses files its manifest does not list). The slow tier (tests/test_fixture_build.py)
checks that stamp and rebuilds the fixture to prove its verdicts still match, so a change to
the build code cannot leave a stale bundle behind unnoticed.

``python -m testkit.committed`` rebuilds it in place.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from testkit.fixture import ROOT, TRAINING_REPORT, build_fixture_bundle, source_fingerprint

HOME = ROOT / "tests" / "data" / "fixture"
BUNDLE = HOME / "bundle"
STAMP = HOME / "FINGERPRINT"
REBUILD_COMMAND = "python -m testkit.committed"


def committed_fingerprint() -> str:
    """The source fingerprint the committed bundle was built from ('' when it has none)."""
    return STAMP.read_text(encoding="utf-8").strip() if STAMP.is_file() else ""


def stale_reason() -> str | None:
    """None when the committed bundle matches the build sources, else a one-line fix."""
    recorded, current = committed_fingerprint(), source_fingerprint()
    if recorded == current:
        return None
    return (
        f"{STAMP.relative_to(ROOT)} records {recorded or 'nothing'} but the fixture's build "
        f"sources hash to {current}: rebuild the committed bundle with `{REBUILD_COMMAND}` "
        "(needs torch, about two minutes) and commit tests/data/fixture/"
    )


def refresh(home: Path = HOME) -> Path:
    """Build the fixture in a scratch directory and replace ``home``'s bundle with it."""
    with tempfile.TemporaryDirectory(prefix="guardcli-fixture-") as scratch:
        built = build_fixture_bundle(Path(scratch))
        home.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(home / "bundle", ignore_errors=True)
        shutil.copytree(built, home / "bundle")
        shutil.copy2(built.parent / "checkpoint" / TRAINING_REPORT, home / TRAINING_REPORT)
    (home / STAMP.name).write_text(source_fingerprint() + "\n", encoding="utf-8")
    return home / "bundle"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog=REBUILD_COMMAND,
        description="Rebuild the committed fixture bundle (tests/data/fixture/) from source.",
    )
    parser.parse_args(argv)
    started = time.perf_counter()
    bundle = refresh()
    print(f"committed fixture bundle: {bundle} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
