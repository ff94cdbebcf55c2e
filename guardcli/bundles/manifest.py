"""The bundle contract: a directory that runs anywhere guardcli is installed.

A bundle is what onnxruntime-genai's model builder writes (``model.onnx`` +
``model.onnx.data``, ``genai_config.json``, tokenizer files) plus ``guardcli.json``: where
the weights came from, how they were built and validated, and the sha256 of every file. The
hashes are what lets a security engineer carry a bundle across an air gap and know it
arrived intact, so loading refuses a bundle whose files do not match (``--no-verify``
overrides).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from guardcli.bundles.paths import hash_cache_file
from guardcli.errors import ModelError

MANIFEST = "guardcli.json"
FORMAT_VERSION = 1
_CHUNK = 1 << 20


@dataclass
class Manifest:
    name: str
    source: dict[str, Any]  # {"kind": "hub"|"path"|"gguf", "id": ..., "revision"/"sha256": ...}
    architecture: dict[str, Any]  # layers, hidden, heads, kv_heads, vocab, tied, rope
    precision: str  # fp32 | fp16 | int8 | int4
    target: str  # cpu | cuda
    template: str  # prompt template id, see guardcli.core.prompt.TEMPLATE_ID
    bos_token_id: int
    eos_token_ids: list[int]
    pad_token_id: int
    add_bos: bool  # prepend BOS ourselves (the tokenizer file does not add it)
    context_length: int
    built_with: dict[str, str] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    # Fast-mode decision thresholds fitted on a validation split (guardcli.core.triage.Thresholds)
    calibration: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        known = {name for name in cls.__dataclass_fields__}
        missing = [name for name in known if name not in data and name not in _DEFAULTED]
        if missing:
            raise ModelError(f"{MANIFEST} lacks {', '.join(sorted(missing))}")
        return cls(**{key: value for key, value in data.items() if key in known})


_DEFAULTED = {"built_with", "validation", "files", "calibration", "format"}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_files(directory: Path) -> list[Path]:
    """Every file the manifest covers: all regular files but the manifest itself."""
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    )


def hash_bundle(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): sha256_file(p) for p in bundle_files(directory)}


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Hash every file and write guardcli.json; call last, after every file is final."""
    manifest.files = hash_bundle(directory)
    path = directory / MANIFEST
    path.write_text(manifest.to_json(), encoding="utf-8")
    return path


def read_manifest(directory: Path) -> Manifest:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ModelError(
            f"{directory} is not a guardcli bundle (no {MANIFEST})",
            hint="build one with 'python -m export.convert --model ... --output DIR'",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: manifest is not a JSON object")
    version = data.get("format", FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelError(f"{path}: manifest format {version!r} is not a version number")
    if version > FORMAT_VERSION:
        raise ModelError(
            f"{path}: bundle format {version} is newer than this guardcli understands",
            hint="upgrade guardcli",
        )
    files = data.get("files", {})
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        # verify() walks this mapping: anything else would crash it instead of refusing.
        raise ModelError(f"{path}: manifest 'files' is not a mapping of paths to sha256")
    return Manifest.from_dict(data)


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str  # "missing" | "modified" | "unexpected"

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def verify(
    directory: Path, manifest: Manifest | None = None, *, full: bool = False
) -> list[Problem]:
    """Compare every file with its recorded hash; an empty list means the bundle is intact.

    ``full`` rehashes every byte instead of trusting the (path, size, mtime) hash cache.
    """
    directory = Path(directory)
    manifest = manifest or read_manifest(directory)
    problems: list[Problem] = []
    present = {p.relative_to(directory).as_posix(): p for p in bundle_files(directory)}
    for name, expected in sorted(manifest.files.items()):
        path = present.pop(name, None)
        if path is None:
            problems.append(Problem(name, "missing"))
        elif (sha256_file(path) if full else _cached_hash(path)) != expected:
            problems.append(Problem(name, "modified"))
    problems.extend(Problem(name, "unexpected") for name in sorted(present))
    return problems


def _cached_hash(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so a 2 GB bundle is hashed once.

    A changed file changes its size or mtime; a tool that rewrites bytes and then restores
    mtime defeats this, which is why ``verify(full=True)`` (``models verify --full``)
    ignores it.
    """
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_path = hash_cache_file()
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    if key in cache:
        return cache[key]
    digest = sha256_file(path)
    cache[key] = digest
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache), encoding="utf-8")
        tmp.replace(cache_path)
    except OSError:
        pass  # a read-only home still verifies, just without the cache
    return digest
