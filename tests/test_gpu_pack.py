"""export.gpu: what a GPU lease carries must fit each call, come back together byte for byte,
refuse a wrong or missing part with the fix, and return states the pipeline resumes."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from export import ExportError
from export.gpu import DATA, MANIFEST, PARTS, RECIPE, RETURNED
from export.gpu.device import send, unpack
from export.gpu.pack import MARGIN, Manifest, part_sizes, write_pack
from export.gpu.receive import receive
from guardcli.bundles.manifest import sha256_file

MIB = 1 << 20


@pytest.mark.parametrize(
    ("total", "budget", "extra"),
    [(88 * MIB, 32 * MIB, 3 * MIB), (10, 100, 5), (100, 10, 1), (64, 32, 0), (1, 2, 1)],
)
def test_parts_fit_their_calls_in_as_few_calls_as_possible(total, budget, extra):
    sizes = part_sizes(total, budget, extra)
    assert sum(sizes) == total
    assert all(0 < s <= budget for s in sizes[:-1]) and sizes[-1] <= budget - extra
    fewer = len(sizes) - 1  # one call less could not have carried it all
    assert fewer * budget - extra < total


def test_a_call_too_small_for_the_last_share_is_refused_with_the_fix():
    with pytest.raises(ExportError, match="working tree"):
        part_sizes(100, 10, 10)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository root with the recipe's layout: the GPU recipe, a committed self-distillation."""
    root = tmp_path / "repo"
    committed = root / "models/nano/train-state/self-distill"
    committed.mkdir(parents=True)
    (committed / "train.jsonl").write_text('{"trace": 1}\n', encoding="utf-8")
    (committed / "train.jsonl.summary.json").write_text("{}", encoding="utf-8")
    (root / RECIPE).write_text(
        "workdir: runs/nano-gpu\nbase: .gpu/base/x.gguf\n"
        "self-distill:\n  reuse: models/nano/train-state/self-distill\n",
        encoding="utf-8",
    )
    return root


def _pack(checkout: Path, tmp_path: Path, gguf_bytes: bytes) -> Manifest:
    sources = tmp_path / "sources"
    (sources / "distill").mkdir(parents=True)
    gguf = sources / "x.gguf"
    gguf.write_bytes(gguf_bytes)
    files = {
        "guardreasoner_train_prompts.jsonl": sources / "prompts.jsonl",
        "distill/train.jsonl": sources / "distill" / "train.jsonl",
        "distill/train.jsonl.summary.json": sources / "distill" / "summary.json",
    }
    for number, path in enumerate(files.values()):
        path.write_text(f'{{"row": {number}}}\n', encoding="utf-8")
    # a 1 MiB "working tree" under a 3 MiB limit: 2 MiB of the GGUF per call
    return write_pack(checkout, gguf, files, tree=MIB, wheels=(), limit=3 * MIB + MARGIN)


def _to_the_gpu_machine(checkout: Path, manifest: Manifest, staging: Path) -> None:
    """What the calls do there: each earlier part is copied to the staging folder by its own
    call; only the last part stays in the tree."""
    staging.mkdir()
    for part in manifest.parts[:-1]:
        (checkout / PARTS / part.name).rename(staging / part.name)


def test_the_packed_gguf_comes_back_byte_for_byte_with_the_stage_inputs(checkout, tmp_path):
    blob = random.Random(0).randbytes(5 * MIB)  # incompressible: three parts
    manifest = _pack(checkout, tmp_path, blob)
    assert len(manifest.parts) >= 3 and len(manifest.calls) == len(manifest.parts)
    assert manifest.calls[-1].command == "bash scripts/gpu_recipe.sh"
    assert all(len(call.carry) <= 8 for call in manifest.calls)
    gguf = checkout / ".gpu/base/x.gguf"
    gguf.unlink()  # there, only the parts exist
    _to_the_gpu_machine(checkout, manifest, tmp_path / "staging")
    unpack(checkout, tmp_path / "staging")
    assert gguf.read_bytes() == blob
    work = checkout / "runs/nano-gpu"
    assert (work / "distill/train.jsonl").read_text(encoding="utf-8") == '{"row": 1}\n'
    assert not (work / "self-distill").exists()  # sampled there, not reused
    assert Manifest.read(checkout / MANIFEST) == manifest


def test_a_missing_or_altered_part_is_refused_naming_it(checkout, tmp_path):
    manifest = _pack(checkout, tmp_path, random.Random(1).randbytes(3 * MIB))
    staging = tmp_path / "staging"
    _to_the_gpu_machine(checkout, manifest, staging)
    first = staging / manifest.parts[0].name
    first.write_bytes(first.read_bytes()[:-1] + b"\0")
    with pytest.raises(ExportError, match=f"{first}.*sha256"):
        unpack(checkout, staging)
    first.unlink()
    with pytest.raises(ExportError, match=manifest.parts[0].name) as error:
        unpack(checkout, staging)
    assert "make the calls again" in error.value.hint


def test_altered_data_is_refused(checkout, tmp_path):
    manifest = _pack(checkout, tmp_path, b"gguf")
    assert len(manifest.parts) == 1 and len(manifest.calls) == 1
    prompts = checkout / DATA / "guardreasoner_train_prompts.jsonl"
    assert sha256_file(prompts) == manifest.data["guardreasoner_train_prompts.jsonl"]
    data = json.loads((checkout / MANIFEST).read_text(encoding="utf-8"))
    data["data"]["distill/train.jsonl"] = "0" * 64
    (checkout / MANIFEST).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ExportError, match="distill/train.jsonl differs"):
        unpack(checkout, tmp_path / "none")


def _state(folder: Path, step: int, ended: dict | None = None) -> None:
    import torch
    from safetensors.torch import save_file

    (folder / "adapter").mkdir(parents=True)
    save_file({"w": torch.ones(2, 2)}, str(folder / "adapter" / "adapter_model.safetensors"))
    (folder / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
    log = {"steps": [], "ended_at": ended} if ended else {"steps": []}
    (folder / "progress.json").write_text(json.dumps({"step": step, "log": log}), "utf-8")
    (folder / "trainer.pt").write_bytes(b"optimizer: never sent")


def test_states_go_back_small_and_land_where_the_pipeline_resumes_them(checkout, tmp_path):
    from safetensors.torch import load_file

    work = checkout / "runs/nano-gpu"
    _state(work / "rsft/state", 985)
    _state(work / "rsft-self/state", 700, {"step": 700, "of": 4308, "reason": "time limit"})
    (work / "self-distill").mkdir(parents=True)
    (work / "self-distill/train.jsonl").write_text('{"sampled": 1}\n', encoding="utf-8")
    (work / "self-distill/train.jsonl.summary.json").write_text("{}", encoding="utf-8")
    out = tmp_path / "out"
    sent = send(checkout, out)
    assert sorted(p.name for p in sent) == ["rsft-self.safetensors", "rsft.safetensors", RETURNED]
    assert all(p.stat().st_size < 16 * MIB for p in sent)  # what one returned file may be
    assert str(load_file(str(out / "rsft-self.safetensors"))["w"].dtype) == "torch.float16"

    here = checkout  # the same layout here: the pack's data and the committed self-distillation
    shutil.rmtree(here / "runs")
    (here / DATA / "distill").mkdir(parents=True)
    for name in ("train.jsonl", "train.jsonl.summary.json"):
        (here / DATA / "distill" / name).write_text("{}\n", encoding="utf-8")
    lines = receive(here, out)
    assert lines[0].startswith("rsft: finished its schedule at step 985")
    assert lines[1].startswith("rsft-self: ended by its time limit at step 700 of 4308")
    back = here / "runs/nano-gpu"
    assert (back / "self-distill/train.jsonl").read_text("utf-8") == '{"sampled": 1}\n'
    assert (back / "distill/train.jsonl").is_file()
    for phase, step in (("rsft", 985), ("rsft-self", 700)):
        state = back / phase / "state"
        progress = json.loads((state / "progress.json").read_text("utf-8"))
        assert progress["step"] == step and progress["log"]["ended_at"]["step"] == step
        adapter = load_file(str(state / "adapter/adapter_model.safetensors"))
        assert str(adapter["w"].dtype) == "torch.float16"
        assert not (state / "trainer.pt").exists()
    with pytest.raises(ExportError, match="--force"):
        receive(here, out)
    stale = back / "bundles/rsft-self/guardcli.json"  # converted from the earlier receive
    stale.parent.mkdir(parents=True)
    stale.write_text("{}", encoding="utf-8")
    assert len(receive(here, out, force=True)) == len(lines)
    assert not stale.exists()  # else the pipeline would skip converting the new state


def test_without_sampled_traces_the_committed_self_distillation_stands_in(checkout, tmp_path):
    _state(checkout / "runs/nano-gpu/rsft/state", 3)
    out = tmp_path / "out"
    send(checkout, out)
    (checkout / DATA / "distill").mkdir(parents=True)
    for name in ("train.jsonl", "train.jsonl.summary.json"):
        (checkout / DATA / "distill" / name).write_text("{}\n", encoding="utf-8")
    shutil.rmtree(checkout / "runs")
    lines = receive(checkout, out)
    assert lines[1] == "rsft-self: nothing came back"
    traces = checkout / "runs/nano-gpu/self-distill/train.jsonl"
    assert traces.read_text("utf-8") == '{"trace": 1}\n'  # the committed copy


def test_unpack_without_a_pack_names_the_command_that_makes_it(checkout):
    with pytest.raises(ExportError, match="manifest.json") as error:
        unpack(checkout)
    assert "export.gpu pack" in error.value.hint


def test_send_with_nothing_trained_says_so(checkout, tmp_path):
    with pytest.raises(ExportError, match="no phase saved a state"):
        send(checkout, tmp_path / "out")
