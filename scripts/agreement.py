"""Verdict agreement of a bundle with existing predictions on the same inputs.

    python scripts/agreement.py --predictions runs/nano/eval --model runs/nano/bundles/hsdpo-int8 \\
        --limit 24

For choosing a precision: the predictions come from ``guardcli eval -o DIR`` with the reference
bundle (fp32), the model is the candidate (e.g. int8). The first ``--limit`` items of each
predictions file are run again through the candidate, greedily, and both outputs are read with
guardcli's parser. Prints a Markdown table per file: items, all three answers equal, each
task's answer equal, and the candidate's samples/s on this machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from guardcli.bundles.resolve import open_guard, resolve_model
from guardcli.core.guard import GuardOptions
from guardcli.core.parse import parse
from guardcli.core.records import Skip
from guardcli.core.tasks import FIELDS as TASKS
from guardcli.eval.labelled import load_predictions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=Path, required=True, help="a file or a folder")
    parser.add_argument("--model", required=True, help="the candidate bundle")
    parser.add_argument("--limit", type=int, default=24, help="items per file (first N)")
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    files = (
        sorted(args.predictions.glob("*.jsonl"))
        if args.predictions.is_dir()
        else [args.predictions]
    )
    options = GuardOptions(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    guard, manifest, _device = open_guard(resolve_model(args.model), device="cpu", options=options)
    print(f"candidate: {args.model} ({manifest.precision})", file=sys.stderr)
    print("| file | items | all answers equal | request | completion | response | samples/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    totals = [0, 0]
    for file in files:
        found = [p for p in load_predictions(file) if not isinstance(p, Skip)][: args.limit]
        start = time.perf_counter()
        results = []
        for i in range(0, len(found), args.batch_size):
            results += guard.classify_batch([p.item.sample for p in found[i : i + args.batch_size]])
        wall = time.perf_counter() - start
        same = {task: 0 for task in TASKS}
        whole = 0
        for prediction, result in zip(found, results, strict=True):
            reference = parse(prediction.output)
            equal = [getattr(reference, t) == getattr(result.verdict, t) for t in TASKS]
            for task, ok in zip(TASKS, equal, strict=True):
                same[task] += ok
            whole += all(equal)
        n = len(found)
        totals[0] += whole
        totals[1] += n
        cells = " | ".join(f"{100 * same[t] / n:.0f}%" for t in TASKS)
        print(f"| {file.stem} | {n} | {100 * whole / n:.0f}% | {cells} | {n / wall:.2f} |")
    print(f"| all | {totals[1]} | {100 * totals[0] / max(1, totals[1]):.1f}% | | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
