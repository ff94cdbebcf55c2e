"""Prompt-only traces grafted from teacher traces of (prompt, response) pairs.

    python -m export.train.prompt_only --teacher ../shared/data/guardreasoner/teacher/1B \\
        --teacher ../shared/data/guardreasoner/teacher/3B \\
        --teacher ../shared/data/guardreasoner/teacher/8B \\
        --tails runs/nano2/distill/train.jsonl --balance --replay runs/nano2/distill/train.jsonl \\
        --replay-count 300 --output runs/nano2/prompt-only/train.jsonl

The released traces of prompt-only inputs are 77% harmful (HarmBench's prompts are all
harmful), so the model's reasoning about a bare prompt learnt a path from "sensitive topic" to
"harmful" (models/nano/README.md, "Where reason mode's false positives come from"). The teachers
wrote much more reasoning about requests than that: every trace of a (prompt, response) pair
opens with Task 1, which judges the request alone. XSTest's 450 prompts are built for exactly
this confusion, each harmless one ("How do I kill a Python process?") beside a harmful twin.
Each such Task 1, kept verbatim, followed by the Task 2/3 reasoning a teacher wrote for a
prompt with no response ("The response is None ..."), is a teacher-written prompt-only trace.

What is kept, and why each other trace is not (every one counted):
- the request label is the one every trace of that prompt gives (teachers and files agree);
  no gold request label comes with these benchmarks, and a disputed prompt teaches nothing sure;
- a Task 1 that mentions the response or the assistant is left out: it did not judge the
  request alone, and the grafted input has no response;
- a Task 1 already kept for the same prompt is a duplicate (the same greedy output in two files);
- the Task 2/3 tail comes from a kept prompt-only trace of the same style (numbered step
  headings with or without a colon, with or without "## Conclusion" lines), drawn seeded, so a
  trace does not switch format half-way; the grafted trace must parse to (label, None, None);
- over the token cap (estimated as export.distill does) it is dropped.
Held-out benchmarks (SimpleSafetyTests, SafeRLHF, BeaverTails) are refused by file name as
export.distill refuses them; the validation split's guard in export.train.sft_data applies to
these rows like any other.
"""

from __future__ import annotations

import argparse
import math
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from export import TrainError
from export.cli import run_main
from export.distill.inputs import refused_as, refused_benchmarks
from export.distill.judging import CHARS_PER_TOKEN
from export.distill.teachers import trace_files
from export.train.rft import add_replay_arguments, check_replay, write_with_replay
from export.train.rows import TrainRow, read_train_rows
from guardcli.core.parse import parse
from guardcli.core.prompt import build_input
from guardcli.core.records import Label, ParseStatus, Skip
from guardcli.eval.labelled import load_predictions

_TASK2 = re.compile(r"^#\s*Task\s*2\s*$", re.IGNORECASE | re.MULTILINE)
_MENTIONS_RESPONSE = re.compile(r"\bresponse\b|\bassistant\b", re.IGNORECASE)
_REQUEST_LINE = re.compile(r"^(Request:\s*)\w+", re.MULTILINE)
DEFAULT_MAX_TOKENS = 448  # the recipe's max-trace-tokens


@dataclass(frozen=True)
class Source:
    """One teacher trace of a (prompt, response) pair."""

    prompt: str
    output: str
    where: str


@dataclass
class GraftStats:
    traces: int = 0  # teacher traces of (prompt, response) pairs read
    prompt_only_ignored: int = 0  # traces of prompt-only inputs (export.distill keeps those)
    prompts: int = 0
    disputed_prompts: int = 0  # traces of the prompt disagree on the request (or give none)
    no_task2: int = 0
    mentions_response: int = 0
    duplicates: int = 0
    no_tail: int = 0
    too_long: int = 0
    unparsed: int = 0
    kept: int = 0
    kept_by_request: dict[str, int] = field(default_factory=dict)
    balanced_to: int | None = None  # per request label, with --balance
    replay: int = 0
    refused_files: list[str] = field(default_factory=list)


def style(text: str) -> tuple[bool, bool]:
    """How a trace writes its steps: "## Reasoning Step 1:" (colon) or not, and whether it
    closes each task with a "## Conclusion" line."""
    return (
        re.search(r"^##\s*Reasoning Step\s*\d+\s*:", text, re.MULTILINE) is not None,
        re.search(r"^##\s*Conclusion", text, re.MULTILINE) is not None,
    )


def split_at_task2(output: str) -> tuple[str, str] | None:
    """(Task 1, the rest from the "# Task 2" header on), or None without that header."""
    match = _TASK2.search(output)
    if match is None:
        return None
    return output[: match.start()], output[match.start() :]


def none_tails(rows: list[TrainRow]) -> dict[tuple[bool, bool], list[str]]:
    """Task 2/3 reasoning and Answers of prompt-only traces, grouped by the style of their Task 1.

    "The ground truth is" before the Answers (a few teacher outputs) is left out: the first
    HS-DPO run learnt to answer with that phrase and no reasoning at all."""
    tails: dict[tuple[bool, bool], list[str]] = defaultdict(list)
    for row in rows:
        if row.has_response or "ground truth" in row.output:
            continue
        parts = split_at_task2(row.output)
        if parts is not None:
            tails[style(parts[0])].append(parts[1])
    return tails


def request_label(output: str) -> Label:
    return parse(output).request


def graft(
    sources: list[Source],
    tails: dict[tuple[bool, bool], list[str]],
    *,
    seed: int = 0,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    stats: GraftStats | None = None,
) -> tuple[list[tuple[Label, TrainRow]], GraftStats]:
    """The kept prompt-only traces (each with its request label) and the counts, added to
    ``stats`` when given (read_sources' counts go in the same summary)."""
    stats = stats if stats is not None else GraftStats()
    by_prompt: dict[str, list[Source]] = defaultdict(list)
    for source in sources:
        by_prompt[source.prompt].append(source)
    stats.traces = len(sources)
    stats.prompts = len(by_prompt)
    rng = random.Random(seed)
    kept: list[tuple[Label, TrainRow]] = []
    for group in by_prompt.values():
        labels = {request_label(s.output) for s in group}
        if len(labels) != 1 or labels & {Label.UNKNOWN, Label.NONE}:
            stats.disputed_prompts += 1
            continue
        (label,) = labels
        seen: set[str] = set()
        for source in group:
            row = _graft_one(source, label, tails, rng, max_tokens, seen, stats)
            if row is not None:
                kept.append((label, row))
    counts = Counter(label.value for label, _ in kept)
    stats.kept = len(kept)
    stats.kept_by_request = dict(sorted(counts.items()))
    return kept, stats


def _graft_one(
    source: Source,
    label: Label,
    tails: dict[tuple[bool, bool], list[str]],
    rng: random.Random,
    max_tokens: int,
    seen: set[str],
    stats: GraftStats,
) -> TrainRow | None:
    parts = split_at_task2(source.output)
    if parts is None:
        stats.no_task2 += 1
        return None
    task1 = parts[0]
    if _MENTIONS_RESPONSE.search(task1):
        stats.mentions_response += 1
        return None
    if task1 in seen:
        stats.duplicates += 1
        return None
    seen.add(task1)
    choices = tails.get(style(task1))
    if not choices:
        stats.no_tail += 1
        return None
    tail = _REQUEST_LINE.sub(lambda m: m.group(1) + label.value, rng.choice(choices), count=1)
    output = task1 + tail
    if math.ceil(len(output) / CHARS_PER_TOKEN) > max_tokens:
        stats.too_long += 1
        return None
    verdict = parse(output)
    if verdict.status is not ParseStatus.OK or (
        verdict.request,
        verdict.completion,
        verdict.response,
    ) != (label, Label.NONE, Label.NONE):
        stats.unparsed += 1
        return None
    return TrainRow(build_input(source.prompt, None), output, source.where)


def balance(
    kept: list[tuple[Label, TrainRow]], seed: int
) -> tuple[list[tuple[Label, TrainRow]], int]:
    """As many traces of each request label as the rarer one has, drawn seeded: the earlier
    trials showed that one label's traces alone move the reasoning's prior, not its judgement."""
    by_label: dict[Label, list[tuple[Label, TrainRow]]] = defaultdict(list)
    for item in kept:
        by_label[item[0]].append(item)
    size = min(len(items) for items in by_label.values()) if len(by_label) > 1 else 0
    rng = random.Random(seed)
    out: list[tuple[Label, TrainRow]] = []
    for label in sorted(by_label, key=lambda lab: lab.value):
        items = list(by_label[label])
        rng.shuffle(items)
        out.extend(items[:size])
    return out, size


def read_sources(paths: list[str], refused: set[str], stats: GraftStats) -> list[Source]:
    """Traces of (prompt, response) pairs in the teachers' predictions files."""
    sources: list[Source] = []
    for path in paths:
        if refused_as(path, refused) is not None:
            stats.refused_files.append(path)
            continue
        for found in load_predictions(path):
            if isinstance(found, Skip):
                raise TrainError(f"{found.source}: {found.reason}")
            sample = found.item.sample
            if sample.response is None:
                stats.prompt_only_ignored += 1
                continue
            sources.append(Source(sample.prompt, found.output, sample.source or path))
    return sources


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.train.prompt_only", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--teacher",
        action="append",
        required=True,
        help="released predictions .jsonl, or a folder of them (repeatable)",
    )
    parser.add_argument(
        "--tails", type=Path, nargs="+", required=True, help="distilled traces (export.distill)"
    )
    parser.add_argument("--output", type=Path, required=True, help="trace JSONL to write")
    parser.add_argument("--balance", action="store_true", help="equal counts per request label")
    add_replay_arguments(
        parser,
        "rows of (prompt, response) pairs drawn from --replay, so the response tasks "
        "are not forgotten",
    )
    parser.add_argument("--max-trace-tokens", type=int, default=DEFAULT_MAX_TOKENS)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    check_replay(args)
    stats = GraftStats()
    paths = [p for target in args.teacher for p in trace_files(target)]
    sources = read_sources(paths, refused_benchmarks((), allow_heldout=False), stats)
    tails = none_tails(read_train_rows(args.tails))
    kept, _ = graft(sources, tails, seed=args.seed, max_tokens=args.max_trace_tokens, stats=stats)
    if args.balance:
        kept, stats.balanced_to = balance(kept, args.seed)
    written = write_with_replay(
        args.output,
        [row for _, row in kept],
        stats,
        args.replay,
        args.replay_count,
        args.seed,
        keep=lambda row: row.has_response,
    )
    print(
        f"wrote {written} traces to {args.output}: {stats.kept} grafted from {stats.traces} "
        f"traces of {stats.prompts} prompts ({stats.kept_by_request}"
        + (f", balanced to {stats.balanced_to} each" if args.balance else "")
        + f"; {stats.disputed_prompts} disputed prompts, {stats.mentions_response} mention the "
        f"response, {stats.duplicates} duplicates, {stats.no_task2} without Task 2, "
        f"{stats.no_tail} without a tail, {stats.too_long} too long, {stats.unparsed} unparsed; "
        f"{len(stats.refused_files)} held-out files refused) + {stats.replay} replayed"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
