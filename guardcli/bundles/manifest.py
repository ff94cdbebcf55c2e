"""The bundle contract: a directory that runs anywhere guardcli is installed.

A bundle is what onnxruntime-genai's model builder writes (``model.onnx`` +
``model.onnx.data``, ``genai_config.json``, tokenizer files) plus ``guardcli.json``: where
the weights came from, how they were built and validated, and the sha256 of every file. The
hashes are what lets a security engineer carry a bundle across an air gap and know it
arrived intact, so loading refuses a bundle whose files do not match (``--no-verify``
overrides). The manifest itself is covered by the root digest (``root_digest``): one sha256
over the manifest and its hash list that a user pins (``guardcli models verify --expect``,
``GUARDCLI_MODEL_SHA256``), so an edited ``eos_token_ids`` or ``name`` cannot pass either.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from guardcli.bundles.hashcache import cached_hash
from guardcli.errors import ModelError, UsageError

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


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str  # "missing" | "modified" | "unexpected" | why the entry is refused

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_files(directory: Path) -> list[Path]:
    """Every file the manifest covers: all regular files but the manifest itself.

    Raises on what a bundle may not hold (a symlink, a device, a FIFO): hashing what a link
    points to would vouch for a file outside the bundle."""
    files, refused = walk_bundle(Path(directory))
    if refused:
        raise ModelError(
            f"{Path(directory) / refused[0].path}: {refused[0].reason}",
            hint="copy the file into the bundle instead of linking it",
        )
    return [files[name] for name in sorted(files)]


def walk_bundle(directory: Path) -> tuple[dict[str, Path], list[Problem]]:
    """The bundle's regular files by relative POSIX name, and the entries refused outright.

    Nothing is followed: a symlink (to a file or a folder, hidden or not) is refused, since
    what it points to is outside what was hashed and can change under the bundle; so is
    anything that is not a regular file or a folder. Hidden regular files (``.DS_Store``)
    are not bundle files and are ignored, as is the manifest itself."""
    files: dict[str, Path] = {}
    refused: list[Problem] = []
    for top, dirs, names in os.walk(directory, followlinks=False):
        folder = Path(top)
        for name in sorted([*dirs, *names]):
            path = folder / name
            rel = path.relative_to(directory).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                refused.append(Problem(rel, f"symlink to {os.readlink(path)!r} (refused)"))
            elif stat.S_ISREG(mode):
                if name.startswith(".") or rel == MANIFEST:
                    continue
                files[rel] = path
            elif not stat.S_ISDIR(mode):
                refused.append(Problem(rel, "not a regular file (refused)"))
    refused.sort(key=lambda p: p.path)
    return files, refused


def hash_bundle(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): sha256_file(p) for p in bundle_files(directory)}


def root_digest(data: dict[str, Any]) -> str:
    """The one sha256 that pins a whole bundle: its manifest and, through the manifest's hash
    list, every file. Defined (docs/security.md, "Bundle trust") as the sha256 of

        the manifest without "files" as canonical JSON (keys sorted, no spaces, UTF-8)
        + "\n" + one "SHA256  PATH\n" line per file, sorted by path (sha256sum's format)

    over the manifest as stored (``data``: every key, known to this guardcli or not), so it
    is computable for any bundle ever written, including those whose manifest predates it.
    """
    body = {key: value for key, value in data.items() if key != "files"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    files = data.get("files", {})
    listing = "".join(f"{files[name]}  {name}\n" for name in sorted(files))
    return hashlib.sha256(f"{canonical}\n{listing}".encode()).hexdigest()


def bundle_root(directory: Path) -> str:
    """The root digest of the bundle at ``directory`` (its manifest is read, no file hashed)."""
    return root_digest(read_manifest_data(Path(directory)))


def check_root(directory: Path, expect: str, data: dict[str, Any] | None = None) -> str:
    """Refuse a bundle whose root digest is not the pinned one; returns the digest.

    ``data``: the manifest already read, so the pin checks the very manifest that is used."""
    pinned = expect.strip().lower()
    if len(pinned) != 64 or any(c not in "0123456789abcdef" for c in pinned):
        raise UsageError(
            f"{expect!r} is not a sha256 (64 hex digits)",
            hint="pin the root printed by 'guardcli models info' or 'guardcli models verify'",
        )
    root = root_digest(read_manifest_data(directory) if data is None else data)
    if root != pinned:
        raise ModelError(
            f"{directory}: bundle root sha256 is {root}, expected {pinned}",
            hint="this is not the bundle that was pinned: its manifest or files differ",
        )
    return root


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Hash every file and write guardcli.json; call last, after every file is final."""
    manifest.files = hash_bundle(directory)
    path = directory / MANIFEST
    path.write_text(manifest.to_json(), encoding="utf-8")
    return path


def read_manifest(directory: Path) -> Manifest:
    return Manifest.from_dict(read_manifest_data(directory))


def read_manifest_data(directory: Path) -> dict[str, Any]:
    """The manifest as stored, checked to be one guardcli can read (the root digest is over
    this, not over the fields this version knows)."""
    path = Path(directory) / MANIFEST
    if path.is_symlink():
        raise ModelError(
            f"{path}: the manifest is a symlink (refused)",
            hint="copy the file into the bundle instead of linking it",
        )
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
    return data


def inside(name: str) -> bool:
    """A manifest path that names a file inside the bundle: relative, no ``..``, no empty or
    ``.`` parts, no backslash (a Windows separator would be read differently there)."""
    parts = name.split("/")
    return (
        bool(name)
        and "\\" not in name
        and "\0" not in name
        and not name.startswith("/")
        and all(part not in ("", ".", "..") for part in parts)
    )


def verify(
    directory: Path, manifest: Manifest | None = None, *, full: bool = False
) -> list[Problem]:
    """Compare every file with its recorded hash; an empty list means the bundle is intact.

    A symlink, a special file or a manifest path leaving the bundle is a problem whatever
    its hash. ``full`` rehashes every byte instead of trusting the hash cache
    (guardcli.bundles.hashcache, keyed so that an mtime reset cannot fool it).
    """
    directory = Path(directory).resolve()
    manifest = manifest or read_manifest(directory)
    present, problems = walk_bundle(directory)
    refused = {p.path for p in problems}
    for name, expected in sorted(manifest.files.items()):
        if not inside(name):
            problems.append(Problem(name, "path leaves the bundle (refused)"))
            continue
        path = present.pop(name, None)
        if path is None:
            if not any(name == r or name.startswith(f"{r}/") for r in refused):
                problems.append(Problem(name, "missing"))
        elif (sha256_file(path) if full else cached_hash(path, sha256_file)) != expected:
            problems.append(Problem(name, "modified"))
    problems.extend(Problem(name, "unexpected") for name in sorted(present))
    return problems
