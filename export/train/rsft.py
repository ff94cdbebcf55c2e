"""Reasoning SFT (R-SFT), GuardReasoner's first training stage.

    python -m export.train.rsft --model BASE --data train.jsonl [more.jsonl ...] --output DIR \\
        [--config recipe.yaml] [--preset guardreasoner-1b] [--lora ...] [--resume]

``BASE`` is a hub id, a Hugging Face checkpoint directory or a ``.gguf`` file. The data is
GuardReasonerTrain-format JSONL (``{"instruction", "input", "output"}``, as export.distill writes
it, or a JSON list of such rows). DIR receives a full checkpoint (LoRA merged), its tokenizer
with the BOS rule pinned, and ``train_log.json``; ``python -m export.convert --model DIR`` turns
it into a guardcli bundle.

Every row is trained on exactly the ids guardcli will feed the converted model: the prompt is
``build_input`` text encoded by the runtime's rule (export.convert.encoding: BOS if the checkpoint
asks for it, then the tokenizer ids without special tokens); the output trace is encoded separately
and ends with EOS; the loss covers the trace and EOS only. TRL's own prompt/completion path is
not used because it tokenizes prompt + completion as one string and can merge tokens across the
boundary; the rows go to TRL's SFTTrainer already tokenized (``input_ids`` + ``labels``).
Rows longer than ``--cutoff`` are dropped and counted, never truncated.

Preset ``guardreasoner-1b`` — the paper's GuardReasoner-1B R-SFT recipe (train/R-SFT_1b.sh in
the GuardReasoner repository: full fine-tuning of Llama-3.2-1B, 4 GPUs x 6 rows x 16
accumulation steps): lr 5e-5, 3 epochs, effective batch 384 (here 8 x 48 on one GPU), cutoff
2048 tokens, cosine schedule, no warmup, gradient clipping 1.0, bf16 where supported. It is a
GPU recipe: 3 epochs of ~127k rows at ~600 tokens each.

Configuration: defaults < ``--preset`` < ``--config`` YAML (keys named like the flags) < flags.
Checkpoints go to ``DIR/checkpoints/`` every ``--save-steps``; ``--resume`` continues from the
newest; they are deleted after a successful run unless ``--keep-checkpoints``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.cli import run_main
from export.train.base import Base, load_model, load_processing_class
from export.train.fit import Job, fit
from export.train.options import (
    TrainingOptions,
    add_common_training_options,
    config_from_sources,
    flags_of,
)
from export.train.rows import TrainRow, read_train_rows
from export.train.setup import lora_config, seed_everything, trainer_arguments
from guardcli.errors import UsageError

IGNORE = -100  # label of a position that takes no loss (the prompt)

PRESETS: dict[str, dict[str, Any]] = {
    "guardreasoner-1b": {
        "lr": 5e-5,
        "epochs": 3.0,
        "batch_size": 8,
        "grad_accum": 48,  # 8 x 48 = 384, the paper's effective batch
        "cutoff": 2048,
        "scheduler": "cosine",
        "warmup_ratio": 0.0,
        "max_grad_norm": 1.0,
        "bf16": "auto",
    },
}


@dataclass
class RSFTConfig(TrainingOptions):
    model: str = ""
    data: list[Path] = field(default_factory=list)
    output: Path = Path()


@dataclass
class EncodedRows:
    rows: list[dict[str, list[int]]]
    dropped: int  # longer than --cutoff
    longest: int  # tokens, of the rows kept
    tokens: int  # prompt + completion tokens of the rows kept


def encode_row(base: Base, row: TrainRow) -> dict[str, list[int]]:
    """``input_ids`` = runtime prompt ids + trace ids + EOS; ``labels`` mask the prompt."""
    prompt = base.prompt_ids(row.text)
    completion = base.completion_ids(row.output)
    return {"input_ids": prompt + completion, "labels": [IGNORE] * len(prompt) + completion}


def encode_rows(base: Base, rows: Sequence[TrainRow], cutoff: int) -> EncodedRows:
    kept, dropped, longest, tokens = [], 0, 0, 0
    for row in rows:
        encoded = encode_row(base, row)
        size = len(encoded["input_ids"])
        if size > cutoff:
            dropped += 1
            continue
        kept.append(encoded)
        longest, tokens = max(longest, size), tokens + size
    return EncodedRows(kept, dropped, longest, tokens)


def train(cfg: RSFTConfig, *, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Run R-SFT and write cfg.output; returns the train log. ``callbacks`` are
    transformers TrainerCallbacks (tests use them to interrupt a run)."""
    if not cfg.model or not cfg.data or cfg.output == Path():
        raise UsageError(
            "R-SFT needs --model, --data and --output",
            hint="see python -m export.train.rsft --help",
        )

    def encode(base: Base) -> tuple[int, EncodedRows]:
        rows = read_train_rows(cfg.data)
        return len(rows), encode_rows(base, rows, cfg.cutoff)

    def record(_base: Base, read: int, encoded: EncodedRows) -> dict[str, Any]:
        return {
            "rows_read": read,
            "rows_used": len(encoded.rows),
            "rows_dropped_over_cutoff": encoded.dropped,
            "longest_row_tokens": encoded.longest,
            "data": [str(p) for p in cfg.data],
        }

    output = Path(cfg.output)
    job = Job(
        name="rsft",
        title="R-SFT",
        rows="rows",
        encode=encode,
        trainer=lambda base, encoded, device: _trainer(
            cfg, base, encoded, output, device, callbacks
        ),
        record=record,
    )
    return fit(job, cfg.model, output, cfg)


def _trainer(
    cfg: RSFTConfig,
    base: Base,
    encoded: EncodedRows,
    output: Path,
    device: str,
    callbacks: Sequence[Any],
) -> Any:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    seed_everything(cfg.seed)
    args = SFTConfig(
        **trainer_arguments(cfg, output, device),
        completion_only_loss=None,  # the labels column already masks the prompt
        packing=False,
    )
    return SFTTrainer(
        model=load_model(base.checkpoint),
        args=args,
        train_dataset=Dataset.from_list(encoded.rows),
        processing_class=load_processing_class(base.checkpoint),
        peft_config=lora_config(cfg),
        callbacks=list(callbacks),
    )


def build_parser() -> argparse.ArgumentParser:
    defaults = RSFTConfig()
    parser = argparse.ArgumentParser(
        prog="python -m export.train.rsft",
        description=(
            "Reasoning SFT: fine-tune a base model on GuardReasoner traces (loss on the trace\n"
            "only), with exactly the input ids guardcli feeds the converted model."
        ),
        epilog=(
            "preset guardreasoner-1b: lr 5e-5, 3 epochs, effective batch 384 (8 x 48), "
            "cutoff 2048, cosine, no warmup (the paper's GuardReasoner-1B recipe; a GPU job).\n"
            "config precedence: defaults < --preset < --config YAML < flags."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io = parser.add_argument_group("model, data, output")
    io.add_argument(
        "--model",
        metavar="BASE",
        help="base model: hub id (e.g. meta-llama/Llama-3.2-1B), checkpoint directory or .gguf",
    )
    io.add_argument(
        "--data",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="GuardReasonerTrain-format JSONL (instruction/input/output) files, e.g. from "
        "export.distill",
    )
    io.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="where the trained checkpoint, tokenizer and train_log.json go",
    )
    io.add_argument(
        "--config", type=Path, metavar="YAML", help="options from a YAML file (flags override it)"
    )
    io.add_argument("--preset", choices=sorted(PRESETS), help="the paper's settings (see below)")
    add_common_training_options(parser, defaults)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(
        build_parser(),
        _run,
        argv,
        interrupted="interrupted: checkpoints kept; rerun with --resume to continue",
    )


def _run(args: argparse.Namespace) -> int:
    cfg = config_from_sources(RSFTConfig, flags_of(args), PRESETS)
    train(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
