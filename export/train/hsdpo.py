"""Hard-sample DPO (HS-DPO), GuardReasoner's second training stage.

    python -m export.train.hsdpo all --model RSFT_DIR --data train.jsonl --output DIR [options]
    python -m export.train.hsdpo sample --model RSFT_DIR --data train.jsonl --output DIR
    python -m export.train.hsdpo mine --output DIR
    python -m export.train.hsdpo train --model RSFT_DIR --output DIR

Three steps, each runnable alone and each skipped when its output already exists:

1. ``sample`` -> ``DIR/samples.jsonl``: ``--k`` outputs per training input from the R-SFT model
   (export.sampling.generate.sample_outputs; the paper: k=4, temperature 0.7, top-p 0.95), plus the
   same from every ``--extra-models`` model and every matching trace of ``--extra-traces`` files
   ({prompt, label, predict}, e.g. GuardReasoner's generated_predictions.jsonl): the paper's
   "diversity" models. One line per input: ``{input_id, prompt, gold, outputs: [{source, text}]}``,
   flushed every ``--chunk`` inputs; a killed run continues where it stopped. Each chunk is sampled
   with a seed derived from ``--seed`` and its first input, so a chunk drawn again draws the same
   outputs.
2. ``mine`` -> ``DIR/pairs.jsonl`` (export.train.mining): an input is *hard* when some of its
   outputs agree with the gold labels and some do not (each output read with guardcli.core.parse;
   agreement per guardcli.eval.labelled.agrees: every labelled task right; an unreadable answer is
   wrong, and so is one with no numbered reasoning step: export.train.mining.reasoned).
   Its pairs: chosen = a right output, rejected = a wrong one; the distinct (right, wrong) text
   pairs are shuffled with ``random.Random(f"{seed}:{input_id}")`` and the first
   ``--pairs-per-input`` kept (default 1), so mining is deterministic. Inputs whose outputs
   are all right or all wrong give no pair. Each pair is weighted by how often the models were
   wrong on its input::

       raw  = 1 + gamma * n_wrong / (n_right + n_wrong)     (n over all outputs, duplicates too)
       w    = raw / mean(raw over every mined pair)          (so the weights average exactly 1)

   With gamma = 1 (default) an input answered wrongly 3 times of 4 weighs 1.75/1.25 = 1.4 times
   one answered wrongly once; gamma = 0 gives plain DPO. (The paper's script weights
   n_wrong - n_right, min-max scaled into [0.8, 1.2]; this form keeps the same order and a
   mean of 1 without depending on the dataset's extremes.) Each line:
   ``{prompt, chosen, rejected, weight, input_id, n_right, n_wrong}``.
3. ``train`` -> ``DIR/model/``: weighted DPO with TRL's DPOTrainer and an SFT term on the
   chosen output (loss_type ["sigmoid", "sft"], loss_weights [1.0, --sft-weight]); the
   reference model is the R-SFT model, loaded again from ``--model``. ``WeightedDPOTrainer``
   (export.train.weighted_dpo) subclasses DPOTrainer because TRL 1.16 averages the per-pair losses
   inside ``_compute_loss`` with no hook for sample weights: it recomputes the two terms with
   each pair's weight::

       loss = 1/B * sum_i w_i * -log sigmoid(beta * margin_i)
            + sft_weight * sum_i w_i * NLL(chosen_i) / (chosen tokens in the batch)

   which is TRL's loss exactly when every w_i is 1 (tests check this). Ids follow R-SFT's
   rule: the prompt encoded as guardcli encodes it, each completion encoded separately + EOS.
   Pairs longer than ``--cutoff`` are dropped and counted; the weights of the kept pairs are
   rescaled to mean 1. The output is a full checkpoint (LoRA merged) + ``train_log.json``.

Preset ``guardreasoner-1b`` — the paper's GuardReasoner-1B HS-DPO recipe (train/HS-DPO_1b.sh:
4 GPUs x 1 pair x 64 accumulation steps): lr 5e-6, 2 epochs, beta 0.01, SFT weight 2.0,
effective batch 256 (here 4 x 64 on one GPU), cutoff 2048, cosine, no warmup; sampling k=4,
temperature 0.7, top-p 0.95. Configuration: defaults < --preset < --config YAML < flags.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from export import TrainError, positive_int
from export.cli import run_main
from export.train.base import Base
from export.train.fit import Job, fit
from export.train.hsdpo_config import MODEL, PAIRS, PRESETS, SAMPLES, HSDPOConfig
from export.train.hsdpo_sample import sample
from export.train.layout import CHECKPOINTS, TRAIN_LOG
from export.train.mining import mine_pairs, read_pairs, read_samples
from export.train.options import add_common_training_options, config_from_sources, flags_of
from export.train.runlog import say
from export.train.weighted_dpo import EncodedPairs, build_trainer, encode_pairs
from guardcli.errors import UsageError

# ------------------------------------------------------------------------------ 2. mine


def mine(cfg: HSDPOConfig) -> Path:
    """Step 2: samples.jsonl -> pairs.jsonl; skipped when pairs.jsonl exists."""
    path = cfg.pairs_path
    if path.is_file():
        say(f"mine: {path} exists, skipped")
        return path
    pairs, stats = mine_pairs(
        read_samples(cfg.samples_path),
        pairs_per_input=cfg.pairs_per_input,
        gamma=cfg.gamma,
        seed=cfg.seed,
    )
    say(
        f"mine: {stats.inputs} inputs, {stats.hard} hard, {stats.all_right} all right, "
        f"{stats.all_wrong} all wrong -> {stats.pairs} pairs ({stats.unreasoned} outputs with "
        "the gold labels but no reasoning step counted wrong)"
    )
    if not pairs:
        raise TrainError(
            "no hard samples: every input's outputs were all right or all wrong",
            hint="sample more outputs (--k), at a higher --temperature, or from --extra-models",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        for pair in pairs:
            out.write(json.dumps(asdict(pair), ensure_ascii=False) + "\n")
    partial.replace(path)  # all or nothing: "exists" must mean "complete"
    return path


# ------------------------------------------------------------------------------ 3. train


def train(cfg: HSDPOConfig, *, callbacks: Sequence[Any] = ()) -> Path:
    """Step 3: pairs.jsonl -> DIR/model (full checkpoint + train_log.json); skipped when done."""
    output = cfg.model_dir
    if (output / TRAIN_LOG).is_file():
        say(f"train: {output} is trained ({TRAIN_LOG}), skipped")
        return output
    if not cfg.model:
        raise UsageError("train needs --model (the R-SFT checkpoint)")
    pairs = read_pairs(cfg.pairs_path)
    if cfg.trainer == "fast":
        from export.train.fast_dpo import train_fast

        return train_fast(cfg, pairs)

    def record(base: Base, read: int, encoded: EncodedPairs) -> dict[str, Any]:
        return {
            "pairs_read": read,
            "pairs_used": len(encoded.rows),
            "pairs_dropped_over_cutoff": encoded.dropped,
            "weight_rescale": encoded.scale,
            "pairs_file": str(cfg.pairs_path),
            "reference": str(base.checkpoint),
        }

    job = Job(
        name="hsdpo",
        title="HS-DPO",
        rows="pairs",
        encode=lambda base: (len(pairs), encode_pairs(base, pairs, cfg.cutoff)),
        trainer=lambda base, encoded, device: build_trainer(
            cfg, base, encoded.rows, output, device, callbacks
        ),
        record=record,
    )
    fit(job, cfg.model, output, cfg)
    return output


def run_all(cfg: HSDPOConfig) -> Path:
    sample(cfg)
    mine(cfg)
    return train(cfg)


# ------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.train.hsdpo",
        description=(
            "Hard-sample DPO: sample k outputs per training input from the R-SFT model, mine\n"
            "the inputs it gets both right and wrong, train weighted DPO (+ SFT) on those pairs.\n"
            "Each step is skipped when its output exists."
        ),
        epilog=(
            f"files in --output DIR: {SAMPLES} (sample), {PAIRS} (mine), {MODEL}/ (train: "
            f"checkpoint + {TRAIN_LOG}).\npreset guardreasoner-1b: lr 5e-6, 2 epochs, beta 0.01, "
            "SFT weight 2.0, effective batch 256 (4 x 64), cutoff 2048, k=4, T=0.7, top-p 0.95.\n"
            "config precedence: defaults < --preset < --config YAML < flags. See the module "
            "docstring for the weight formula."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="STEP")
    helps = {
        "sample": f"k outputs per training input -> DIR/{SAMPLES}",
        "mine": f"hard samples -> weighted pairs in DIR/{PAIRS}",
        "train": f"weighted DPO + SFT -> DIR/{MODEL}/",
        "all": "sample, mine, train (each skipped when its output exists)",
    }
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text, description=text)
        _add_io_options(sub, name)
        if name in ("sample", "all"):
            _add_sample_options(sub)
        if name in ("mine", "all"):
            _add_mine_options(sub)
        if name in ("train", "all"):
            _add_train_options(sub)
        else:
            sub.add_argument(
                "--seed", type=int, help="seed for sampling and pair choice (default 0)"
            )
    return parser


def _add_io_options(parser: argparse.ArgumentParser, step: str) -> None:
    io = parser.add_argument_group("files")
    io.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help=f"working directory: {SAMPLES}, {PAIRS} and {MODEL}/ go here",
    )
    io.add_argument(
        "--config", type=Path, metavar="YAML", help="options from a YAML file (flags override)"
    )
    io.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="guardreasoner-1b: the paper's 1B HS-DPO recipe (lr 5e-6, 2 epochs, beta 0.01, SFT "
        "weight 2.0, effective batch 256 = 4 x 64, cutoff 2048; k=4, T=0.7, top-p 0.95)",
    )
    if step in ("sample", "train", "all"):
        io.add_argument(
            "--model",
            metavar="RSFT_DIR",
            help="the R-SFT model (export.train.rsft output): sampled from, trained, the DPO "
            "reference",
        )
    if step in ("sample", "all"):
        io.add_argument(
            "--data",
            nargs="+",
            type=Path,
            metavar="FILE",
            help="the R-SFT training files (instruction/input/output): inputs and gold labels",
        )
    if step in ("sample", "mine", "all"):
        io.add_argument(
            "--samples", type=Path, metavar="FILE", help=f"samples file (default DIR/{SAMPLES})"
        )
    if step in ("mine", "train", "all"):
        io.add_argument(
            "--pairs", type=Path, metavar="FILE", help=f"pairs file (default DIR/{PAIRS})"
        )


def _add_sample_options(parser: argparse.ArgumentParser) -> None:
    d = HSDPOConfig()
    group = parser.add_argument_group("sampling")
    group.add_argument(
        "--k", type=int, help=f"outputs sampled per input and model (default {d.k}; 0: traces only)"
    )
    group.add_argument(
        "--temperature", type=float, help=f"sampling temperature (default {d.temperature})"
    )
    group.add_argument("--top-p", type=float, help=f"nucleus sampling top-p (default {d.top_p})")
    group.add_argument(
        "--max-new-tokens",
        type=positive_int,
        help=f"longest output sampled (default {d.max_new_tokens})",
    )
    group.add_argument(
        "--sample-batch-size",
        type=positive_int,
        help=f"inputs per generation batch (default {d.sample_batch_size})",
    )
    group.add_argument(
        "--chunk",
        type=positive_int,
        help=f"inputs per flush of {SAMPLES}: what a kill can lose (default {d.chunk})",
    )
    group.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="only N training inputs: a random subset (--seed), kept in file order",
    )
    group.add_argument(
        "--holdout-split",
        type=Path,
        metavar="LINES",
        help="the validation split's line file (export.data.splits, e.g. "
        "models/nano/validation.lines): its prompts are never sampled (counted)",
    )
    group.add_argument(
        "--focus",
        type=positive_int,
        metavar="N",
        help="sample only the N inputs whose fast-mode request score lies nearest the bundle's "
        "cut, half from each request label: the ones likely to give pairs "
        "(export.train.hsdpo_focus)",
    )
    group.add_argument(
        "--focus-model",
        metavar="BUNDLE",
        help="the bundle that scores inputs for --focus (default: --sample-model)",
    )
    group.add_argument(
        "--sample-model",
        metavar="MODEL",
        help="sample the policy's outputs from this model instead of --model: the R-SFT "
        "model's guardcli bundle (export.convert) samples several times faster on CPU than "
        "PyTorch does from the checkpoint",
    )
    group.add_argument(
        "--extra-models",
        nargs="+",
        metavar="MODEL",
        help="more models (bundle or checkpoint dirs) to sample k outputs each from: diversity",
    )
    group.add_argument(
        "--extra-traces",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="{prompt, label, predict} JSONL files whose outputs join those of the same input",
    )


def _add_mine_options(parser: argparse.ArgumentParser) -> None:
    d = HSDPOConfig()
    group = parser.add_argument_group("mining")
    group.add_argument(
        "--pairs-per-input",
        type=positive_int,
        metavar="N",
        help=f"(right, wrong) pairs kept per hard input (default {d.pairs_per_input})",
    )
    group.add_argument(
        "--gamma",
        type=float,
        help=f"weight = 1 + gamma * n_wrong / n_total, scaled to mean 1 (default {d.gamma:g})",
    )


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    d = HSDPOConfig()
    group = parser.add_argument_group("DPO")
    group.add_argument("--beta", type=float, help=f"DPO beta (default {d.beta:g})")
    group.add_argument(
        "--trainer",
        choices=("trl", "fast"),
        help="trl: TRL's DPOTrainer (default); fast: the same loss at batch 1 with the "
        "reference computed once and the head at completion positions only, for a CPU "
        "(export.train.fast_dpo; LoRA on every layer, resumes from OUTPUT/model/state)",
    )
    group.add_argument(
        "--sft-weight",
        type=float,
        help=f"weight of the SFT term on the chosen output (default {d.sft_weight:g})",
    )
    add_common_training_options(parser, d)


def main(argv: list[str] | None = None) -> int:
    return run_main(
        build_parser(),
        _run,
        argv,
        interrupted=(
            f"interrupted: rerun the same command to continue ({CHECKPOINTS}/ and partial "
            f"{SAMPLES} are kept; train needs --resume)"
        ),
    )


def _run(args: argparse.Namespace) -> int:
    cfg = config_from_sources(HSDPOConfig, flags_of(args), PRESETS)
    if cfg.output == Path():
        raise UsageError("--output DIR is required", hint="see python -m export.train.hsdpo --help")
    step = {"sample": sample, "mine": mine, "train": train, "all": run_all}[args.command]
    step(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
