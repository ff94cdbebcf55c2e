"""Rejection-sampled traces: a model's own right, reasoned outputs as R-SFT rows.

    python -m export.train.rft --samples models/nano/train-state/hsdpo/samples.jsonl \\
        --replay runs/nano2/distill/train.jsonl --replay-count 400 \\
        --output runs/nano2/rft/train.jsonl

HS-DPO samples each hard training input k times (export.train.hsdpo ``sample``); the outputs that
reach the gold labels through numbered reasoning steps (export.train.mining.reasoned) are the
model's own explanations of the inputs it is least sure of. Trained on as ordinary traces
(export.train.fast_sft) they sharpen the decision where it is close, as rejection-sampling
fine-tuning does, without the reference pass and the rejected half a DPO step costs. A seeded
sample of earlier traces (``--replay``) goes with them so the tasks they do not cover (response
harm, refusal) are not forgotten. Every kept row is in the GuardReasonerTrain format
(instruction/input/output) export.train.rows reads, so the validation-split guard of
export.train.sft_data applies to these rows like any other.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from export import TrainError
from export.cli import run_main
from export.distill.judging import summary_path
from export.train.mining import SampleRow, read_samples, reasoned
from export.train.rows import TrainRow, read_train_rows
from guardcli.core.parse import parse
from guardcli.core.prompt import INSTRUCTION
from guardcli.core.records import Label
from guardcli.eval.labelled import agrees


@dataclass
class RftStats:
    inputs: int = 0
    outputs: int = 0
    kept: int = 0  # distinct right, reasoned outputs
    duplicates: int = 0  # right, reasoned outputs already kept for the same input
    inputs_with_none: int = 0
    other_label: int = 0  # inputs left out by --request-label
    replay: int = 0
    kept_by_request: dict[str, int] | None = None


def right_traces(
    rows: list[SampleRow], request: Label | None = None
) -> tuple[list[TrainRow], RftStats]:
    """Each input's distinct outputs that agree with its gold labels and show their reasoning;
    with ``request``, only inputs of that gold request label (the others counted): a signal
    aimed at one side, such as the harmless prompts a model over-flags."""
    stats = RftStats()
    by_request: Counter[str] = Counter()
    kept: list[TrainRow] = []
    for row in rows:
        if request is not None and row.gold.request is not request:
            stats.other_label += 1
            continue
        stats.inputs += 1
        seen: set[str] = set()
        for number, output in enumerate(row.outputs):
            stats.outputs += 1
            text = output["text"]
            verdict = parse(text)
            if not (agrees(verdict, row.gold) and reasoned(verdict)):
                continue
            if text in seen:
                stats.duplicates += 1
                continue
            seen.add(text)
            kept.append(TrainRow(row.prompt, text, f"{row.input_id}#{number}"))
            by_request[row.gold.request.value if row.gold.request else "none"] += 1
        stats.inputs_with_none += not seen
    stats.kept = len(kept)
    stats.kept_by_request = dict(sorted(by_request.items()))
    return kept, stats


def replay_sample(rows: list[TrainRow], count: int, seed: int) -> list[TrainRow]:
    """``count`` rows drawn without replacement, in a seeded order (all of them if fewer)."""
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows[:count]


def to_record(row: TrainRow) -> dict[str, str]:
    if not row.text.startswith(INSTRUCTION + "\n"):
        raise TrainError(f"{row.where}: the input does not start with guardcli's instruction")
    return {
        "instruction": INSTRUCTION,
        "input": row.text[len(INSTRUCTION) + 1 :],
        "output": row.output,
    }


def write(path: Path, rows: list[TrainRow], stats: Any) -> None:
    """The rows as GuardReasonerTrain JSONL and ``stats`` (a dataclass) as its summary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(to_record(row)) + "\n")  # ASCII: no raw U+2028 in a line
    tmp.replace(path)
    summary_path(path).write_text(json.dumps(asdict(stats), indent=2) + "\n", encoding="utf-8")


def write_with_replay(
    path: Path,
    rows: list[TrainRow],
    stats: Any,
    replay: Sequence[Path],
    count: int,
    seed: int,
    keep: Callable[[TrainRow], bool] | None = None,
) -> int:
    """``rows`` and ``count`` seeded rows of the ``replay`` files (those ``keep`` accepts),
    shuffled together and written with ``stats`` (its ``replay`` field set); rows written."""
    drawn: list[TrainRow] = []
    if count:
        pool = [row for row in read_train_rows(replay) if keep is None or keep(row)]
        drawn = replay_sample(pool, count, seed)
    stats.replay = len(drawn)
    out = rows + drawn
    random.Random(seed).shuffle(out)
    write(path, out, stats)
    return len(out)


def add_replay_arguments(parser: argparse.ArgumentParser, count_help: str) -> None:
    """--replay and --replay-count: rft and prompt_only write the draw (write_with_replay),
    fast_sft adds it to its traces (replay_sample)."""
    parser.add_argument("--replay", type=Path, nargs="*", default=[], help="earlier trace files")
    parser.add_argument("--replay-count", type=int, default=0, help=count_help)


def check_replay(args: argparse.Namespace) -> None:
    """Refused before any reading: a count with nothing to draw it from."""
    if args.replay_count and not args.replay:
        raise TrainError("--replay-count needs --replay FILE")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.train.rft", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--samples", type=Path, required=True, help="HS-DPO samples.jsonl")
    parser.add_argument("--output", type=Path, required=True, help="trace JSONL to write")
    add_replay_arguments(parser, "rows drawn from --replay")
    parser.add_argument(
        "--request-label",
        choices=("harmful", "unharmful"),
        help="keep only inputs whose gold request label is this (the others counted)",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    check_replay(args)
    request = Label(args.request_label) if args.request_label else None
    kept, stats = right_traces(read_samples(args.samples), request)
    written = write_with_replay(args.output, kept, stats, args.replay, args.replay_count, args.seed)
    print(
        f"wrote {written} traces to {args.output}: {stats.kept} right, reasoned outputs of "
        f"{stats.outputs} ({stats.kept_by_request}; {stats.duplicates} duplicates, "
        f"{stats.inputs_with_none} of {stats.inputs} inputs with none; {stats.other_label} of "
        f"the other label left out) + {stats.replay} replayed"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
