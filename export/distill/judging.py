"""Which candidate traces are kept, and why the others are not: complete Answers, every gold
label right, under the token cap, not a duplicate; every decision counted in the Summary,
and the kept traces written in the GuardReasonerTrain format.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from export.distill.inputs import Inputs, Selection
from export.distill.teachers import Candidate, Teacher
from guardcli.core.parse import answers_region, parse
from guardcli.core.prompt import INSTRUCTION, format_pair
from guardcli.core.records import ParseStatus
from guardcli.errors import InputError
from guardcli.eval.labelled import Gold, mismatches

DEFAULT_MAX_TRACE_TOKENS = 1024  # guardcli's default --max-new-tokens: longer never finishes
# Without a tokenizer, tokens are estimated as ceil(chars / 4). The Llama 3 tokenizer measures
# 4.66 chars/token on the released GuardReasoner traces, so this over-counts by ~15%: an
# estimated cap errs on the side of dropping a trace.
CHARS_PER_TOKEN = 4.0
# Rejection reasons, in the order they are tested.
NO_ANSWERS = "no_answers"  # unparsed: no Answers block, or not one label readable in it
INCOMPLETE = "incomplete_answers"  # an Answers block missing a task
TOO_LONG = "too_long"
DUPLICATE = "duplicate"


def wrong(task: str) -> str:
    """The reason for a trace whose first wrong answer is ``task``'s."""
    return f"wrong_{task}"


@dataclass(frozen=True)
class TokenCounter:
    count: Callable[[str], int]
    how: str  # shown in the summary: which tokenizer, or the estimate


@dataclass
class Summary:
    """Counts of one run (mutable while judging; written as <output>.summary.json)."""

    inputs: int = 0
    skipped_records: int = 0
    conflicting_inputs: int = 0
    candidates: int = 0
    unmatched_traces: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    wrong_answers: Counter = field(default_factory=Counter)  # every wrong task, not just the first
    per_label: dict[str, Counter] = field(default_factory=dict)
    per_teacher: dict[str, Counter] = field(default_factory=dict)
    without_kept_trace: list[str] = field(default_factory=list)
    without_candidates: int = 0
    token_count: str = ""
    max_trace_tokens: int = DEFAULT_MAX_TRACE_TOKENS
    selection: Selection = field(default_factory=Selection)

    def record(self, candidate: Candidate, gold: Gold, reason: str | None) -> None:
        outcome = "kept" if reason is None else reason
        if reason is None:
            self.kept += 1
        else:
            self.rejected[reason] += 1
        self.per_teacher.setdefault(candidate.teacher, Counter())[outcome] += 1
        for name, label in gold.labelled():
            bucket = self.per_label.setdefault(f"{name}={label}", Counter())
            bucket["kept" if reason is None else "rejected"] += 1

    def to_json(self) -> dict:
        return {
            "inputs": self.inputs,
            "skipped_records": self.skipped_records,
            "conflicting_inputs": self.conflicting_inputs,
            "left_out": {
                "validation_split": self.selection.held_out,
                "other_request_label": self.selection.other_label,
                "over_limit": self.selection.over_limit,
            },
            "candidates": self.candidates,
            "unmatched_traces": self.unmatched_traces,
            "kept": self.kept,
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_total": sum(self.rejected.values()),
            "wrong_answers": dict(sorted(self.wrong_answers.items())),
            "per_label": {k: dict(v) for k, v in sorted(self.per_label.items())},
            "per_teacher": {k: dict(sorted(v.items())) for k, v in self.per_teacher.items()},
            "inputs_without_kept_trace": len(self.without_kept_trace),
            "inputs_without_candidates": self.without_candidates,
            "without_kept_trace": self.without_kept_trace,
            "token_count": self.token_count,
            "max_trace_tokens": self.max_trace_tokens,
        }


def token_counter(tokenizer: str | None, teachers: Sequence[Teacher]) -> TokenCounter:
    """--tokenizer, else the first local model teacher's tokenizer, else the estimate."""
    from guardcli.core.tokenizer import TextCodec

    path = None
    if tokenizer:
        path = Path(tokenizer)
        path = path if path.is_file() else path / "tokenizer.json"
        if not path.is_file():
            raise InputError(f"--tokenizer {tokenizer}: no tokenizer.json there")
    else:
        for teacher in teachers:
            candidate = Path(teacher.target) / "tokenizer.json"
            if teacher.kind == "model" and candidate.is_file():
                path = candidate
                break
    if path is None:
        return TokenCounter(
            lambda text: math.ceil(len(text) / CHARS_PER_TOKEN),
            f"estimate: ceil(chars / {CHARS_PER_TOKEN:g})",
        )
    codec = TextCodec(path, bos_token_id=None, add_bos=False)
    return TokenCounter(codec.count, f"tokenizer: {path}")


def reject_reason(
    output: str, gold: Gold, tokens: Callable[[str], int], cap: int
) -> tuple[str | None, tuple[str, ...]]:
    """Why a trace is dropped (None: keep it) and every task it gets wrong."""
    verdict = parse(output)
    if not answers_region(output)[1] or verdict.status is ParseStatus.FAILED:
        return NO_ANSWERS, ()
    if verdict.status is not ParseStatus.OK:
        return INCOMPLETE, ()
    wrong_tasks = tuple(m.task for m in mismatches(verdict, gold))
    if wrong_tasks:
        return wrong(wrong_tasks[0]), wrong_tasks
    if tokens(output) > cap:
        return TOO_LONG, ()
    return None, ()


def judge(
    candidates: Iterable[Candidate],
    inputs: Inputs,
    counter: TokenCounter,
    cap: int,
    summary: Summary,
) -> list[Candidate]:
    """The kept candidates, in order; every decision counted in ``summary``."""
    kept: list[Candidate] = []
    seen: set[tuple[str, str]] = set()
    kept_keys: set[str] = set()
    with_candidates: set[str] = set()
    for candidate in candidates:
        summary.candidates += 1
        with_candidates.add(candidate.key)
        gold = inputs.by_key[candidate.key].item.gold
        reason, wrong_tasks = reject_reason(candidate.output, gold, counter.count, cap)
        summary.wrong_answers.update(wrong_tasks)
        if reason is None and (candidate.key, candidate.output) in seen:
            reason = DUPLICATE
        summary.record(candidate, gold, reason)
        if reason is None:
            seen.add((candidate.key, candidate.output))
            kept_keys.add(candidate.key)
            kept.append(candidate)
    for key, entry in inputs.by_key.items():
        if key not in kept_keys:
            summary.without_kept_trace.append(entry.sources[0])
            summary.without_candidates += key not in with_candidates
    return kept


def write_train(kept: Sequence[Candidate], inputs: Inputs, output: Path) -> None:
    """GuardReasonerTrain JSONL, written whole or not at all."""
    staging = output.with_name(output.name + ".tmp")
    with open(staging, "w", encoding="utf-8") as handle:
        for candidate in kept:
            sample = inputs.by_key[candidate.key].item.sample
            row = {
                "instruction": INSTRUCTION,
                "input": format_pair(sample.prompt, sample.response),
                "output": candidate.output,
            }
            handle.write(_one_line_json(row) + "\n")
    os.replace(staging, output)


def _one_line_json(value: object) -> str:
    """JSON without raw U+0085/U+2028/U+2029: str.splitlines() and some JSONL readers break
    lines there, and real traces contain them (json.dumps already escapes C0 controls)."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def summary_path(output: Path) -> Path:
    return output.with_name(output.name + ".summary.json")


def render(summary: Summary) -> str:
    """The summary as a few lines for the terminal."""
    data = summary.to_json()
    lines = [
        f"inputs: {data['inputs']} (skipped records {data['skipped_records']}, "
        f"dropped for conflicting gold {data['conflicting_inputs']})",
        "left out before sampling: "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in data["left_out"].items()),
        f"candidates: {data['candidates']} (unmatched traces ignored: {data['unmatched_traces']})",
        f"kept: {data['kept']}   rejected: {data['rejected_total']}",
    ]
    lines += [f"  {reason}: {n}" for reason, n in data["rejected"].items()]
    if data["wrong_answers"]:
        wrong_tasks = ", ".join(f"{k} {v}" for k, v in data["wrong_answers"].items())
        lines.append(f"wrong answers by task: {wrong_tasks}")
    lines.append("per gold label (kept/rejected):")
    lines += [
        f"  {label}: {c.get('kept', 0)}/{c.get('rejected', 0)}"
        for label, c in data["per_label"].items()
    ]
    lines.append("per teacher (kept/total):")
    lines += [
        f"  {name}: {c.get('kept', 0)}/{sum(c.values())}" for name, c in data["per_teacher"].items()
    ]
    lines.append(
        f"inputs without a kept trace: {data['inputs_without_kept_trace']} "
        f"({data['inputs_without_candidates']} had no candidate)"
    )
    lines.append(f"token count: {data['token_count']}, cap {data['max_trace_tokens']}")
    return "\n".join(lines)
