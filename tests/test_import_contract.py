"""The runtime must never pull in torch, transformers or the export pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ["torch", "transformers", "trl", "peft", "export", "datasets", "onnxruntime_genai"]


def _modules_after(statement: str) -> set[str]:
    code = f"{statement}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_cli_import_is_light():
    loaded = _modules_after("import guardcli.cli")
    leaked = {m.split(".")[0] for m in loaded} & set(HEAVY)
    assert not leaked, f"importing guardcli.cli loaded {sorted(leaked)}"


def test_help_is_torch_free():
    code = (
        "import sys, json\nfrom typer.testing import CliRunner\nfrom guardcli.cli import app\n"
        "CliRunner().invoke(app, ['scan', '--help'])\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}
    assert not loaded & {"torch", "transformers", "trl", "export"}


def test_import_linter_contract():
    """pyproject's [tool.importlinter] contracts: guardcli never imports export, its core
    imports none of io/eval/cli/tui, and its layers import only downwards."""
    lint = Path(sys.executable).parent / "lint-imports"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([str(lint)], capture_output=True, text=True, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr


def test_building_the_default_model_is_torch_free():
    """guardcli models build nano runs on the runtime install: gguf + safetensors + numpy."""
    loaded = _modules_after(
        "import guardcli.bundles.nano, gguf.quants, safetensors.numpy, guardcli.cli.models"
    )
    leaked = {m.split(".")[0] for m in loaded} & set(HEAVY)
    assert not leaked, f"the nano build path loaded {sorted(leaked)}"


def test_the_server_is_torch_free():
    """guardcli serve runs on the runtime install plus the serve extra (Starlette, uvicorn)."""
    loaded = _modules_after("import guardcli.serve.server, guardcli.cli.serve")
    leaked = {m.split(".")[0] for m in loaded} & set(HEAVY)
    assert not leaked, f"the server loaded {sorted(leaked)}"


def test_the_cli_does_not_import_the_server_stack():
    """Starlette and uvicorn load only when ``guardcli serve`` runs, so --help needs no extra."""
    loaded = {m.split(".")[0] for m in _modules_after("import guardcli.cli")}
    assert not loaded & {"starlette", "uvicorn", "anyio", "httpx"}
