"""Where a conversion's weights come from: a hub id, a local checkpoint, or a ``.gguf`` file.

Every source ends up as a local Hugging Face checkpoint directory (what both the
onnxruntime-genai model builder and the transformers reference in validation read) plus a
``record`` for the bundle manifest that pins the exact weights: the hub commit, the sha256 of
the GGUF file, or a digest of a local checkpoint's weight files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export import ConvertError
from guardcli.bundles.manifest import sha256_file
from guardcli.errors import UsageError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
)
# What a conversion needs from a hub repository: configs, tokenizer, safetensors weights.
HUB_IGNORE = ["original/*", "*.pth", "*.msgpack", "*.h5", "*.ot", "*.onnx", "*.onnx_data", "*.gguf"]


@dataclass
class Source:
    kind: str  # "hub" | "path" | "gguf"
    spec: str  # what the user passed
    checkpoint: Path  # a Hugging Face checkpoint directory (config.json, weights, tokenizer)
    record: dict[str, Any]  # the manifest's "source"
    hints: dict[str, Any] = field(default_factory=dict)  # e.g. GGUF add_bos_token metadata

    def config(self) -> dict[str, Any]:
        return _read_json(self.checkpoint / "config.json")

    def generation_config(self) -> dict[str, Any]:
        path = self.checkpoint / "generation_config.json"
        return _read_json(path) if path.is_file() else {}


def resolve_source(spec: str, *, revision: str | None, workdir: Path) -> Source:
    """Turn ``--model`` into a local checkpoint; ``workdir`` holds anything we must create."""
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConvertError(
                f"{spec} is a file but not a .gguf file",
                hint="pass a Hugging Face checkpoint directory, a .gguf file or a hub id",
            )
        return _from_gguf(path, workdir)
    if path.is_dir():
        return _from_directory(path, spec)
    looks_like_path = spec.startswith((".", "/", "~", os.sep)) or spec.count("/") > 1
    if spec.lower().endswith(".gguf") or looks_like_path:
        raise ConvertError(f"{spec}: no such file or directory")
    if HUB_ID.match(spec):
        return _from_hub(spec, revision)
    raise ConvertError(
        f"{spec}: no such file or directory, and not a hub id (owner/name)",
    )


def _from_directory(path: Path, spec: str) -> Source:
    if not (path / "config.json").is_file():
        ggufs = sorted(path.glob("*.gguf"))
        hint = f"pass the file itself: --model {ggufs[0]}" if ggufs else None
        raise ConvertError(f"{path} has no config.json - not a Hugging Face checkpoint", hint=hint)
    weights = weight_files(path)
    if not weights:
        raise ConvertError(f"{path} has no weight files (*.safetensors or *.bin)")
    digests = {p.relative_to(path).as_posix(): sha256_file(p) for p in weights}
    record = {
        "kind": "path",
        "id": str(path.resolve()),
        "weights_sha256": combined_digest(digests),
        "weights": digests,
    }
    return Source("path", spec, path, record)


def _from_hub(repo_id: str, revision: str | None) -> Source:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as exc:  # pragma: no cover - export extra not installed
        raise ConvertError(
            f"cannot download {repo_id}: huggingface_hub is not installed",
            hint="pip install 'guardcli[export]'",
        ) from exc
    try:
        local = Path(snapshot_download(repo_id, revision=revision, ignore_patterns=HUB_IGNORE))
    except LocalEntryNotFoundError as exc:
        raise ConvertError(
            f"cannot download {repo_id}: the Hugging Face hub is not reachable",
            hint="run this on a connected machine and copy the bundle, "
            "or pass a local checkpoint path",
        ) from exc
    except GatedRepoError as exc:
        raise ConvertError(
            f"cannot download {repo_id}: the repository is gated",
            hint="accept its licence on huggingface.co and log in (hf auth login)",
        ) from exc
    except RevisionNotFoundError as exc:
        raise ConvertError(f"cannot download {repo_id}: no revision {revision!r}") from exc
    except RepositoryNotFoundError as exc:
        raise ConvertError(
            f"cannot download {repo_id}: no such repository on the Hugging Face hub"
        ) from exc
    except OSError as exc:  # disk full, permissions, a half-written cache
        raise ConvertError(f"cannot download {repo_id}: {exc}") from exc
    if not (local / "config.json").is_file():
        raise ConvertError(f"{repo_id} has no config.json - not a transformers checkpoint")
    record = {
        "kind": "hub",
        "id": repo_id,
        "revision": revision or "main",
        "commit": local.name,  # snapshot folders are named by commit hash
    }
    return Source("hub", repo_id, local, record)


def _from_gguf(path: Path, workdir: Path) -> Source:
    """Dequantize a GGUF file to a float32 transformers checkpoint in ``workdir``."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
        from transformers.utils import logging as hf_logging
    except ImportError as exc:  # pragma: no cover
        raise ConvertError(
            "reading .gguf needs torch, transformers and gguf",
            hint="pip install 'guardcli[export]'",
        ) from exc
    out = workdir / "gguf-checkpoint"
    out.mkdir(parents=True, exist_ok=True)
    print(f"reading {path.name} with transformers (dequantized to float32)...", flush=True)
    hf_logging.disable_progress_bar()
    try:
        loaded = AutoModelForCausalLM.from_pretrained(
            path.parent,
            gguf_file=path.name,
            dtype=torch.float32,
            quantization_config=GgufConfig(dequantize=True),
        )
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except Exception as exc:  # noqa: BLE001 - gguf/transformers raise many types
        raise ConvertError(f"cannot read {path} with transformers: {exc}") from exc
    save_dense(loaded, out)
    del loaded
    tokenizer.save_pretrained(out)
    record = {
        "kind": "gguf",
        "id": path.name,
        "path": str(path.resolve()),
        "sha256": sha256_file(path),
    }
    hints = {}
    add_bos = gguf_metadata(path, "tokenizer.ggml.add_bos_token")
    if add_bos is not None:
        hints["gguf_add_bos_token"] = bool(add_bos)
    return Source("gguf", str(path), out, record, hints)


def save_dense(model: Any, out: Path) -> None:
    """save_pretrained a GGUF-loaded model as a plain float32 checkpoint.

    transformers refuses to serialize a model loaded through its GGUF quantizer, even a
    dequantized one, so the weights move (no copy: ``assign=True``) into a fresh model built
    from the config minus ``quantization_config``.
    """
    import torch
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    state = model.state_dict()
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(state, strict=False, assign=True)
    fresh.tie_weights()
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise ConvertError(
            f"GGUF weights do not fit the {config.model_type} model "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    fresh.generation_config = model.generation_config
    fresh.save_pretrained(out, safe_serialization=True)


def gguf_metadata(path: Path, key: str) -> Any:
    """One scalar metadata value of a GGUF file, or None."""
    try:
        from gguf import GGUFReader

        field_ = GGUFReader(str(path)).get_field(key)
        if field_ is None:
            return None
        value = field_.contents()
        return value
    except Exception:  # noqa: BLE001 - metadata is a hint, never fatal
        return None


def with_tokenizer(source: Source, tokenizer_dir: Path | None, workdir: Path) -> Path:
    """The checkpoint directory the builder should read: the source's, or a staged copy.

    With ``--tokenizer`` the tokenizer files are replaced: a staging directory holds symlinks
    to the source's other files plus copies of the override's tokenizer files, so nothing is
    copied at weight scale and the source checkpoint is never modified.
    """
    checkpoint = source.checkpoint
    if tokenizer_dir is None:
        if not any((checkpoint / name).is_file() for name in TOKENIZER_FILES):
            raise ConvertError(
                f"{checkpoint} has no tokenizer files",
                hint="pass --tokenizer DIR (a directory with tokenizer.json)",
            )
        return checkpoint
    tokenizer_dir = tokenizer_dir.expanduser()
    if not (tokenizer_dir / "tokenizer.json").is_file():
        raise UsageError(f"--tokenizer {tokenizer_dir}: no tokenizer.json there")
    staged = workdir / "checkpoint"
    staged.mkdir(parents=True, exist_ok=True)
    for item in checkpoint.iterdir():
        if item.name not in TOKENIZER_FILES:
            (staged / item.name).symlink_to(item.resolve())
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copyfile(tokenizer_dir / name, staged / name)
    return staged


def weight_files(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)
    )


def combined_digest(digests: dict[str, str]) -> str:
    """One sha256 over (name, sha256) pairs, sorted: the identity of a set of weight files."""
    outer = hashlib.sha256()
    for name in sorted(digests):
        outer.update(f"{name}\0{digests[name]}\n".encode())
    return outer.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConvertError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise ConvertError(f"{path}: not a JSON object")
    return data
