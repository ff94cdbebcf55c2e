"""There, on the GPU machine: rebuild what ``pack`` cut up (``unpack``) and hand back what the
recipe trained (``send``). Both run in the last call, from scripts/gpu_recipe.sh."""

from __future__ import annotations

import gzip
import shutil
import tarfile
import tempfile
from pathlib import Path

from export import ExportError
from export.gpu import (
    ADAPTER,
    BASE,
    COMMITTED_SELF_DISTILL,
    DATA,
    LAST,
    MANIFEST,
    PARTS,
    PHASES,
    RECIPE,
    RETURNED,
    STAGING,
)
from export.gpu.pack import Manifest
from guardcli.bundles.manifest import sha256_file


def find_part(root: Path, name: str, staging: Path) -> Path:
    for folder in (root / PARTS, staging):
        if (folder / name).is_file():
            return folder / name
    raise ExportError(
        f"gpu unpack: part {name} is on neither {PARTS} nor {staging}",
        hint="its staging call did not reach this machine (or the machine was given back "
        "between calls): make the calls again from the first, each right after the last",
    )


def unpack(root: Path, staging: Path = STAGING) -> Manifest:
    """Check every part and data file against the manifest; rebuild the GGUF and put the
    recipe's stage inputs where the pipeline finds them done."""
    manifest = Manifest.read(root / MANIFEST)
    packed = root / BASE / (manifest.gguf + ".gz")
    packed.parent.mkdir(parents=True, exist_ok=True)
    with packed.open("wb") as out:
        for part in manifest.parts:
            path = find_part(root, part.name, staging)
            if sha256_file(path) != part.sha256:
                raise ExportError(
                    f"gpu unpack: {path} is not the part that was packed (sha256 differs)",
                    hint="pack again here and make every call again",
                )
            with path.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    gguf = root / BASE / manifest.gguf
    with gzip.open(packed, "rb") as src, gguf.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    packed.unlink()
    if sha256_file(gguf) != manifest.gguf_sha256:
        raise ExportError(f"gpu unpack: {gguf} does not match the packed GGUF's sha256")
    with tarfile.open(root / LAST / "data.tar.gz") as tar:
        tar.extractall(root / DATA, filter="data")
    for name, digest in manifest.data.items():
        if sha256_file(root / DATA / name) != digest:
            raise ExportError(f"gpu unpack: {DATA / name} differs from the packed file")
    place_inputs(root)
    return manifest


def place_inputs(root: Path) -> None:
    """The distilled traces (from .gpu/data) where the recipe's pipeline finds its distill
    stage done."""
    work = workdir(root)
    (work / "distill").mkdir(parents=True, exist_ok=True)
    for name in ("train.jsonl", "train.jsonl.summary.json"):
        shutil.copyfile(root / DATA / "distill" / name, work / "distill" / name)


def reuse_self_distill(root: Path) -> None:
    """The committed CPU self-distillation in place of sampling there: what phase 2 trains on
    when the sampling did not finish inside its share of the lease."""
    from export.distill.reuse import reuse
    from export.recipe import load_recipe

    recipe = load_recipe(root / RECIPE)
    committed = root / recipe.section("self-distill").get("reuse", COMMITTED_SELF_DISTILL)
    reuse(committed, root / recipe.workdir / "self-distill" / "train.jsonl")


def workdir(root: Path) -> Path:
    from export.recipe import load_recipe

    return root / load_recipe(root / RECIPE).workdir


def send(root: Path, out: Path) -> list[Path]:
    """What a call can bring back (8 files, 16 MiB each): each phase's adapter (fp16, 9.8 MB)
    as a file of its own, and one archive of everything small that receive needs: the
    adapters' configs, each phase's progress (step, losses, evaluations), the self-distilled
    traces phase 2 trained on, and the pipeline's log."""
    from export.train.sft_state import PROGRESS, STATE, publish_state

    work = workdir(root)
    out.mkdir(parents=True, exist_ok=True)
    sent = []
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(out / RETURNED, "w:gz") as tar:
        for phase in PHASES:
            state = work / phase / STATE
            if not (state / PROGRESS).is_file():
                continue
            publish_state(state, Path(tmp) / phase)
            adapter = Path(tmp) / phase / "adapter" / ADAPTER
            shutil.copyfile(adapter, out / f"{phase}.safetensors")
            sent.append(out / f"{phase}.safetensors")
            adapter.unlink()
            tar.add(Path(tmp) / phase, arcname=phase)
        if not sent:
            raise ExportError("gpu send: no phase saved a state", hint="read the log above")
        for name in ("self-distill/train.jsonl", "self-distill/train.jsonl.summary.json"):
            if (work / name).is_file():
                tar.add(work / name, arcname=name)
        if (work / "pipeline_log.json").is_file():
            tar.add(work / "pipeline_log.json", arcname="pipeline_log.json")
    return [*sent, out / RETURNED]
