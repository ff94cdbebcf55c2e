"""Held-out F1 of one or more bundles: ``python -m export.eval.evaluate``.

    python -m export.eval.evaluate --model runs/nano/bundles/rsft \\
        --bench ../shared/data/guardreasoner/benchmark/0_0_SimpleSafetyTests.json \\
        --bench ../shared/data/guardreasoner/benchmark/0_9_safe_rlhf.json --limit 100 \\
        --output runs/nano/eval-rsft.json

The pipeline's evaluation stage: every model on every benchmark file through guardcli's own
runtime and the judging path ``guardcli eval`` uses (guardcli.eval.judge, honest scoring: an
unparsed output is a wrong answer and is counted). ``--limit`` takes a seeded random subset of
each file, the same for every model, so rows of one table compare like with like. Writes JSON
(per file: F1, precision, recall, confusion, parse failures, mean output tokens and latency)
and prints a Markdown table.
``guardcli eval`` (issue #4) is the user-facing command; this one exists for training runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from export.cli import run_main
from guardcli.backends.genai import DEVICES


def evaluate(
    models: list[Path],
    benches: list[Path],
    *,
    limit: int | None,
    seed: int,
    max_new_tokens: int,
    batch_size: int,
    device: str,
) -> list[dict]:
    from guardcli.bundles.resolve import Resolved, open_guard
    from guardcli.core.guard import GuardOptions
    from guardcli.eval.judge import judge_file, labelled_file
    from guardcli.eval.scoring import Mode, score_benchmark

    rows = []
    for model in models:
        guard, manifest, chosen = open_guard(
            Resolved(model, "--model"),
            device=device,
            options=GuardOptions(max_new_tokens=max_new_tokens, batch_size=batch_size),
        )
        for bench in benches:
            started = time.perf_counter()
            found = labelled_file(bench, limit=limit, seed=seed)
            failures = []  # outputs with no readable Answers block at all

            def count(_item, result, failures=failures) -> None:  # noqa: ANN001
                failures.append(not result.verdict.parsed)

            judged = judge_file(guard, found, on_result=count)
            scored = score_benchmark(
                judged, name=found.name, path=str(bench), task=found.task, mode=Mode.HONEST
            )
            s = scored.scores
            row = {
                "model": manifest.name,
                "bundle": str(model),
                "precision": manifest.precision,
                "device": chosen,
                "benchmark": found.name,
                "task": found.task.value,
                "items": s.n,
                "f1": round(100 * s.f1, 2),
                "precision_pct": round(100 * s.precision, 2),
                "recall": round(100 * s.recall, 2),
                "confusion": {"tp": s.tp, "fp": s.fp, "tn": s.tn, "fn": s.fn},
                "unparsed_labels": s.unparsed,
                "parse_failures": sum(failures),
                "parse_rate": round(100 * (1 - sum(failures) / max(s.n, 1)), 2),
                "skipped": len(found.skips) + found.unlabelled,
                "mean_output_tokens": round(scored.mean_output_tokens or 0.0, 1),
                "mean_latency_s": round(scored.mean_latency_s or 0.0, 3),
                "seconds": round(time.perf_counter() - started, 1),
            }
            print(_line(row), flush=True)
            rows.append(row)
    return rows


def _line(row: dict) -> str:
    return (
        f"{row['model']} {row['benchmark']}: F1 {row['f1']:.2f} over {row['items']} items, "
        f"parse rate {row['parse_rate']:.1f}%, {row['mean_output_tokens']:.0f} tokens/item, "
        f"{row['seconds']:.0f} s"
    )


def markdown(rows: list[dict]) -> str:
    head = "| model | benchmark | items | F1 | precision | recall | parse rate | tokens/item |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['benchmark']} | {r['items']} | {r['f1']:.2f} | "
            f"{r['precision_pct']:.2f} | {r['recall']:.2f} | {r['parse_rate']:.1f}% | "
            f"{r['mean_output_tokens']:.0f} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.eval.evaluate",
        description="Score guardcli bundles on labelled benchmark files (held-out F1).",
    )
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        required=True,
        metavar="BUNDLE",
        help="a guardcli bundle directory (repeat for several models)",
    )
    parser.add_argument(
        "--bench",
        type=Path,
        action="append",
        required=True,
        metavar="FILE",
        help="a GuardReasoner benchmark JSON or labelled JSONL file (repeatable); its name "
        "says which task it scores (guardcli.eval.benchmarks.task_of)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="score a seeded random subset of N items per file (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="subset seed (default 0)")
    parser.add_argument(
        "--max-new-tokens", type=int, default=1024, help="generation budget per item (1024)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="items per batch (8)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="where to run (auto)")
    parser.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write the rows as JSON here (and the Markdown table beside it, .md)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    rows = evaluate(
        args.model,
        args.bench,
        limit=args.limit,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        device=args.device,
    )
    table = markdown(rows)
    print(table)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        payload = {"rows": rows, "limit": args.limit, "seed": args.seed}
        args.output.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        args.output.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
