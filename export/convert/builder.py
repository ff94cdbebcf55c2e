"""onnxruntime-genai's model builder, run in a subprocess (its log kept in builder.log), and
what the manifest records of the build: the architecture, the builder's version and options,
the quantization actually applied.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from export import ConvertError
from guardcli.bundles.manifest import MANIFEST
from guardcli.errors import UsageError

# Files a previous conversion leaves behind: --force only deletes directories holding one.
BUNDLE_MARKERS = (MANIFEST, "genai_config.json", "builder.log")


def run_builder(
    checkpoint: Path,
    output: Path,
    precision: str,
    target: str,
    extra_options: list[str],
    workdir: Path,
) -> None:
    """``python -m onnxruntime_genai.models.builder`` into ``output``; its log -> builder.log."""
    cmd = [
        sys.executable,
        "-m",
        "onnxruntime_genai.models.builder",
        "-i",
        str(checkpoint),
        "-o",
        str(output),
        "-p",
        precision,
        "-e",
        target,
        "-c",
        str(workdir / "builder-cache"),
    ]
    if extra_options:
        cmd += ["--extra_options", *extra_options]
    env = dict(os.environ, TQDM_DISABLE="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    log_path = output / "builder.log"
    print(f"building {precision}/{target} ONNX model with onnxruntime-genai...", flush=True)
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd[1:]) + "\n")
        log.flush()
        result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    if result.returncode != 0:
        cause = next(
            (ln.strip() for ln in reversed(lines) if "Error" in ln or "error" in ln),
            lines[-1].strip() if lines else "no output",
        )
        raise ConvertError(
            f"the model builder failed (exit {result.returncode}): {cause}",
            hint=f"full log: {log_path}",
        )
    warnings = list(dict.fromkeys(ln.strip() for ln in lines if "warning" in ln.lower()))
    print(
        f"builder: done in {time.perf_counter() - t0:.1f} s, {len(warnings)} warning(s); "
        f"log: {log_path}",
        flush=True,
    )
    for line in warnings[:5]:
        print(f"  {line[:200]}", flush=True)


def architecture(config: dict[str, Any]) -> dict[str, Any]:
    rope = config.get("rope_parameters") or {}
    heads = config.get("num_attention_heads")
    hidden = config.get("hidden_size")
    head_dim = config.get("head_dim") or (hidden // heads if hidden and heads else None)
    return {
        "model_type": config.get("model_type"),
        "architectures": config.get("architectures"),
        "layers": config.get("num_hidden_layers"),
        "hidden": hidden,
        "heads": heads,
        "kv_heads": config.get("num_key_value_heads", heads),
        "head_dim": head_dim,
        "vocab": config.get("vocab_size"),
        "intermediate": config.get("intermediate_size"),
        "tied_embeddings": bool(config.get("tie_word_embeddings", False)),
        "max_position_embeddings": config.get("max_position_embeddings"),
        "rope_theta": config.get("rope_theta", rope.get("rope_theta")),
        # transformers 5 folds rope_scaling into rope_parameters; "default" means no scaling
        "rope_scaling": config.get("rope_scaling")
        or (rope if rope.get("rope_type") not in (None, "default") else None),
        "rms_norm_eps": config.get("rms_norm_eps"),
    }


def built_with(builder_options: list[str], output: Path) -> dict[str, str]:
    versions = {}
    for dist in (
        "guardcli",
        "torch",
        "transformers",
        "tokenizers",
        "onnx",
        "onnxruntime",
        "onnxruntime-genai",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    versions["python"] = platform.python_version()
    versions["builder_options"] = " ".join(builder_options) or "(none)"
    versions["quantization"] = quantization_summary(output / "model.onnx")
    return versions


def quantization_summary(model_path: Path) -> str:
    """The quantized ops' effective settings, read back from the graph (not the weights)."""
    try:
        import onnx

        graph = onnx.load(str(model_path), load_external_data=False).graph
    except Exception as exc:  # noqa: BLE001 - informational only
        return f"unknown ({exc.__class__.__name__})"
    keys = ("bits", "block_size", "accuracy_level")
    seen: dict[str, None] = {}
    for node in graph.node:
        if node.op_type in {"MatMulNBits", "GatherBlockQuantized", "DequantizeLinear"}:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            text = " ".join(f"{k}={attrs[k]}" for k in keys if k in attrs)
            seen[f"{node.op_type}({text})"] = None
    return "; ".join(seen) or "none"


def prepare_output(output: Path, checkpoint: Path, *, force: bool) -> None:
    ckpt = checkpoint.resolve()
    if output == ckpt or output in ckpt.parents:
        raise UsageError(f"--output {output} would overwrite the source checkpoint")
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} exists and is not a directory")
    if output.is_dir() and any(output.iterdir()):
        if not force:
            raise UsageError(f"--output {output} is not empty", hint="pass --force to overwrite it")
        if not any((output / marker).exists() for marker in BUNDLE_MARKERS):
            raise UsageError(
                f"--output {output} is not empty and does not look like a bundle",
                hint="refusing to delete it even with --force; choose another directory",
            )
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)


def children_peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


def self_peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
