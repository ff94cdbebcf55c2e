"""scripts/offline_kit.sh: the air-gap kit installs with ``pip --no-index`` and gives verdicts.

The kit is made here with the fixture bundle (a real, tiny GuardReasoner-format model, so the
test takes a minute rather than building the 540 MB nano bundle), then installed into a fresh
venv with no index at all, and that venv's guardcli - which has never seen PyPI - is asked for
verdicts on the fixture pairs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.pairs import FIXTURE_PAIRS

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_the_kit_installs_offline_and_gives_verdicts(fixture_bundle, tmp_path):
    kit = tmp_path / "kit"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "GUARDCLI": str(BIN / "guardcli"),
        "GUARDCLI_KIT_BUNDLE": str(fixture_bundle),
    }
    made = subprocess.run(
        ["bash", str(ROOT / "scripts" / "offline_kit.sh"), str(kit)],
        capture_output=True,
        text=True,
        env=env,
    )
    if made.returncode != 0 and "No matching distribution" in made.stderr:
        pytest.skip(f"PyPI unreachable: {made.stderr.strip().splitlines()[-1]}")
    assert made.returncode == 0, made.stderr
    wheels = sorted(p.name.lower() for p in (kit / "wheels").iterdir())
    assert any(w.startswith("guardcli-") for w in wheels)
    assert any(w.startswith("onnxruntime_genai-") for w in wheels)
    assert not [w for w in wheels if w.startswith(("torch-", "transformers-", "trl-"))]
    check = subprocess.run(
        ["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=kit, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr

    venv = tmp_path / "offline-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull}
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-index", "--find-links",
         str(kit / "wheels"), "guardcli"],
        capture_output=True, text=True, env=offline,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.util as u; "
         "print(u.find_spec('torch') is None, u.find_spec('guardcli').origin)"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout.split()  # fmt: skip
    assert site[0] == "True" and str(venv) in site[1]  # the kit's wheel, not this checkout

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"id": p.id, "prompt": p.prompt, "response": p.response}) + "\n"
            for p in FIXTURE_PAIRS
        )
    )
    scan = subprocess.run(
        [str(venv / "bin" / "guardcli"), "scan", str(pairs), "--model", str(kit / "nano"),
         "--format", "jsonl", "--max-new-tokens", "256", "--device", "cpu"],
        capture_output=True, text=True, cwd=tmp_path,
        env={**offline, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )  # fmt: skip
    assert scan.returncode in (0, 1), scan.stderr
    rows = [json.loads(line) for line in scan.stdout.splitlines()]
    got = [(r["id"], r["request"], r["completion"], r["response"]) for r in rows]
    want = [(p.id, *(label.value for label in p.labels)) for p in FIXTURE_PAIRS]
    assert got == want
