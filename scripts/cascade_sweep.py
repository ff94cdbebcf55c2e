"""Choose a cascade band from recorded predictions: F1 and the share sent to reasoning.

    python scripts/cascade_sweep.py --fast runs/nano/eval-fast --reason runs/nano/eval \\
        --band 0.2,0.8 --band 0.4,0.6 --band 0.45,0.55

``--fast`` and ``--reason`` are ``guardcli eval -o`` folders of the same items, run with
``--mode fast`` and ``--mode reason``. Reasoning is deterministic (greedy), so the cascade's
verdict for an item is exactly the recorded reasoning when a harm score falls in the band,
else the fast one: the F1 of any band comes out of the two files without running the model
again (``guardcli eval --mode cascade`` runs one band end to end to check). The time column
is an estimate from the recorded runs: fast for every item, plus each reasoned item's share
of the reasoning run's wall time (batches of ``--batch-size`` consecutive items).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _records(path: Path) -> dict[str, dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {record["id"]: record for record in map(json.loads, lines)}


def _reason_wall_s(records: list[dict], batch: int) -> float:
    """A batch ends when its longest row does: the wall time is the sum of batch maxima."""
    latencies = [r["latency_ms"] / 1000 for r in records]
    return sum(max(latencies[i : i + batch]) for i in range(0, len(latencies), batch))


def sweep(fast_dir: Path, reason_dir: Path, bands: list[tuple[float, float]], batch: int) -> list:
    from guardcli.core.parse import parse
    from guardcli.core.records import Scores
    from guardcli.core.triage import uncertain
    from guardcli.eval.predictions import judged_of, read
    from guardcli.eval.scoring import Mode, score_benchmark

    rows = []
    for fast_path in sorted(fast_dir.glob("*.jsonl")):
        reason_path = reason_dir / fast_path.name
        if not reason_path.is_file():
            continue
        task = read(str(fast_path)).task
        fast, reason = _records(fast_path), _records(reason_path)
        ids = [i for i in fast if i in reason]
        fast_s = sum(fast[i]["latency_ms"] / 1000 for i in ids)
        reason_s = _reason_wall_s([reason[i] for i in ids], batch)
        for band in [None, *bands]:
            judged, reasoned = [], 0
            for i in ids:
                record = fast[i]
                scores = Scores(record["request_score"], record["refusal_score"],
                                record["response_score"])  # fmt: skip
                deep = band is not None and uncertain(scores, band)
                if deep and parse(reason[i]["predict"]).parsed:
                    record = reason[i]
                reasoned += deep
                judged.append(judged_of(record, i, task))
            scored = score_benchmark(
                judged, name=fast_path.stem, path="", task=task, mode=Mode.HONEST
            )
            seconds = fast_s + reasoned / len(ids) * reason_s
            rows.append((fast_path.stem, band, reasoned / len(ids), 100 * scored.scores.f1,
                         len(ids) / seconds, len(ids) / reason_s))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", type=Path, required=True)
    parser.add_argument("--reason", type=Path, required=True)
    parser.add_argument("--band", action="append", default=[], metavar="LOW,HIGH")
    parser.add_argument("--batch-size", type=int, default=8, help="of the reasoning run")
    args = parser.parse_args(argv)
    bands = [tuple(float(x) for x in b.split(",")) for b in args.band]
    print("| benchmark | cascade band | reasoned | F1 | samples/s (est.) | × reason |")
    print("|---|---|---:|---:|---:|---:|")
    for name, band, share, f1, rate, reason_rate in sweep(args.fast, args.reason, bands,
                                                          args.batch_size):  # fmt: skip
        shown = "fast only" if band is None else f"{band[0]:g}..{band[1]:g}"
        print(f"| {name} | {shown} | {100 * share:.0f}% | {f1:.2f} | {rate:.2f} "
              f"| {rate / reason_rate:.1f}× |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
