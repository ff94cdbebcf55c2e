"""Here: what a GPU lease needs that the working tree lacks, cut to what each call can carry.

The base GGUF (98 MB, 88 MiB gzipped) is larger than one call's 64 MiB, and the working tree
takes its share of every call, so the GGUF travels gzipped in parts over several calls; the
last call also carries the prompts, the distilled traces and the wheels, and runs the recipe.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from export import ExportError
from export.gpu import BASE, DATA, LAST, MANIFEST, PACK, PARTS, RECIPE, STAGING, TREE_LIMIT
from guardcli.bundles.manifest import sha256_file

WHEELS = ("gguf",)  # what the GPU image lacks (its package list: .library/device/KINDS.md)
MARGIN = 1 << 20  # bytes kept free under the limit in every call


@dataclass(frozen=True)
class Part:
    name: str  # under .gpu/parts
    size: int
    sha256: str


@dataclass(frozen=True)
class Call:
    carry: list[str]
    command: str
    timeout_s: int


@dataclass
class Manifest:
    """What unpack checks there and the calls to make, written to .gpu/last/manifest.json."""

    gguf: str  # file name under .gpu/base
    gguf_sha256: str
    parts: list[Part]
    data: dict[str, str]  # path under .gpu/data -> sha256
    tree_bytes: int
    calls: list[Call] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ExportError(
                f"gpu: no {path} ({exc.strerror})",
                hint="run `python -m export.gpu pack` here; the last call carries .gpu/last",
            ) from None
        raw["parts"] = [Part(**p) for p in raw["parts"]]
        raw["calls"] = [Call(**c) for c in raw.get("calls", [])]
        return cls(**raw)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")


def part_sizes(total: int, budget: int, last_extra: int) -> list[int]:
    """Sizes of the parts that carry ``total`` bytes when a call carries ``budget`` and the last
    call also ``last_extra``: as few calls as fit, the earlier parts equal."""
    if budget <= last_extra:
        raise ExportError(
            f"a call can carry {budget >> 20} MiB beside the working tree, and the last call's "
            f"data and wheels alone take {last_extra >> 20} MiB",
            hint="shrink the working tree (large untracked files?) and pack again",
        )
    last = min(total, budget - last_extra)
    rest = total - last
    calls = -(-rest // budget)  # the earlier calls, each at most one budget
    sizes = [rest // calls + (1 if i < rest % calls else 0) for i in range(calls)] if calls else []
    return [*sizes, last]


def tree_bytes(root: Path) -> int:
    """What every call sends before any carried path: tracked and untracked-not-ignored files
    (a link counts as a link)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    paths = {root / name.decode() for name in listed if name}
    return sum(p.lstat().st_size for p in paths if p.exists() or p.is_symlink())


def calls_for(parts: list[Part]) -> list[Call]:
    staged = [
        Call(
            [str(PARTS / p.name)],
            f"mkdir -p {STAGING} && cp {PARTS / p.name} {STAGING}/ && ls -l {STAGING}",
            120,
        )
        for p in parts[:-1]
    ]
    last = Call([str(PARTS / parts[-1].name), str(LAST)], "bash scripts/gpu_recipe.sh", 600)
    return [*staged, last]


def download_wheels(dest: Path, names: tuple[str, ...]) -> None:
    """The versions installed here, as wheels for the GPU image's Python (3.12, x86-64)."""
    from importlib.metadata import version

    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest)]
        command += ["--only-binary=:all:", "--python-version", "3.12", f"{name}=={version(name)}"]
        if subprocess.call(command) != 0:
            raise ExportError(f"pip could not download the {name} wheel", hint="is pip online?")


def pack(root: Path, gguf: Path, prompts: Path, *, distill: bool = True) -> Manifest:
    from export.pipeline import run
    from export.recipe import load_recipe

    recipe = load_recipe(root / RECIPE)
    if distill:  # the teacher traces are in ../shared, which does not travel
        run(recipe, only=["distill"], say=lambda line: print(line, file=sys.stderr))
    traces = root / recipe.workdir / "distill" / "train.jsonl"
    data_files = {
        "guardreasoner_train_prompts.jsonl": prompts,
        "distill/train.jsonl": traces,
        "distill/train.jsonl.summary.json": traces.with_name("train.jsonl.summary.json"),
    }
    missing = [str(src) for src in data_files.values() if not src.is_file()]
    if missing:
        raise ExportError(f"gpu pack: no {missing[0]}", hint="run the recipe's distill stage")
    return write_pack(root, gguf, data_files, tree_bytes(root))


def write_pack(
    root: Path,
    gguf: Path,
    data_files: dict[str, Path],
    tree: int,
    wheels: tuple[str, ...] = WHEELS,
    limit: int = TREE_LIMIT,
) -> Manifest:
    """.gpu/ for a tree of ``tree`` bytes: the data plain (the recipe reads it here) and tarred
    (it travels), the GGUF copied and gzipped into parts, the manifest with the calls."""
    for old in (PARTS, LAST, DATA):
        shutil.rmtree(root / old, ignore_errors=True)
    for name, src in data_files.items():
        (root / DATA / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / DATA / name)
    (root / LAST).mkdir(parents=True)
    with tarfile.open(root / LAST / "data.tar.gz", "w:gz") as tar:
        for name in data_files:
            tar.add(root / DATA / name, arcname=name)
    if wheels:
        download_wheels(root / LAST / "wheels", wheels)
    base = root / BASE / gguf.name
    if not base.is_file() or base.stat().st_size != gguf.stat().st_size:
        base.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(gguf, base)
    packed = root / PACK / "base.gguf.gz"
    with gguf.open("rb") as src, gzip.open(packed, "wb", compresslevel=6) as out:
        shutil.copyfileobj(src, out, 1 << 20)
    extra = sum(f.stat().st_size for f in (root / LAST).rglob("*") if f.is_file()) + (64 << 10)
    sizes = part_sizes(packed.stat().st_size, limit - tree - MARGIN, extra)
    parts = _split(packed, root / PARTS, sizes)
    packed.unlink()
    manifest = Manifest(
        gguf=gguf.name,
        gguf_sha256=sha256_file(base),
        parts=parts,
        data={name: sha256_file(root / DATA / name) for name in data_files},
        tree_bytes=tree,
    )
    manifest.calls = calls_for(parts)
    manifest.write(root / MANIFEST)
    return manifest


def _split(packed: Path, folder: Path, sizes: list[int]) -> list[Part]:
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    with packed.open("rb") as src:
        for number, size in enumerate(sizes, 1):
            name = f"part-{number}-of-{len(sizes)}"
            (folder / name).write_bytes(src.read(size))
            parts.append(Part(name, size, sha256_file(folder / name)))
    return parts
