"""Would a calibrated cut on reason mode's own answer fix its over-flagging? Measure it.

    python scripts/reason_answer_scores.py --reason OUT/val200.jsonl --model nano \\
        [--max-fpr 0.1] [--json FILE]

``--reason`` is a ``guardcli eval --mode reason --task prompt -o OUT`` predictions file (its
records keep the model's full input and output). For each item this feeds the input, the
model's reasoning up to its Answers block, then the Answers head, and reads P(harmful request)
exactly as fast triage reads it (guardcli.core.triage): the answer the reasoning leads to, as a
score. Printed: that score's ROC AUC, the greedy answer's F1/FPR/recall, and the F1/FPR/recall
at cuts, including the best F1 whose FPR stays within ``--max-fpr``. Run it on validation
predictions only: a cut chosen on a held-out benchmark would flatter itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CUTS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99)


def answer_scores(records: list[dict], model: str) -> list[tuple[bool, bool, float]]:
    """(gold harmful, greedy said harmful, P(harmful) after the reasoning) per record."""
    from guardcli.bundles.resolve import open_guard, resolve_model
    from guardcli.core.parse import parse
    from guardcli.core.records import Label
    from guardcli.core.triage import ANSWERS_HEAD, Thresholds, Triage

    guard, _manifest, _device = open_guard(resolve_model(model))
    choices = Triage(guard.codec, Thresholds()).choices(False)
    head = ANSWERS_HEAD.split("\n", 1)[0]  # "---": where the reasoning ends
    found = []
    for record in records:
        text = record["predict"]
        end = text.find(head)
        reasoning = text if end < 0 else text[:end]
        ids = guard.codec.encode(record["prompt"]) + guard.codec.pieces(reasoning)
        picked = guard.engine.choose(ids, choices)
        greedy = parse(text).request_harmful
        gold = record["label"] == Label.HARMFUL.value
        found.append((gold, greedy, picked.picks[0].probs[0]))
    return found


def _row(name: str, cut) -> str:  # noqa: ANN001 - export.eval.calibrate.Cut
    return f"| {name} | {100 * cut.f1:.1f} | {100 * cut.fpr:.0f}% | {100 * cut.tpr:.0f}% |"


def main() -> None:
    from export.eval.calibrate import at, pick
    from guardcli.eval.metrics import roc_auc

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reason", required=True, help="a --mode reason predictions file")
    parser.add_argument("--model", default="nano")
    parser.add_argument("--max-fpr", type=float, default=0.1)
    parser.add_argument("--json", help="also write the per-item scores here")
    args = parser.parse_args()
    lines = Path(args.reason).read_text(encoding="utf-8").splitlines()
    scored = answer_scores([json.loads(line) for line in lines if line.strip()], args.model)
    positives = [p for gold, _, p in scored if gold]
    negatives = [p for gold, _, p in scored if not gold]
    greedy = at([float(g) for gold, g, _ in scored if gold],
                [float(g) for gold, g, _ in scored if not gold], 1.0)  # fmt: skip
    best = pick(positives, negatives, args.max_fpr)
    print(f"{len(scored)} items ({len(positives)} harmful); ROC AUC of the answer score "
          f"{roc_auc(positives, negatives):.3f}")  # fmt: skip
    print("| cut | F1 | FPR | recall |\n|---|---:|---:|---:|")
    print(_row("greedy answer", greedy))
    for cut in [*CUTS, best.threshold]:
        mark = f" (best F1 with FPR ≤ {args.max_fpr:g})" if cut == best.threshold else ""
        print(_row(f"{cut:.3f}{mark}", at(positives, negatives, cut)))
    if args.json:
        rows = [{"harmful": g, "greedy": r, "score": p} for g, r, p in scored]
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
