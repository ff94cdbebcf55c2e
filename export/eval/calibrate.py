"""Fit a bundle's fast-mode request threshold on the validation split (export.data.splits).

    python -m export.eval.calibrate --model runs/nano2/bundles/nano [--max-fpr 0.1] \\
        [--also models/nano/bundle/guardcli.json]

A small guard's label probabilities are biased (nano v1 put P(harmful request) above 0.5 for
59 of 61 harmless Aegis prompts), so the arg-max is the wrong cut. This runs ``--mode fast`` on
the committed validation split (export.data.splits: never trained on, never a held-out benchmark),
picks the request threshold with the best F1 among those whose false-positive rate stays within
``--max-fpr``, and writes it into the bundle manifest's ``calibration`` (guardcli.core.triage reads
it). The refusal and response cuts stay 0.5: there is no labelled response validation set here,
and a cut fitted on training items would flatter itself.

The manifest's ``files`` hashes are not touched (calibration lives in guardcli.json itself).
``--also`` copies the cut into other manifests that describe the same weights (the committed
``models/nano/bundle/guardcli.json`` of the bundle built from it): a manifest whose graph or
weight hashes differ is refused, since a cut fitted on one model means nothing for another.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from export.cli import run_main
from guardcli.errors import UsageError
from guardcli.eval.metrics import roc_auc

WEIGHT_FILES = ("model.onnx", "model.onnx.data")


@dataclass(frozen=True)
class Cut:
    threshold: float
    f1: float
    fpr: float
    tpr: float


def at(positives: list[float], negatives: list[float], threshold: float) -> Cut:
    """F1, FPR and TPR when a score at or above ``threshold`` flags."""
    tp = sum(s >= threshold for s in positives)
    fp = sum(s >= threshold for s in negatives)
    return _counted(threshold, tp, fp, len(positives), len(negatives))


def _counted(threshold: float, tp: int, fp: int, positives: int, negatives: int) -> Cut:
    f1 = 2 * tp / (2 * tp + fp + positives - tp) if tp else 0.0
    return Cut(threshold, f1, fp / max(1, negatives), tp / max(1, positives))


def cuts(positives: list[float], negatives: list[float]) -> list[Cut]:
    """Every distinct score as a cut."""
    return [at(positives, negatives, t) for t in sorted(set(positives) | set(negatives))]


def pick(positives: list[float], negatives: list[float], max_fpr: float) -> Cut:
    """The best-F1 cut within the FPR budget (the best-F1 cut overall if none is)."""
    found = cuts(positives, negatives)
    within = [c for c in found if c.fpr <= max_fpr] or found
    return max(within, key=lambda c: (c.f1, -c.threshold))


def crossfit(positives: list[float], negatives: list[float], max_fpr: float, seed: int = 0) -> Cut:
    """What the calibrated cut scores on prompts it was not fitted on: each label's scores are
    split in two (seeded), a cut is picked on one half and measured on the other, both ways,
    and the two measurements are pooled. The in-sample cut flatters itself (it is chosen to meet
    the FPR budget on exactly these prompts); this is the number to quote beside it."""
    import random

    def halves(scores: list[float]) -> tuple[list[float], list[float]]:
        order = list(scores)
        random.Random(seed).shuffle(order)
        return order[: len(order) // 2], order[len(order) // 2 :]

    (pa, pb), (na, nb) = halves(positives), halves(negatives)
    tp = fp = 0
    for (fit_p, fit_n), (test_p, test_n) in (((pa, na), (pb, nb)), ((pb, nb), (pa, na))):
        threshold = pick(fit_p, fit_n, max_fpr).threshold
        tp += sum(s >= threshold for s in test_p)
        fp += sum(s >= threshold for s in test_n)
    return _counted(float("nan"), tp, fp, len(positives), len(negatives))


def set_calibration(manifest_path: Path, calibration: dict) -> None:
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    data["calibration"] = calibration
    manifest_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def same_weights(model: Path, other: Path) -> None:
    """Refuse ``other`` (a guardcli.json) unless it hashes the graph and weights as ``model``'s
    manifest does."""
    ours = json.loads((model / "guardcli.json").read_text(encoding="utf-8")).get("files", {})
    try:
        theirs = json.loads(other.read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError) as exc:
        raise UsageError(f"--also {other}: unreadable manifest ({exc})") from exc
    for name in WEIGHT_FILES:
        if name in ours and ours[name] != theirs.get(name):
            raise UsageError(
                f"--also {other}: its {name} is not {model}'s (sha256 differs); nothing written",
                hint="calibrate the bundle whose weights that manifest describes",
            )


def fast_guard(model: Path, threads: int | None = None, origin: str = "--model"):  # noqa: ANN201
    """A fast-mode Guard over the bundle, on CPU: what reads request scores here and in
    HS-DPO's --focus (export.train.hsdpo_focus); its ``thresholds`` are the bundle's cuts."""
    from guardcli.bundles.resolve import Resolved, open_guard
    from guardcli.core.guard import GuardOptions

    options = GuardOptions(mode="fast", max_new_tokens=256)
    return open_guard(Resolved(model, origin), device="cpu", threads=threads, options=options)[0]


def score_validation(model: Path, threads: int | None) -> tuple[list[float], list[float]]:
    from export.data import splits
    from guardcli.core.records import Sample

    validation = splits.load().validation
    guard = fast_guard(model, threads)
    positives, negatives = [], []
    for row in validation:
        result = guard.triage(Sample(f"line-{row.line}", row.prompt))
        (positives if row.request == "harmful" else negatives).append(result.verdict.scores.request)
    return positives, negatives


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export.eval.calibrate", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="the bundle to calibrate")
    parser.add_argument("--max-fpr", type=float, default=0.1)
    parser.add_argument("--threads", type=int)
    parser.add_argument(
        "--also", type=Path, nargs="*", default=[], help="other guardcli.json files to update"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    for other in args.also:  # before the minutes of scoring, not after
        same_weights(args.model, other)
    positives, negatives = score_validation(args.model, args.threads)
    cut = pick(positives, negatives, args.max_fpr)
    calibration = {
        "thresholds": {"request": round(cut.threshold, 6)},
        "fitted_on": "models/nano/validation.lines (export.data.splits), --mode fast",
        "rule": f"best F1 with false-positive rate <= {args.max_fpr}",
        "validation": {
            "harmful": len(positives),
            "unharmful": len(negatives),
            "roc_auc": round(roc_auc(positives, negatives) or 0.0, 4),
            **_cut_json(cut),
            "crossfit": _cut_json(crossfit(positives, negatives, args.max_fpr)),
            "f1_at_0.5": round(100 * at(positives, negatives, 0.5).f1, 2),
            "fpr_at_0.5": round(at(positives, negatives, 0.5).fpr, 4),
        },
    }
    for path in [args.model / "guardcli.json", *args.also]:
        set_calibration(path, calibration)
    print(json.dumps(calibration, indent=2))
    return 0


def _cut_json(cut: Cut) -> dict[str, float]:
    """A cut's F1 (percent), FPR and TPR as the manifest records them."""
    return {"f1": round(100 * cut.f1, 2), "fpr": round(cut.fpr, 4), "tpr": round(cut.tpr, 4)}


if __name__ == "__main__":
    sys.exit(main())
