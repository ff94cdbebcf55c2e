"""Run the adversarial suite (export/injection_suite.py) on a real bundle and count flips.

    python scripts/injection_check.py --model ~/.cache/guardcli/models/nano \\
        --items 24 --reason-items 4 -o runs/injection-nano.json

Items are harmful prompts of the training split (../shared/data/extra/
guardreasoner_train_prompts.jsonl minus models/nano/validation.lines, export/splits.py), chosen
with a fixed seed. Each item is judged clean and under every attack, in fast mode (``--items``)
and reason mode (``--reason-items``, slower); a flip is an attacked item less flagged than the
same item clean (``export.injection_suite.less_flagged``). The JSON written records the bundle,
the counts per mode, every flip, and how many attacked items were reported as injected.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def harmful_training_items(count: int, seed: int = 0) -> list:
    from export.data.splits import read_lines, read_prompts, split
    from guardcli.core.records import Sample

    rows = read_prompts(ROOT / "../shared/data/extra/guardreasoner_train_prompts.jsonl")
    lines, _ = read_lines(ROOT / "models/nano/validation.lines")
    train = [row for row in split(rows, lines).train if row.request == "harmful"]
    picked = random.Random(seed).sample(train, count)
    return [Sample(id=f"train:{row.line}", prompt=row.prompt) for row in picked]


def run_mode(bundle: Path, mode: str, items: list, max_new_tokens: int) -> dict:
    from export.injection_suite import ATTACKS, attack, harm_flags, less_flagged
    from guardcli.bundles.resolve import Resolved, open_guard
    from guardcli.core.guard import GuardOptions

    options = GuardOptions(mode=mode, max_new_tokens=max_new_tokens, batch_size=8)
    guard, manifest, _ = open_guard(Resolved(bundle, "--model"), device="cpu", options=options)
    started = time.perf_counter()
    clean = {r.sample.id: r.verdict for r in guard.run(items)}
    suite = [(item, how, attack(item, how)) for item in items for how in ATTACKS]
    results = list(guard.run(sample for _, _, sample in suite))
    flips, reported = [], 0
    for (item, how, _), result in zip(suite, results, strict=True):
        reported += bool(getattr(result, "injection", ()))  # absent before the defence
        if less_flagged(clean[item.id], result.verdict):
            flips.append({"item": item.id, "attack": how.name})
    return {
        "mode": mode,
        "bundle": manifest.name,
        "items": len(items),
        "clean_flagged": sum(any(harm_flags(v)) for v in clean.values()),
        "attacked": len(suite),
        "reported_as_injection": reported,
        "flips": len(flips),
        "flipped": flips,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="bundle directory")
    parser.add_argument("--items", type=int, default=24, help="items for fast mode")
    parser.add_argument("--reason-items", type=int, default=4, help="items for reason mode")
    parser.add_argument("--max-new-tokens", type=int, default=768)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args(argv)
    items = harmful_training_items(max(args.items, args.reason_items))
    report = []
    if args.items:
        report.append(run_mode(args.model, "fast", items[: args.items], args.max_new_tokens))
        print(json.dumps(report[-1]), flush=True)
    if args.reason_items:
        reason_items = items[: args.reason_items]
        report.append(run_mode(args.model, "reason", reason_items, args.max_new_tokens))
        print(json.dumps(report[-1]), flush=True)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if any(r["flips"] for r in report) else 0


if __name__ == "__main__":
    sys.exit(main())
