"""scripts/offline_kit.sh: the air-gap kit installs with ``pip --no-index`` and gives verdicts.

The kit is made here with the fixture bundle (a real, tiny GuardReasoner-format model, so the
test takes a minute rather than building the 540 MB nano bundle), with no venv activated and no
guardcli on PATH, then installed by the kit's own install.sh with no index at all, and that
venv's guardcli - which has never seen PyPI - is asked for verdicts on the fixture pairs with
no --model: the kit made its bundle the default. The fast tests check that the script finds
its Python itself, and stops before writing anything when it cannot make a whole kit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from guardcli.bundles.manifest import bundle_root
from testkit.pairs import FIXTURE_PAIRS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "offline_kit.sh"


def bare_env(**extra: str) -> dict[str, str]:
    """A shell where nothing is activated: no venv on PATH, no VIRTUAL_ENV, no PYTHONPATH."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHON", "GUARDCLI_KIT_BUNDLE")
    env = {key: value for key, value in os.environ.items() if key not in drop}
    return {**env, "PATH": "/usr/bin:/bin", **extra}


def copy_of_script(tmp_path: Path) -> tuple[Path, Path]:
    """The script in a checkout of its own (tmp/root/scripts/), so what it finds is ours."""
    root = tmp_path / "root"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, root / "scripts")
    return root, root / "scripts" / "offline_kit.sh"


def run_kit(script: Path, kit: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script), str(kit)], capture_output=True, text=True, env=env, cwd=kit.parent
    )


def test_without_a_python_that_has_guardcli_it_writes_nothing_and_names_the_fix(tmp_path):
    usable = subprocess.run(
        ["python3", "-c", "import guardcli.cli, onnxruntime_genai"], cwd="/", env=bare_env()
    )
    if usable.returncode == 0:
        pytest.skip("this machine's python3 has guardcli installed")
    root, script = copy_of_script(tmp_path)
    kit = tmp_path / "kit"
    made = run_kit(script, kit, bare_env())
    assert made.returncode == 2
    assert made.stderr.startswith("offline_kit: error: no Python with guardcli installed")
    assert "scripts/quickstart.sh" in made.stderr and "PYTHON=" in made.stderr
    assert "command not found" not in made.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]  # no kit, no partial kit


def test_it_finds_the_checkouts_venv_itself(tmp_path):
    root, script = copy_of_script(tmp_path)
    venv_python = root / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    venv_python.chmod(0o755)
    kit = tmp_path / "kit"
    not_a_bundle = tmp_path / "empty"
    not_a_bundle.mkdir()
    made = run_kit(script, kit, bare_env(GUARDCLI_KIT_BUNDLE=str(not_a_bundle)))
    assert f"offline_kit: using {venv_python} (guardcli " in made.stderr, made.stderr
    assert made.returncode == 2
    assert f"GUARDCLI_KIT_BUNDLE={not_a_bundle} is not a model bundle" in made.stderr
    assert not kit.exists() and not Path(f"{kit}.partial").exists()


def test_a_bundle_failing_verification_leaves_no_kit(tmp_path, fixture_bundle):
    broken = tmp_path / "bundle"
    shutil.copytree(fixture_bundle, broken)
    (broken / "tokenizer.json").write_text("{}")
    kit = tmp_path / "kit"
    made = run_kit(SCRIPT, kit, bare_env(PYTHON=sys.executable, GUARDCLI_KIT_BUNDLE=str(broken)))
    assert made.returncode == 2, made.stderr
    assert f"offline_kit: error: {broken} fails verification" in made.stderr
    assert not kit.exists() and not Path(f"{kit}.partial").exists()


@pytest.mark.slow
def test_the_kit_installs_offline_and_gives_verdicts(fixture_bundle, tmp_path):
    kit = tmp_path / "kit"
    env = bare_env(PYTHON=sys.executable, GUARDCLI_KIT_BUNDLE=str(fixture_bundle))
    made = run_kit(SCRIPT, kit, env)
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
    pin = bundle_root(fixture_bundle)  # the root to carry by another channel, and pin
    assert (kit / "ROOT_SHA256").read_text() == f"{pin}\n"
    assert f"--expect {pin}" in (kit / "INSTALL.txt").read_text()
    assert f"root sha256 {pin}" in made.stderr

    venv = tmp_path / "offline-venv"
    offline = {
        **bare_env(PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    installed = subprocess.run(
        ["bash", str(kit / "install.sh"), str(venv)], capture_output=True, text=True, env=offline
    )
    assert installed.returncode == 0, installed.stderr
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.util as u; "
         "print(u.find_spec('torch') is None, u.find_spec('guardcli').origin)"],
        capture_output=True, text=True, check=True, cwd=tmp_path, env=offline,
    ).stdout.split()  # fmt: skip
    assert site[0] == "True" and str(venv) in site[1]  # the kit's wheel, not this checkout

    pinned = subprocess.run(
        [str(venv / "bin" / "guardcli"), "models", "verify", str(kit / "nano"), "--expect", pin],
        capture_output=True, text=True, cwd=tmp_path,
        env={**offline, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )  # fmt: skip
    assert pinned.returncode == 0 and "as pinned" in pinned.stdout, pinned.stderr

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"id": p.id, "prompt": p.prompt, "response": p.response}) + "\n"
            for p in FIXTURE_PAIRS
        )
    )
    scan = subprocess.run(  # no --model: install.sh made the kit's bundle the default
        [str(venv / "bin" / "guardcli"), "scan", str(pairs), "--format", "jsonl",
         "--max-new-tokens", "256", "--device", "cpu"],
        capture_output=True, text=True, cwd=tmp_path, env=offline,
    )  # fmt: skip
    assert scan.returncode in (0, 1), scan.stderr
    rows = [json.loads(line) for line in scan.stdout.splitlines()]
    got = [(r["id"], r["request"], r["completion"], r["response"]) for r in rows]
    want = [(p.id, *(label.value for label in p.labels)) for p in FIXTURE_PAIRS]
    assert got == want
