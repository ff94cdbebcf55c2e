"""Samples per second of a bundle at several batch sizes, on the same real inputs.

    python scripts/speed.py --model nano \\
        --bench ../shared/data/guardreasoner/benchmark/0_A_beaver_tails.json --limit 24 \\
        --batch-size 1 8

Prints a Markdown table: batch size, samples, wall seconds, samples/s, mean prompt and output
tokens, output tokens/s, and how often the Answers block parsed. One warm-up batch runs first
and is not counted. Generation is greedy, so every batch size gives the same verdicts; the
table says so (the "same verdicts" column compares with the first batch size).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

from guardcli.bundles.resolve import open_guard, resolve_model
from guardcli.core.guard import GuardOptions
from guardcli.core.records import ParseStatus, Skip
from guardcli.eval.judge import pick
from guardcli.eval.labelled import load_labelled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="bundle dir or name (default: resolved)")
    parser.add_argument("--bench", required=True, help="a labelled benchmark file")
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    items = [x for x in load_labelled(args.bench) if not isinstance(x, Skip)]
    samples = [x.sample for x in pick(items, args.limit, args.seed)]
    resolved = resolve_model(args.model)
    print(
        f"model {resolved.path} | {len(samples)} samples of {args.bench} | "
        f"{platform.processor() or platform.machine()} | threads {args.threads or 'all'}",
        file=sys.stderr,
    )
    print("| batch | samples | wall s | samples/s | prompt tok | output tok | output tok/s "
          "| parsed | same verdicts |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    first = None
    for batch in args.batch_size:
        options = GuardOptions(max_new_tokens=args.max_new_tokens, batch_size=batch)
        guard, _manifest, _device = open_guard(
            resolved, device="cpu", threads=args.threads, options=options
        )
        guard.classify_batch(samples[:batch])  # warm-up, not counted
        start = time.perf_counter()
        results = []
        for i in range(0, len(samples), batch):
            results += guard.classify_batch(samples[i : i + batch])
        wall = time.perf_counter() - start
        gens = [r.generation for r in results if r.generation]
        out_tokens = sum(g.output_tokens for g in gens)
        parsed = sum(r.verdict.status is ParseStatus.OK for r in results)
        verdicts = [(r.verdict.request, r.verdict.completion, r.verdict.response) for r in results]
        first = first or verdicts
        print(
            f"| {batch} | {len(results)} | {wall:.1f} | {len(results) / wall:.2f} "
            f"| {statistics.mean(g.prompt_tokens for g in gens):.0f} "
            f"| {out_tokens / len(gens):.0f} | {out_tokens / wall:.1f} "
            f"| {parsed}/{len(results)} | {'yes' if verdicts == first else 'NO'} |"
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
