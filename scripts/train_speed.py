"""Training tokens/s of the CPU LoRA trainer's options against the TRL recipe, on the same rows.

    python scripts/train_speed.py --model runs/base-work/gguf-checkpoint \\
        --traces runs/nano/distill/train.jsonl --rows 8 --steps 3 [--trl]
 Each variant trains ``--steps`` optimizer steps of ``--rows`` seeded trace rows (after one warm-up
step that is not timed) and reports tokens/s (every token of every row, prompt included, as
export.train.rsft counts them) and the mean loss of the timed steps. ``--trl`` also runs
export.train.rsft (TRL SFTTrainer, the recipe's options) on the same rows and reads its logged
tokens/s. Run it on a quiet machine: nothing else on the cores. The table is markdown, for
models/nano/README.md.
"""

from __future__ import annotations

import argparse
import json
import random
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
from export.train.sft_data import trace_sequence  # noqa: E402
from export.train.sft_model import LoraLM  # noqa: E402
from guardcli.core.prompt import INSTRUCTION  # noqa: E402

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


def time_variant(checkpoint: Path, rows, opts: Options, steps: int) -> tuple[float, float]:  # noqa: ANN001
    import torch

    torch.manual_seed(0)
    model = LoraLM(checkpoint, opts)
    optim = torch.optim.AdamW(model.parameters(), lr=opts.lr)

    def step() -> tuple[int, float]:
        optim.zero_grad(set_to_none=True)
        tokens, loss_sum = 0, 0.0
        prefix = model.open_prefix(rows) if opts.share_prefix else None
        for index, row in enumerate(rows):
            loss = model.row_loss(index, row, prefix) / len(rows)
            loss.backward()
            tokens += len(row.ids)
            loss_sum += float(loss.detach()) * len(rows)
        if prefix:
            prefix.backward()
        optim.step()
        return tokens, loss_sum / len(rows)

    step()  # warm-up; with cache_lower this also fills the cache, as epoch 1 does
    tokens, losses, started = 0, [], time.perf_counter()
    for _ in range(steps):
        n, loss = step()
        tokens += n
        losses.append(loss)
    return tokens / (time.perf_counter() - started), sum(losses) / len(losses)


def trl_speed(model: str, rows, steps: int, threads: int | None) -> float:  # noqa: ANN001
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "rows.jsonl"
        with open(data, "w", encoding="utf-8") as handle:
            for row in rows:
                item = {
                    "instruction": INSTRUCTION,
                    "input": row.text[len(INSTRUCTION) + 1 :],
                    "output": row.output,
                }
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--traces", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--trl", action="store_true")
    parser.add_argument("--threads", type=int)
    parser.add_argument(
        "--only", type=int, nargs="*", help="time these rows of the table only (1 = the first)"
    )
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    all_rows = [r for r in read_train_rows([args.traces])]
    picked = random.Random(0).sample(all_rows, args.rows * 3)
    with tempfile.TemporaryDirectory() as tmp:
        base = open_base(args.model, Path(tmp))
        seqs = [trace_sequence(base, r.text, r.output) for r in picked]
        seqs = [s for s in seqs if len(s.ids) <= 1024][: args.rows]
        kept = {s.ids for s in seqs}
        raw_rows = [
            r
            for r, s in zip(
                picked, [trace_sequence(base, r.text, r.output) for r in picked], strict=True
            )
            if s.ids in kept
        ]
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
            reference = trl_speed(args.model, raw_rows, args.steps, args.threads)
            name = "export.train.rsft (TRL SFTTrainer), the recipe's options"
            print(f"| {name} | {reference:.0f} | 1.00× | |")
        opts = Options()
        for number, (name, change) in enumerate(VARIANTS, 1):
            opts = replace(opts, **change)
            if args.only and number not in args.only:
                continue
            speed, loss = time_variant(base.checkpoint, seqs, opts, args.steps)
            ratio = f"{speed / reference:.2f}×" if reference else ""
            print(f"| {name} | {speed:.0f} | {ratio} | {loss:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
