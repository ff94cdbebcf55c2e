"""Checkpoint -> guardcli bundle: ``python -m export.convert --model SRC --output DIR``.

1. resolve the source (hub id, local checkpoint, ``.gguf``) to a local HF checkpoint;
2. run onnxruntime-genai's model builder into the output directory (log kept in builder.log);
3. fix genai_config.json: every EOS id of config.json + generation_config.json, a pad id
   inside the vocabulary, no baked-in thread counts;
4. settle the tokenizer: the bundle's tokenizer.json must encode exactly like the source's,
   and decide ``add_bos`` (guardcli encodes without special tokens and prepends BOS itself);
5. validate greedy generation against transformers (export/convert/validate.py);
6. write guardcli.json (guardcli.bundles.manifest.write_manifest hashes every file, last).

Errors print one line (export.cli): exit 2 for bad arguments (an --output that is not free,
an impossible combination), 3 when no bundle can be made (the source cannot be read, the
builder fails). An fp32 bundle whose greedy tokens differ from transformers is kept, marked
``validation.passed=false``, and the exit status is 1; other precisions report agreement. See
docs/conversion.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export import positive_int
from export.cli import run_main
from export.convert.builder import (
    architecture,
    built_with,
    children_peak_rss_mb,
    prepare_output,
    run_builder,
    self_peak_rss_mb,
)
from export.convert.encoding import bos_token_id, decide_add_bos
from export.convert.fixups import as_list, fix_genai_config, settle_tokenizer
from export.convert.lastpos import rewrite as last_position_rewrite
from export.convert.sources import resolve_source, with_tokenizer
from export.convert.tied import rewrite as tied_rewrite
from guardcli.bundles.manifest import MANIFEST, Manifest, bundle_files, write_manifest
from guardcli.core.prompt import TEMPLATE_ID
from guardcli.errors import ExitCode, UsageError

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
    all_positions: bool = False  # keep the builder's LM head over every position
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
    build.add_argument(
        "--all-positions",
        action="store_true",
        help="keep the builder's graph, whose LM head computes logits for every input position "
        "(default: only each row's last real position, what generation reads: a faster "
        "prefill with the same tokens; export/convert/lastpos.py)",
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
        raise UsageError(
            f"the model builder cannot make {opts.precision} for {opts.target}",
            hint="fp16 is CUDA-only: use --target cuda, or fp32/int8/int4 for cpu",
        )
    if opts.precision not in {"int4", "int8"} and (
        opts.int4_block_size is not None or opts.int4_accuracy_level is not None
    ):
        raise UsageError("--int4-block-size/--int4-accuracy-level need --precision int4 or int8")
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
        prepare_output(output, source.checkpoint, force=opts.force)

        t0 = time.perf_counter()
        run_builder(checkpoint, output, opts.precision, opts.target, builder_options, workdir)
        stats["build_s"] = round(time.perf_counter() - t0, 2)
        stats["builder_peak_rss_mb"] = children_peak_rss_mb()

        graph = "all positions (--all-positions)"
        if not opts.all_positions:
            graph = last_position_rewrite(output / "model.onnx")
        tied = tied_rewrite(output / "model.onnx")
        print("\n".join(f"graph: {line}" for line in (graph, tied) if line), flush=True)
        genai = fix_genai_config(output, config, gen_config)
        model_cfg = genai["model"]
        settle_tokenizer(output, checkpoint, texts)
        bos = bos_token_id(checkpoint, model_cfg)
        add_bos, why = decide_add_bos(output, checkpoint, bos, opts.add_bos, source.hints)
        print(f"add_bos: {'yes' if add_bos else 'no'} ({why})", flush=True)

        eos = as_list(model_cfg["eos_token_id"])
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
            built_with={**built_with(builder_options, output), "logits": graph}
            | ({"embeddings": tied} if tied else {}),
            validation={"passed": None, "skipped": "validation did not finish"},
        )
        # Unhashed placeholder so a crash during validation leaves a bundle verify rejects.
        (output / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")

        t0 = time.perf_counter()
        manifest.validation = _validate(opts, output, checkpoint, manifest, texts)
        stats["validate_s"] = round(time.perf_counter() - t0, 2)
        write_manifest(output, manifest)
    stats["total_s"] = round(time.perf_counter() - started, 2)
    stats["peak_rss_mb"] = self_peak_rss_mb()
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


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    opts = Options(**vars(args))
    outcome = convert(opts)  # ConvertError, or guardcli's ModelError from validation: export.cli
    manifest, stats = outcome.manifest, outcome.stats
    validation = manifest.validation
    if opts.report is not None:
        opts.report.write_text(
            json.dumps({"stats": stats, "validation": validation}, indent=2) + "\n",
            encoding="utf-8",
        )
    size_mb = stats["bundle_bytes"] / 1e6
    if validation.get("passed") is False:  # a bundle was made, and it is flagged: exit 1
        samples = validation["samples"]
        differ = samples - round(validation["exact"] * samples)
        print(
            f"error: validation failed: the {manifest.precision} bundle's greedy tokens differ "
            f"from transformers on {differ} of {samples} input(s) (token agreement "
            f"{validation['token_agreement']:.3f}); bundle kept in {opts.output} with "
            "validation.passed=false",
            file=sys.stderr,
        )
        return int(ExitCode.FLAGGED)
    print(f"bundle: {opts.output} ({size_mb:.1f} MB, {stats['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
