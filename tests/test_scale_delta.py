"""scripts/scale_delta.py: a merged LoRA stage scaled part-way is the stage with a scaled adapter.

The trials in the nano card measure points between a model and its tuned successor; those
points are only meaningful if scale 0 and 1 give the two checkpoints back bit for bit, a
scale in between is the same as merging the adapter with a proportionally smaller alpha, and
mismatched checkpoints are refused instead of mixed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "scale_delta.py"


def _checkpoint(path: Path, tensors: dict) -> Path:
    path.mkdir(parents=True)
    safetensors_torch.save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps({"model_type": "llama"}), "utf-8")
    return path


def _run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True
    )


def _lora_pair(tmp_path: Path, alpha: float) -> tuple[Path, Path, dict]:
    """A base and its LoRA-merged successor: W + (alpha / r) B A on one linear weight."""
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 4, generator=gen)
    norm = torch.randn(4, generator=gen)
    lora_a, lora_b = torch.randn(2, 4, generator=gen), torch.randn(6, 2, generator=gen)
    base = _checkpoint(tmp_path / "base", {"w": weight, "norm": norm})
    tuned = _checkpoint(
        tmp_path / "tuned", {"w": weight + (alpha / 2) * lora_b @ lora_a, "norm": norm}
    )
    return base, tuned, {"w": weight, "a": lora_a, "b": lora_b, "norm": norm}


def test_scaling_the_delta_is_merging_the_adapter_with_a_smaller_alpha(tmp_path):
    base, tuned, parts = _lora_pair(tmp_path, alpha=32.0)
    done = _run("--base", base, "--tuned", tuned, "--scale", 0.3, "--output", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    out = safetensors_torch.load_file(str(tmp_path / "out" / "model.safetensors"))
    expected = parts["w"] + (32.0 * 0.3 / 2) * parts["b"] @ parts["a"]
    torch.testing.assert_close(out["w"], expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(out["norm"], parts["norm"])  # untouched tensors stay exact
    assert json.loads((tmp_path / "out" / "config.json").read_text("utf-8")) == {
        "model_type": "llama"
    }
    assert "2 tensors at 0.3" in done.stderr


@pytest.mark.parametrize("scale, source", [(0.0, "base"), (1.0, "tuned")])
def test_the_ends_of_the_line_are_the_two_checkpoints(tmp_path, scale, source):
    base, tuned, _ = _lora_pair(tmp_path, alpha=16.0)
    out = tmp_path / "out"
    assert _run("--base", base, "--tuned", tuned, "--scale", scale, "--output", out).returncode == 0
    got = safetensors_torch.load_file(str(out / "model.safetensors"))
    want = safetensors_torch.load_file(str(tmp_path / source / "model.safetensors"))
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_checkpoints_with_different_tensors_are_refused(tmp_path):
    base = _checkpoint(tmp_path / "base", {"w": torch.zeros(2, 2)})
    tuned = _checkpoint(tmp_path / "tuned", {"w": torch.ones(2, 2), "extra": torch.ones(2)})
    done = _run("--base", base, "--tuned", tuned, "--scale", 0.5, "--output", tmp_path / "out")
    assert done.returncode != 0
    assert "different tensors" in done.stderr
    assert not (tmp_path / "out" / "model.safetensors").exists()
    assert not (tmp_path / "out" / "config.json").exists()
