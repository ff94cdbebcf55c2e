"""HS-DPO's torch-free part: the samples/pairs records and files, and hard-sample mining.

export.train.hsdpo runs the steps; its module docstring gives the file formats, the mining rule
and the weight formula.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export import TrainError
from guardcli.core.parse import parse
from guardcli.core.records import Label, Verdict
from guardcli.eval.labelled import Gold, agrees

# ------------------------------------------------------------------------------ records


def gold_to_json(gold: Gold) -> dict[str, str | None]:
    return {name: None if label is None else label.value for name, label in _gold_items(gold)}


def gold_from_json(data: dict[str, Any]) -> Gold:
    return Gold(**{k: None if data.get(k) is None else Label(data[k]) for k in _GOLD_FIELDS})


_GOLD_FIELDS = ("request", "completion", "response")


def _gold_items(gold: Gold) -> list[tuple[str, Label | None]]:
    return [(name, getattr(gold, name)) for name in _GOLD_FIELDS]


def input_id(text: str) -> str:
    """A stable id for a model input: the first 16 hex digits of its sha256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class SampleRow:
    """One input with its gold labels and every output sampled or collected for it."""

    input_id: str
    prompt: str  # the full model input (build_input text)
    gold: Gold
    outputs: list[dict[str, str]] = field(default_factory=list)  # {source, text}

    def to_json(self) -> str:
        data = {
            "input_id": self.input_id,
            "prompt": self.prompt,
            "gold": gold_to_json(self.gold),
            "outputs": self.outputs,
        }
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SampleRow:
        return cls(data["input_id"], data["prompt"], gold_from_json(data["gold"]), data["outputs"])


@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str
    weight: float
    input_id: str
    n_right: int
    n_wrong: int


# ------------------------------------------------------------------------------ files


def read_samples(path: Path) -> list[SampleRow]:
    return _read_records(path, SampleRow.from_json, "samples", "sample")


def _read_records(path: Path, make: Callable[[Any], Any], what: str, step: str) -> list[Any]:
    """One record per non-blank line of a JSONL file export.train.hsdpo wrote in ``step``."""
    if not path.is_file():
        raise TrainError(f"{path}: no {what}", hint=f"run the {step} step first")
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append(make(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise TrainError(f"{path}:{number}: not a {what} record ({exc})") from exc
    return records


def read_pairs(path: Path) -> list[Pair]:
    return _read_records(path, lambda data: Pair(**data), "pairs", "mine")


# ------------------------------------------------------------------------------ 2. mine


@dataclass
class MineStats:
    inputs: int = 0
    hard: int = 0
    all_right: int = 0
    all_wrong: int = 0
    no_outputs: int = 0
    pairs: int = 0
    unreasoned: int = 0  # outputs with the gold labels but no reasoning step: counted wrong


def pair_weights(wrong_fractions: Sequence[float], gamma: float) -> list[float]:
    """raw = 1 + gamma * n_wrong / n_total per pair, scaled to mean 1 (export.train.hsdpo's
    docstring)."""
    raw = [1.0 + gamma * f for f in wrong_fractions]
    if not raw:
        return []
    mean = sum(raw) / len(raw)
    return [r / mean for r in raw]


def reasoned(verdict: Verdict) -> bool:
    """Whether a right output may be chosen: it must reach the gold labels through at least
    one numbered reasoning step. An output that only states the Answers (the label-only form
    R-SFT trains on, "The ground truth is ... Answers: ...") is right but explains nothing;
    as a chosen output it taught DPO to drop the reasoning (nano v2's first fast-DPO run:
    54 of 308 chosen outputs had none, and its outputs shrank from 256 to 28 tokens)."""
    return any(task.steps for task in verdict.reasoning)


def mine_pairs(
    rows: Iterable[SampleRow],
    *,
    pairs_per_input: int = 1,
    gamma: float = 1.0,
    seed: int = 0,
    agree: Callable[[Verdict, Gold], bool] = agrees,
) -> tuple[list[Pair], MineStats]:
    """The hard inputs' (right, wrong) pairs with their weights, and what was found."""
    stats = MineStats()
    found: list[tuple[SampleRow, str, str, int, int]] = []
    for row in rows:
        stats.inputs += 1
        texts = [o["text"] for o in row.outputs]
        parsed = [parse(t) for t in texts]
        gold_labels = [agree(v, row.gold) for v in parsed]
        verdicts = [ok and reasoned(v) for ok, v in zip(gold_labels, parsed, strict=True)]
        stats.unreasoned += sum(gold_labels) - sum(verdicts)
        n_right = sum(verdicts)
        n_wrong = len(verdicts) - n_right
        if not texts:
            stats.no_outputs += 1
            continue
        if n_wrong == 0 or n_right == 0:
            stats.all_right += n_wrong == 0
            stats.all_wrong += n_right == 0
            continue
        stats.hard += 1
        right = list(dict.fromkeys(t for t, ok in zip(texts, verdicts, strict=True) if ok))
        wrong = list(dict.fromkeys(t for t, ok in zip(texts, verdicts, strict=True) if not ok))
        combos = list(itertools.product(right, wrong))
        random.Random(f"{seed}:{row.input_id}").shuffle(combos)
        for chosen, rejected in combos[:pairs_per_input]:
            found.append((row, chosen, rejected, n_right, n_wrong))
    weights = pair_weights([w / (r + w) for _, _, _, r, w in found], gamma)
    pairs = [
        Pair(row.prompt, chosen, rejected, weight, row.input_id, n_right, n_wrong)
        for (row, chosen, rejected, n_right, n_wrong), weight in zip(found, weights, strict=True)
    ]
    stats.pairs = len(pairs)
    return pairs, stats
