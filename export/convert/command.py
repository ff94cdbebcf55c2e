"""Checkpoint -> guardcli bundle: ``python -m export.convert --model SRC --output DIR``.

1. resolve the source (hub id, local checkpoint, ``.gguf``) to a local HF checkpoint;
2. run onnxruntime-genai's model builder into the output directory (log kept in builder.log);
3. fix genai_config.json: every EOS id of config.json + generation_config.json, a pad id
   inside the vocabulary, no baked-in thread counts;
4. settle the tokenizer: the bundle's tokenizer.json must encode exactly like the source's,
   and decide ``add_bos`` (guardcli encodes without special tokens and prepends BOS itself);
5. validate greedy generation against transformers (export/convert/validate.py);
6. write guardcli.json (guardcli.bundles.manifest.write_manifest hashes every file, last).

Errors print one line and exit 1 (argument errors: 2). An fp32 bundle whose greedy tokens differ
from transformers fails; other precisions report agreement. See docs/conversion.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from export import ConvertError, positive_int
from export.convert.encoding import bos_token_id, decide_add_bos
from export.convert.sources import resolve_source, with_tokenizer
from guardcli.bundles.manifest import MANIFEST, Manifest, bundle_files, write_manifest
from guardcli.core.prompt import TEMPLATE_ID
from guardcli.errors import GuardError

PRECISIONS = ("fp32", "fp16", "int8", "int4")
TARGETS = ("cpu", "cuda")
# The builder's valid (precision, execution provider) pairs among ours.
SUPPORTED = {
    ("fp32", "cpu"),
    ("fp32", "cuda"),
    ("fp16", "cuda"),
    ("int8", "cpu"),
    ("int8", "cuda"),
    ("int4", "cpu"),
    ("int4", "cuda"),
}
THREAD_KEYS = ("intra_op_num_threads", "inter_op_num_threads")
# Files a previous conversion leaves behind: --force only deletes directories holding one.
BUNDLE_MARKERS = (MANIFEST, "genai_config.json", "builder.log")

EPILOG = """\
examples:
  python -m export.convert --model yueliu1999/GuardReasoner-1B --output models/gr1b-fp32
  python -m export.convert --model ./GuardReasoner-1B --output models/gr1b-int4 --precision int4
  python -m export.convert --model SmolLM2-135M-Instruct.Q4_1.gguf --output /tmp/smol --force

Exit status: 0 bundle written and validated; 1 conversion or validation failed (for fp32 an
inexact match is a failure; the manifest is still written with validation.passed=false);
2 bad arguments. Temporary files go to $TMPDIR.
"""


@dataclass
class Options:
    model: str
    output: Path
    revision: str | None = None
    precision: str = "fp32"
    target: str = "cpu"
    name: str | None = None
    tokenizer: Path | None = None
    add_bos: str = "auto"
    int4_block_size: int | None = None
    int4_accuracy_level: int | None = None
    validate: int = 4
    no_validate: bool = False
    validation_file: Path | None = None
    max_new_tokens: int = 64
    force: bool = False
    report: Path | None = None


@dataclass
class Outcome:
    manifest: Manifest
    stats: dict[str, Any] = field(default_factory=dict)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.convert",
        description=(
            "Convert a GuardReasoner checkpoint into a guardcli bundle (onnxruntime-genai ONNX\n"
            "model + tokenizer + guardcli.json manifest), then check that the bundle's greedy\n"
            "output matches transformers. See docs/conversion.md."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = parser.add_argument_group("source and output")
    src.add_argument(
        "--model",
        required=True,
        metavar="SRC",
        help="what to convert: a Hugging Face hub id (e.g. yueliu1999/GuardReasoner-1B, "
        "downloaded with huggingface_hub), a local Hugging Face checkpoint directory "
        "(config.json + *.safetensors), or a .gguf file (dequantized to float32 with transformers)",
    )
    src.add_argument(
        "--revision",
        metavar="REV",
        help="hub branch, tag or commit to download (hub ids only; default: main). The resolved "
        "commit is recorded in the manifest",
    )
    src.add_argument(
        "--output",
        required=True,
        type=Path,
        metavar="DIR",
        help="bundle directory to create; must be empty or absent unless --force",
    )
    src.add_argument(
        "--force",
        action="store_true",
        help="delete and rewrite DIR if it already holds a bundle or a failed conversion "
        "(a non-empty directory that is neither is never deleted)",
    )
    src.add_argument(
        "--name",
        help="bundle name recorded in the manifest (default: the output directory's name)",
    )
    src.add_argument(
        "--tokenizer",
        type=Path,
        metavar="DIR",
        help="take the tokenizer files (tokenizer.json, tokenizer_config.json, ...) from DIR "
        "instead of the checkpoint; the checkpoint itself is not modified",
    )
    src.add_argument(
        "--add-bos",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether guardcli prepends the BOS token to every input (default auto: yes when the "
        "tokenizer adds BOS itself, or its tokenizer_config.json / GGUF metadata says "
        "add_bos_token, or it names a bos_token; GuardReasoner/Llama 3 needs yes)",
    )
    build = parser.add_argument_group("model build (onnxruntime-genai model builder)")
    build.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="weight precision (default fp32). CPU: fp32, int8, int4; CUDA: fp32, fp16, int8, "
        "int4. int8/int4 are weight-only block quantization (MatMulNBits)",
    )
    build.add_argument(
        "--target",
        choices=TARGETS,
        default="cpu",
        help="execution provider the bundle is built for (default cpu). A cuda bundle is only "
        "validated where onnxruntime-genai has CUDA",
    )
    build.add_argument(
        "--int4-block-size",
        type=int,
        choices=(16, 32, 64, 128, 256),
        metavar="{16,32,64,128,256}",
        help="quantization block size for int4 and int8 (builder block_size; default 32). "
        "Smaller blocks: more accurate, slightly larger",
    )
    build.add_argument(
        "--int4-accuracy-level",
        type=int,
        choices=(1, 2, 3, 4),
        metavar="{1,2,3,4}",
        help="int4/int8 MatMulNBits minimum compute precision (builder accuracy_level): 1 fp32, "
        "2 fp16, 3 bf16, 4 int8 activations (fastest on CPU, least exact). Default: the "
        "builder's choice, which is 4 for cpu. The effective value is recorded in the manifest",
    )
    check = parser.add_argument_group("validation (bundle vs transformers fp32, greedy)")
    check.add_argument(
        "--validate",
        type=positive_int,
        default=4,
        metavar="N",
        help="number of GuardReasoner inputs to compare (default 4, from built-in examples)",
    )
    check.add_argument(
        "--validation-file",
        type=Path,
        metavar="FILE",
        help="take the inputs from a GuardReasoner benchmark JSON (instruction/input/output) "
        "or teacher JSONL (prompt) file instead of the built-in examples",
    )
    check.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=64,
        metavar="N",
        help="tokens generated per input on each side (default 64)",
    )
    check.add_argument(
        "--no-validate",
        action="store_true",
        help="skip validation (the manifest records it as skipped)",
    )
    check.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="also write a JSON report (timings, peak memory, sizes, validation) to FILE",
    )
    return parser


def convert(opts: Options) -> Outcome:
    if (opts.precision, opts.target) not in SUPPORTED:
        raise ConvertError(
            f"the model builder cannot make {opts.precision} for {opts.target}",
            hint="fp16 is CUDA-only: use --target cuda, or fp32/int8/int4 for cpu",
        )
    if opts.precision not in {"int4", "int8"} and (
        opts.int4_block_size is not None or opts.int4_accuracy_level is not None
    ):
        raise ConvertError("--int4-block-size/--int4-accuracy-level need --precision int4 or int8")
    output = opts.output.expanduser().resolve()
    texts = _validation_texts(opts)  # a bad --validation-file fails before any work
    stats: dict[str, Any] = {"precision": opts.precision, "target": opts.target}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="guardcli-convert-") as tmp:
        workdir = Path(tmp)
        source = resolve_source(opts.model, revision=opts.revision, workdir=workdir)
        stats["resolve_s"] = round(time.perf_counter() - started, 2)
        checkpoint = with_tokenizer(source, opts.tokenizer, workdir)
        config = source.config()
        gen_config = source.generation_config()
        builder_options = _builder_options(opts, bool(config.get("tie_word_embeddings", False)))
        _prepare_output(output, source.checkpoint, force=opts.force)

        t0 = time.perf_counter()
        run_builder(checkpoint, output, opts.precision, opts.target, builder_options, workdir)
        stats["build_s"] = round(time.perf_counter() - t0, 2)
        stats["builder_peak_rss_mb"] = _children_peak_rss_mb()

        genai = fix_genai_config(output, config, gen_config)
        model_cfg = genai["model"]
        settle_tokenizer(output, checkpoint, texts)
        bos = bos_token_id(checkpoint, model_cfg)
        add_bos, why = decide_add_bos(output, checkpoint, bos, opts.add_bos, source.hints)
        print(f"add_bos: {'yes' if add_bos else 'no'} ({why})", flush=True)

        eos = _as_list(model_cfg["eos_token_id"])
        manifest = Manifest(
            name=opts.name or output.name,
            source=source.record,
            architecture=architecture(config),
            precision=opts.precision,
            target=opts.target,
            template=TEMPLATE_ID,
            bos_token_id=bos,
            eos_token_ids=eos,
            pad_token_id=int(model_cfg["pad_token_id"]),
            add_bos=add_bos,
            context_length=int(model_cfg["context_length"]),
            built_with=built_with(builder_options, output),
            validation={"passed": None, "skipped": "validation did not finish"},
        )
        # Unhashed placeholder so a crash during validation leaves a bundle verify rejects.
        (output / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")

        t0 = time.perf_counter()
        manifest.validation = _validate(opts, output, checkpoint, manifest, texts)
        stats["validate_s"] = round(time.perf_counter() - t0, 2)
        write_manifest(output, manifest)
    stats["total_s"] = round(time.perf_counter() - started, 2)
    stats["peak_rss_mb"] = _self_peak_rss_mb()
    stats["bundle_bytes"] = sum(p.stat().st_size for p in bundle_files(output))
    return Outcome(manifest, stats)


def _builder_options(opts: Options, tied: bool) -> list[str]:
    options = []
    if tied:
        options.append("shared_embeddings=true")
    if opts.precision in {"int4", "int8"}:
        if opts.int4_block_size is not None:
            options.append(f"block_size={opts.int4_block_size}")
        if opts.int4_accuracy_level is not None:
            options.append(f"accuracy_level={opts.int4_accuracy_level}")
    return options


def _prepare_output(output: Path, checkpoint: Path, *, force: bool) -> None:
    ckpt = checkpoint.resolve()
    if output == ckpt or output in ckpt.parents:
        raise ConvertError(f"--output {output} would overwrite the source checkpoint")
    if output.exists() and not output.is_dir():
        raise ConvertError(f"--output {output} exists and is not a directory")
    if output.is_dir() and any(output.iterdir()):
        if not force:
            raise ConvertError(
                f"--output {output} is not empty", hint="pass --force to overwrite it"
            )
        if not any((output / marker).exists() for marker in BUNDLE_MARKERS):
            raise ConvertError(
                f"--output {output} is not empty and does not look like a bundle",
                hint="refusing to delete it even with --force; choose another directory",
            )
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)


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


def fix_genai_config(
    output: Path, config: dict[str, Any], gen_config: dict[str, Any]
) -> dict[str, Any]:
    """EOS ids from config.json + generation_config.json (+ the builder's), a sane pad id."""
    path = output / "genai_config.json"
    if not path.is_file():
        raise ConvertError(f"the model builder wrote no genai_config.json in {output}")
    genai = json.loads(path.read_text(encoding="utf-8"))
    model = genai["model"]
    vocab = int(model.get("vocab_size") or config.get("vocab_size") or 0)
    eos: list[int] = []
    for value in (
        config.get("eos_token_id"),
        gen_config.get("eos_token_id"),
        model.get("eos_token_id"),
    ):
        for token in _as_list(value):
            if token not in eos and (not vocab or 0 <= token < vocab):
                eos.append(token)
    if not eos:
        raise ConvertError("no EOS token id in config.json, generation_config.json or the build")
    model["eos_token_id"] = eos if len(eos) > 1 else eos[0]
    pad = None
    for value in (
        config.get("pad_token_id"),
        gen_config.get("pad_token_id"),
        model.get("pad_token_id"),
    ):
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (not vocab or 0 <= value < vocab)
        ):
            pad = value
            break
    model["pad_token_id"] = eos[0] if pad is None else pad
    for section in _session_option_blocks(genai):
        for key in THREAD_KEYS:
            section.pop(key, None)  # guardcli sizes threads at load time for the machine it runs on
    path.write_text(json.dumps(genai, indent=4) + "\n", encoding="utf-8")
    return genai


def _session_option_blocks(genai: dict[str, Any]) -> list[dict[str, Any]]:
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "session_options" and isinstance(value, dict):
                    found.append(value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(genai)
    return found


def settle_tokenizer(output: Path, checkpoint: Path, texts: list[str]) -> None:
    """The bundle must carry a tokenizer.json that encodes exactly like the checkpoint's.

    The builder re-saves the tokenizer through transformers; that file is kept when it
    tokenizes identically, else (or when it is missing) the checkpoint's file is copied in.
    """
    from tokenizers import Tokenizer

    ours, theirs = output / "tokenizer.json", checkpoint / "tokenizer.json"
    if not ours.is_file():
        if not theirs.is_file():
            raise ConvertError(
                "the bundle has no tokenizer.json and the checkpoint has none to copy",
                hint="pass --tokenizer DIR with a tokenizer.json",
            )
        shutil.copyfile(theirs, ours)
        print("tokenizer: copied tokenizer.json from the checkpoint", flush=True)
        return
    if not theirs.is_file():
        return
    probes = [*texts, "x", " hello world", "Ünïcödé 🌊 <|begin_of_text|> \n\n  tabs\t", "1234567"]
    a, b = Tokenizer.from_file(str(ours)), Tokenizer.from_file(str(theirs))
    for text in probes:
        for special in (False, True):
            if (
                a.encode(text, add_special_tokens=special).ids
                != b.encode(text, add_special_tokens=special).ids
            ):
                shutil.copyfile(theirs, ours)
                print(
                    "tokenizer: the builder's tokenizer.json encodes differently; "
                    "using the checkpoint's file verbatim",
                    flush=True,
                )
                return


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


def _validation_texts(opts: Options) -> list[str]:
    from export.convert.validate import builtin_texts, file_texts

    if opts.validation_file is not None:
        return file_texts(opts.validation_file, opts.validate)
    return builtin_texts(opts.validate)


def _validate(
    opts: Options, output: Path, checkpoint: Path, manifest: Manifest, texts: list[str]
) -> dict[str, Any]:
    if opts.no_validate:
        print("validation: skipped (--no-validate)", flush=True)
        return {"passed": None, "skipped": "--no-validate"}
    device = opts.target
    if device == "cuda":
        import onnxruntime_genai as og

        if not getattr(og, "is_cuda_available", lambda: False)():
            print("validation: skipped (a cuda bundle needs CUDA to run)", flush=True)
            return {"passed": None, "skipped": "no CUDA on the converting machine"}
    from export.convert.validate import validate_bundle

    print(
        f"validating: {len(texts)} input(s) x {opts.max_new_tokens} tokens, "
        "bundle vs transformers fp32...",
        flush=True,
    )
    result = validate_bundle(
        output,
        checkpoint,
        precision=opts.precision,
        texts=texts,
        bos_token_id=manifest.bos_token_id,
        add_bos=manifest.add_bos,
        eos_token_ids=manifest.eos_token_ids,
        pad_token_id=manifest.pad_token_id,
        max_new_tokens=opts.max_new_tokens,
        device=device,
        inputs_label=str(opts.validation_file) if opts.validation_file else "builtin",
    )
    print(
        f"validation: exact {result['exact']:.2f}, token agreement "
        f"{result['token_agreement']:.3f}, verdict agreement {result['verdict_agreement']:.2f} "
        f"over {result['samples']} input(s) ({result['reference']})",
        flush=True,
    )
    return result


def _children_peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


def _self_peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value if v is not None]
    return [int(value)]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    opts = Options(**{k: v for k, v in vars(args).items()})
    try:
        outcome = convert(opts)
    except GuardError as exc:  # ConvertError, or guardcli's ModelError from validation
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    manifest, stats = outcome.manifest, outcome.stats
    validation = manifest.validation
    if opts.report is not None:
        opts.report.write_text(
            json.dumps({"stats": stats, "validation": validation}, indent=2) + "\n",
            encoding="utf-8",
        )
    size_mb = stats["bundle_bytes"] / 1e6
    if validation.get("passed") is False:
        samples = validation["samples"]
        differ = samples - round(validation["exact"] * samples)
        print(
            f"error: validation failed: the {manifest.precision} bundle's greedy tokens differ "
            f"from transformers on {differ} of {samples} input(s) (token agreement "
            f"{validation['token_agreement']:.3f}); bundle kept in {opts.output} with "
            "validation.passed=false",
            file=sys.stderr,
        )
        return 1
    print(f"bundle: {opts.output} ({size_mb:.1f} MB, {stats['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
