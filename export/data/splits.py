"""The prompt-harm validation split of the labelled training prompts, fixed once.

    python -m export.data.splits write   # models/nano/validation.lines from the prompts file
    python -m export.data.splits check   # regenerate both halves, compare with the committed hash

``../shared/data/extra/guardreasoner_train_prompts.jsonl`` is the only prompt set here with real
harmless prompts, so it is where false positives and fast-mode ranking are measured. A seeded,
stratified 20% (by source and label) is held out from every training stage: the committed
``models/nano/validation.lines`` lists its 1-based line numbers, and the sha256 of the rows it
selects is recorded beside them so anyone can regenerate the split byte for byte and see that it
is the one the card measured. Prompts whose text also occurs in the training part (duplicates in
the file) are dropped from training, never from validation, so no validation prompt is trained on
under another line number.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from export.cli import run_main

PROMPTS = Path("../shared/data/extra/guardreasoner_train_prompts.jsonl")
LINES = Path("models/nano/validation.lines")
FRACTION = 0.2
SEED = 0


@dataclass(frozen=True)
class Labelled:
    line: int  # 1-based, in the prompts file
    prompt: str
    request: str  # harmful / unharmful
    source: str


@dataclass(frozen=True)
class Split:
    train: list[Labelled]
    validation: list[Labelled]
    dropped_duplicates: int  # training rows whose prompt text is a validation prompt's


def read_prompts(path: Path = PROMPTS) -> list[Labelled]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            item = json.loads(line)
            rows.append(Labelled(number, item["prompt"], item["request"], item["source"]))
    return rows


def choose_validation(
    rows: list[Labelled], fraction: float = FRACTION, seed: int = SEED
) -> set[int]:
    """Line numbers of a stratified sample: ``round(fraction * n)`` of each (source, label)."""
    strata: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in rows:
        strata[(row.source, row.request)].append(row.line)
    rng = random.Random(seed)
    chosen: set[int] = set()
    for key in sorted(strata):
        lines = sorted(strata[key])
        rng.shuffle(lines)
        chosen.update(lines[: round(fraction * len(lines))])
    return chosen


def split(rows: list[Labelled], validation_lines: set[int]) -> Split:
    validation = [r for r in rows if r.line in validation_lines]
    held = {prompt_key(r.prompt) for r in validation}
    train = [r for r in rows if r.line not in validation_lines and prompt_key(r.prompt) not in held]
    dropped = len(rows) - len(validation) - len(train)
    return Split(train, validation, dropped)


def prompt_key(prompt: str) -> str:
    """A prompt's identity for disjointness: whitespace and case do not make a new prompt."""
    return " ".join(prompt.split()).lower()


def digest(rows: list[Labelled]) -> str:
    """sha256 of the rows as JSONL (line, prompt, request, source), in file order."""
    text = "".join(
        json.dumps(
            {"line": r.line, "prompt": r.prompt, "request": r.request, "source": r.source},
            ensure_ascii=False,
        )
        + "\n"
        for r in rows
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_lines(path: Path, lines: set[int], rows_digest: str) -> None:
    header = (
        f"# guardcli nano validation split: {len(lines)} line numbers of {PROMPTS.name}\n"
        f"# stratified by (source, request), fraction {FRACTION}, seed {SEED}; never trained on\n"
        f"# sha256 of the selected rows (python -m export.data.splits check): {rows_digest}\n"
    )
    path.write_text(header + "".join(f"{n}\n" for n in sorted(lines)), encoding="utf-8")


def read_lines(path: Path = LINES) -> tuple[set[int], str]:
    lines: set[int] = set()
    recorded = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("#"):
            if "sha256" in raw:
                recorded = raw.rsplit(" ", 1)[-1]
            continue
        if raw.strip():
            lines.add(int(raw))
    return lines, recorded


def load(prompts: Path = PROMPTS, lines_file: Path = LINES) -> Split:
    """The committed split, checked against its recorded hash."""
    lines, recorded = read_lines(lines_file)
    result = split(read_prompts(prompts), lines)
    if recorded and digest(result.validation) != recorded:
        raise SystemExit(f"{lines_file}: {prompts} no longer gives the recorded validation rows")
    return result


def validation_keys(lines_file: Path = LINES, prompts: Path = PROMPTS) -> frozenset[str]:
    """``prompt_key`` of every validation prompt: what no training stage may see."""
    return frozenset(prompt_key(r.prompt) for r in load(prompts, lines_file).validation)


def write_jsonl(rows: list[Labelled], path: Path) -> None:
    """Rows as labelled JSONL ``guardcli eval`` reads (``prompt``, ``request``, ``id``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for r in rows:
            item = {"id": f"line-{r.line}", "prompt": r.prompt, "request": r.request}
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export.data.splits", description=__doc__)
    parser.add_argument("action", choices=("write", "check", "export"))
    parser.add_argument("--prompts", type=Path, default=PROMPTS)
    parser.add_argument("--lines", type=Path, default=LINES)
    parser.add_argument("--output", type=Path, help="export: the validation JSONL to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    rows = read_prompts(args.prompts)
    if args.action == "write":
        chosen = choose_validation(rows)
        write_lines(args.lines, chosen, digest(split(rows, chosen).validation))
    result = load(args.prompts, args.lines)
    if args.action == "export":
        write_jsonl(result.validation, args.output or Path("runs/validation.jsonl"))
    harmful = sum(r.request == "harmful" for r in result.validation)
    print(
        f"validation {len(result.validation)} ({harmful} harmful), train {len(result.train)}, "
        f"{result.dropped_duplicates} training duplicates of validation prompts dropped",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
