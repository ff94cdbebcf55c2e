"""There, on the GPU machine: rebuild what ``pack`` cut up (``unpack``) and hand back what the
recipe trained (``send``). Both run in the last call, from scripts/gpu_recipe.sh."""

from __future__ import annotations

import gzip
import shutil
import tarfile
from pathlib import Path

from export import ExportError
from export.gpu import BASE, DATA, LAST, MANIFEST, PARTS, PHASES, RECIPE, STAGING
from export.gpu.pack import Manifest, sha256_of


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
            if sha256_of(path) != part.sha256:
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
    if sha256_of(gguf) != manifest.gguf_sha256:
        raise ExportError(f"gpu unpack: {gguf} does not match the packed GGUF's sha256")
    with tarfile.open(root / LAST / "data.tar.gz") as tar:
        tar.extractall(root / DATA, filter="data")
    for name, digest in manifest.data.items():
        if sha256_of(root / DATA / name) != digest:
            raise ExportError(f"gpu unpack: {DATA / name} differs from the packed file")
    place_inputs(root)
    return manifest


def place_inputs(root: Path) -> None:
    """The distilled traces (from .gpu/data) and the committed self-distillation where the
    recipe's pipeline finds its distill and self-distill stages done: there before training,
    here before merging what came back."""
    from export.distill.reuse import reuse
    from export.recipe import load_recipe

    recipe = load_recipe(root / RECIPE)
    work = root / recipe.workdir
    (work / "distill").mkdir(parents=True, exist_ok=True)
    for name in ("train.jsonl", "train.jsonl.summary.json"):
        shutil.copyfile(root / DATA / "distill" / name, work / "distill" / name)
    committed = root / recipe.section("self-distill")["reuse"]
    reuse(committed, work / "self-distill" / "train.jsonl")


def send(root: Path, out: Path) -> list[Path]:
    """Each phase's saved state (fp16 adapter, its config, progress) and the pipeline's log into
    ``out``: 7 files, two folders deep, inside what a call brings back (8 files, 16 MiB each)."""
    from export.recipe import load_recipe
    from export.train.fast_sft import STATE, publish_state

    work = root / load_recipe(root / RECIPE).workdir
    sent = []
    for phase in PHASES:
        state = work / phase / STATE
        if (state / "progress.json").is_file():
            publish_state(state, out / phase)
            sent += sorted(p for p in (out / phase).rglob("*") if p.is_file())
    log = work / "pipeline_log.json"
    if log.is_file():
        shutil.copyfile(log, out / log.name)
        sent.append(out / log.name)
    if not any(PHASES[0] in str(p) for p in sent):
        raise ExportError("gpu send: no phase saved a state", hint="read the recipe's log above")
    return sent
