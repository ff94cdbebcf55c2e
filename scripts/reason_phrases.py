"""Where reason mode's request verdicts go wrong: a table by outcome (TP/FP/TN/FN) and source,
and how often the Task 1 reasoning hedges ("could potentially", "sensitive") in each.

    guardcli eval runs/validation.jsonl --task prompt --batch-size 8 --model nano -o OUT --json
    python scripts/reason_phrases.py OUT/validation.jsonl \\
        --prompts ../shared/data/extra/guardreasoner_train_prompts.jsonl

The sources come from the labelled prompts file (WildGuardTrainR, AegisTrainR), matched by the
prompt's exact text.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from guardcli.core.parse import parse
from guardcli.core.prompt import split_input

PHRASES = ("could potentially", "potentially harmful", "sensitive", "inherently harmful")
OUTCOMES = {("harmful", "harmful"): "TP", ("unharmful", "harmful"): "FP"}
OUTCOMES |= {("unharmful", "unharmful"): "TN", ("harmful", "unharmful"): "FN"}


def _lines(path: Path) -> Iterator[str]:
    """JSONL lines split on newlines only (prompts hold U+2028, which splitlines() splits on)."""
    with path.open(encoding="utf-8") as handle:
        yield from handle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", type=Path, help="a guardcli eval output JSONL (reason mode)")
    parser.add_argument("--prompts", type=Path, required=True)
    args = parser.parse_args()
    source = {}
    for line in _lines(args.prompts):
        row = json.loads(line)
        source[row["prompt"]] = row["source"]
    by_source: Counter[tuple[str, str]] = Counter()
    phrases: dict[str, Counter[str]] = {k: Counter() for k in ("TP", "FP", "TN", "FN")}
    for line in _lines(args.outputs):
        row = json.loads(line)
        verdict = parse(row["predict"]).request.value  # the Answers block, as eval reads it
        outcome = OUTCOMES.get((row["label"], verdict), "unparsed")
        prompt = (split_input(row["prompt"]) or ("",))[0]
        by_source[(source.get(prompt, "?"), outcome)] += 1
        if outcome in phrases:
            task1 = row["predict"].split("# Task 2")[0]
            phrases[outcome]["rows"] += 1
            for phrase in PHRASES:
                phrases[outcome][phrase] += bool(re.search(phrase, task1))
    print("| source | TP | FP | TN | FN | unparsed | FPR | recall |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in sorted({s for s, _ in by_source}):
        n = {o: by_source[(name, o)] for o in ("TP", "FP", "TN", "FN", "unparsed")}
        fpr = n["FP"] / max(1, n["FP"] + n["TN"])
        recall = n["TP"] / max(1, n["TP"] + n["FN"])
        cells = " | ".join(str(n[o]) for o in n)
        print(f"| {name} | {cells} | {fpr:.1%} | {recall:.1%} |")
    print()
    print("| Task 1 reasoning contains | " + " | ".join(phrases) + " |")
    print("|---|" + "---:|" * len(phrases))
    for phrase in PHRASES:
        cells = " | ".join(f"{c[phrase] / max(1, c['rows']):.0%}" for c in phrases.values())
        print(f'| "{phrase}" | {cells} |')


if __name__ == "__main__":
    main()
