"""Reasoning traces for R-SFT by rejection sampling: ``python -m export.distill``.

    python -m export.distill \\
        --input ../shared/data/guardreasoner/benchmark/0_1_AegisSafetyTest.json ... \\
        --teacher traces:../shared/data/guardreasoner/teacher/1B \\
        --teacher traces:../shared/data/guardreasoner/teacher/8B \\
        --tokenizer ../shared/tokenizers/llama3 --output train.jsonl

Every labelled input (guardcli.eval.labelled) gets candidate traces from the teachers: released
traces files (matched by the exact full model input), k samples of a local model (a guardcli
bundle or a Hugging Face checkpoint, export.sampling.generate.sample_outputs) or an
OpenAI-compatible endpoint shown the gold labels (export.sampling.generate.synthesize). A trace is
kept only when its final Answers block is complete and agrees with every gold label of its input, it
fits the token cap, and the same (input, trace) was not kept already. What is kept is written in the
GuardReasonerTrain format (``instruction`` + "\\n" + ``input`` == guardcli.core.prompt.build_input,
so training sees the runtime's bytes); ``<output>.summary.json`` says what was dropped and why.

An input listed in several files (XSTest's harmful and refusal sets share 445 pairs) is one
input whose gold merges both files' labels, so its traces must get both tasks right. Inputs
without a response must answer None for tasks 2 and 3 (``guardcli.eval.labelled.implied``;
``--no-implied-none`` turns that off). Benchmarks held out by the shared data's split rule
(SimpleSafetyTests, SafeRLHF, BeaverTails) are refused as inputs unless ``--allow-heldout``.

Errors print one line and exit 2 (bad arguments, data) or 3 (a teacher failing); a run that
keeps nothing exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from export import positive_int
from export.sampling.generate import SamplingConfig, model_kind, sample_outputs, synthesize
from guardcli.core.parse import answers_region, parse
from guardcli.core.prompt import INSTRUCTION, build_input, format_pair
from guardcli.core.records import ParseStatus, Skip
from guardcli.errors import GuardError, InputError, UsageError
from guardcli.eval.benchmarks import HELD_OUT, benchmark_of
from guardcli.eval.labelled import (
    Gold,
    LabelledSample,
    implied,
    load_labelled,
    load_predictions,
    mismatches,
)

DEFAULT_MAX_TRACE_TOKENS = 1024  # guardcli's default --max-new-tokens: longer never finishes
# Without a tokenizer, tokens are estimated as ceil(chars / 4). The Llama 3 tokenizer measures
# 4.66 chars/token on the released GuardReasoner traces, so this over-counts by ~15%: an
# estimated cap errs on the side of dropping a trace.
CHARS_PER_TOKEN = 4.0
DEFAULT_OPENAI_MODEL = "gpt-4o-2024-08-06"  # the paper's synthesis model
SHOWN_SKIPS = 20

# Rejection reasons, in the order they are tested.
NO_ANSWERS = "no_answers"  # unparsed: no Answers block, or not one label readable in it
INCOMPLETE = "incomplete_answers"  # an Answers block missing a task
TOO_LONG = "too_long"
DUPLICATE = "duplicate"


def wrong(task: str) -> str:
    """The reason for a trace whose first wrong answer is ``task``'s."""
    return f"wrong_{task}"


@dataclass(frozen=True)
class Input:
    """One distinct model input, its merged gold labels and the records it came from."""

    item: LabelledSample
    sources: tuple[str, ...]

    @property
    def key(self) -> str:
        return build_input(self.item.sample.prompt, self.item.sample.response)


@dataclass(frozen=True)
class Candidate:
    key: str  # the full model input (build_input) the trace answers
    output: str
    teacher: str


@dataclass(frozen=True)
class Inputs:
    by_key: dict[str, Input]
    skips: tuple[Skip, ...]
    conflicts: tuple[str, ...]  # "source: request harmful vs unharmful" (those inputs dropped)


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


# ---- inputs ------------------------------------------------------------------------------------


def refused_benchmarks(excluded: Iterable[str], allow_heldout: bool) -> set[str]:
    """Benchmark names (canonical when known, else as given) that may not be training inputs."""
    names = set() if allow_heldout else set(HELD_OUT)
    for name in excluded:
        known = benchmark_of(name)
        names.add(known.name if known else name)
    return names


def refused_as(path: str, refused: set[str]) -> str | None:
    """The refused benchmark ``path`` holds, by its name, or None."""
    known = benchmark_of(path)
    if known is not None and known.name in refused:
        return known.name
    stem = Path(path).name.split(".", 1)[0]
    return stem if stem in refused else None


def gather_inputs(
    paths: Sequence[str],
    *,
    task: str | None = None,
    refused: set[str] | frozenset[str] = frozenset(),
    implied_none: bool = True,
) -> Inputs:
    """Load and merge every labelled input; refuse held-out benchmark files before reading."""
    for path in paths:
        name = refused_as(path, refused)
        if name is not None:
            raise UsageError(
                f"--input {path} is {name}, held out for evaluation (training must not see it)",
                hint="drop it, or pass --allow-heldout to train on it anyway"
                if name in HELD_OUT
                else "drop it or remove the --exclude-benchmark",
            )
    merged: dict[str, Input] = {}
    skips: list[Skip] = []
    conflicted: dict[str, str] = {}
    for path in paths:
        for found in load_labelled(path, task=task):
            if isinstance(found, Skip):
                skips.append(found)
                continue
            item = implied(found) if implied_none else found
            entry = Input(item, (item.sample.source,))
            key = entry.key
            if key in conflicted:
                continue
            if key in merged:
                first = merged[key]
                gold, clash = merge_gold(first.item.gold, item.gold)
                if clash:
                    conflicted[key] = f"{first.sources[0]} and {item.sample.source}: {clash}"
                    del merged[key]
                    continue
                entry = Input(replace(first.item, gold=gold), first.sources + entry.sources)
            merged[key] = entry
    return Inputs(merged, tuple(skips), tuple(conflicted.values()))


def merge_gold(a: Gold, b: Gold) -> tuple[Gold, str | None]:
    """Both golds' labels, or the first disagreement (``"request harmful vs unharmful"``)."""
    merged = {}
    for name in ("request", "completion", "response"):
        x, y = getattr(a, name), getattr(b, name)
        if x is not None and y is not None and x is not y:
            return a, f"{name} {x} vs {y}"
        merged[name] = x if x is not None else y
    return Gold(**merged), None


# ---- teachers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Teacher:
    kind: str  # traces | model | openai
    target: str  # a path or a URL


def parse_teacher(spec: str) -> Teacher:
    kind, sep, target = spec.partition(":")
    if not sep or kind not in ("traces", "model", "openai") or not target:
        raise UsageError(
            f"--teacher {spec!r}",
            hint="use traces:PATH (a predictions .jsonl or a folder of them), model:DIR "
            "(a guardcli bundle or Hugging Face checkpoint) or openai:URL",
        )
    if kind != "openai" and not os.path.exists(target):
        raise InputError(f"--teacher {spec}: no such file or directory", hint="check the path")
    return Teacher(kind, target)


def trace_files(target: str) -> list[str]:
    if os.path.isdir(target):
        found = sorted(str(p) for p in Path(target).rglob("*.jsonl"))
        if not found:
            raise InputError(f"--teacher traces:{target}: no .jsonl files in the folder")
        return found
    return [target]


def trace_candidates(
    paths: Sequence[str], inputs: Inputs, refused: set[str], *, log: Callable[[str], None]
) -> tuple[list[Candidate], int, list[Skip]]:
    """Traces matching an input (by its exact full model input), the count of others, skips."""
    candidates: list[Candidate] = []
    unmatched = 0
    skips: list[Skip] = []
    for path in paths:
        name = refused_as(path, refused)
        if name is not None:
            log(f"note: ignoring traces {path}: {name} is held out")
            continue
        for found in load_predictions(path):
            if isinstance(found, Skip):
                skips.append(found)
                continue
            sample = found.item.sample
            key = build_input(sample.prompt, sample.response)
            if key in inputs.by_key:
                candidates.append(Candidate(key, found.output, path))
            else:
                unmatched += 1
    return candidates, unmatched, skips


# ---- judging -----------------------------------------------------------------------------------


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


# ---- the command -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    inputs: tuple[str, ...]
    teachers: tuple[str, ...]
    output: Path
    sampling: SamplingConfig = SamplingConfig()
    max_trace_tokens: int = DEFAULT_MAX_TRACE_TOKENS
    tokenizer: str | None = None
    limit: int | None = None
    task: str | None = None
    exclude_benchmarks: tuple[str, ...] = ()
    allow_heldout: bool = False
    implied_none: bool = True
    openai_model: str = DEFAULT_OPENAI_MODEL
    api_key_env: str = "OPENAI_API_KEY"
    workers: int = 4
    device: str = "cpu"


def distill(opts: Options, *, log: Callable[[str], None] | None = None) -> Summary:
    """Run the whole pipeline; writes ``opts.output`` and its summary, returns the summary."""
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    teachers = [parse_teacher(spec) for spec in opts.teachers]
    refused = refused_benchmarks(opts.exclude_benchmarks, opts.allow_heldout)
    inputs = gather_inputs(
        opts.inputs, task=opts.task, refused=refused, implied_none=opts.implied_none
    )
    if opts.limit is not None:
        inputs = replace(inputs, by_key=dict(list(inputs.by_key.items())[: opts.limit]))
    summary = Summary(
        inputs=len(inputs.by_key),
        skipped_records=len(inputs.skips),
        conflicting_inputs=len(inputs.conflicts),
        max_trace_tokens=opts.max_trace_tokens,
    )
    _report_skips(inputs.skips, "input", say)
    for conflict in inputs.conflicts:
        say(f"dropped (gold labels disagree): {conflict}")
    if not inputs.by_key:
        raise InputError("no labelled inputs to distill", hint="check --input (see skips above)")
    counter = token_counter(opts.tokenizer, teachers)
    summary.token_count = counter.how
    if counter.how.startswith("estimate"):
        say(
            f"note: no tokenizer, so trace lengths are estimated as {counter.how[10:]} tokens "
            "- pass --tokenizer DIR for exact counts"
        )
    candidates: list[Candidate] = []
    for teacher in teachers:
        candidates += _candidates(teacher, inputs, refused, opts, summary, say)
    kept = judge(candidates, inputs, counter, opts.max_trace_tokens, summary)
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    write_train(kept, inputs, opts.output)
    summary_path(opts.output).write_text(
        json.dumps(summary.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return summary


def _candidates(
    teacher: Teacher,
    inputs: Inputs,
    refused: set[str],
    opts: Options,
    summary: Summary,
    say: Callable[[str], None],
) -> list[Candidate]:
    keys = list(inputs.by_key)
    if teacher.kind == "traces":
        found, unmatched, skips = trace_candidates(
            trace_files(teacher.target), inputs, refused, log=say
        )
        summary.unmatched_traces += unmatched
        summary.skipped_records += len(skips)
        _report_skips(skips, "trace", say)
        return found
    progress = _progress(len(keys), teacher, say)
    if teacher.kind == "model":
        model_kind(teacher.target)  # fail before any work on a folder that is neither
        name = f"model:{teacher.target}"
        outputs = sample_outputs(
            teacher.target, keys, opts.sampling, progress=progress, device=opts.device
        )
    else:
        name = f"openai:{opts.openai_model}@{teacher.target}"
        outputs = synthesize(
            teacher.target,
            opts.openai_model,
            os.environ.get(opts.api_key_env),
            [inputs.by_key[k].item for k in keys],
            opts.sampling,
            workers=opts.workers,
            progress=progress,
        )
    return [
        Candidate(key, text, name)
        for key, texts in zip(keys, outputs, strict=True)
        for text in texts
    ]


def _progress(total: int, teacher: Teacher, say: Callable[[str], None]) -> Callable[[int], None]:
    done = 0
    step = max(1, total // 20)

    def update(n: int) -> None:
        nonlocal done
        before, done = done, done + n
        if done == total or done // step > before // step:
            say(f"{teacher.kind}:{teacher.target}: {done}/{total} inputs")

    return update


def _report_skips(skips: Sequence[Skip], what: str, say: Callable[[str], None]) -> None:
    for skip in skips[:SHOWN_SKIPS]:
        say(f"skipped {what} {skip.source}: {skip.reason}")
    if len(skips) > SHOWN_SKIPS:
        say(f"... and {len(skips) - SHOWN_SKIPS} more skipped {what} records")


def render(summary: Summary) -> str:
    """The summary as a few lines for the terminal."""
    data = summary.to_json()
    lines = [
        f"inputs: {data['inputs']} (skipped records {data['skipped_records']}, "
        f"dropped for conflicting gold {data['conflicting_inputs']})",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.distill",
        description=(
            "Build R-SFT training data by rejection sampling: gather reasoning traces for\n"
            "labelled inputs from teachers, keep those whose Answers agree with every gold\n"
            "label, and write GuardReasonerTrain JSONL plus OUTPUT.summary.json."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--input",
        dest="inputs",
        nargs="+",
        action="extend",
        required=True,
        metavar="FILE",
        help="labelled inputs (repeatable): GuardReasoner benchmark/train JSON "
        "({instruction, input, output}), predictions JSONL ({prompt, label, predict}), or "
        "JSONL with prompt/response and label fields (request|prompt_harm_label, "
        "completion|response_refusal_label, response_label|response_harm_label); see "
        "guardcli/labelled.py. An input in several files merges their labels",
    )
    data.add_argument(
        "--teacher",
        dest="teachers",
        action="append",
        required=True,
        metavar="SPEC",
        help="where traces come from (repeatable): traces:PATH (a predictions .jsonl, e.g. "
        "GuardReasoner's generated_predictions.jsonl, or a folder of them; matched to inputs "
        "by the exact model input), model:DIR (a guardcli bundle or Hugging Face checkpoint, "
        "sampled --k times per input), openai:URL (an OpenAI-compatible server shown the gold "
        "labels, the paper's synthesis)",
    )
    data.add_argument(
        "--output", required=True, type=Path, metavar="FILE", help="training JSONL to write"
    )
    data.add_argument(
        "--task",
        choices=("prompt", "response", "refusal"),
        help="the task bare labels score, for every --input (default: from each file's "
        "benchmark name, e.g. HarmBenchResponse -> response)",
    )
    data.add_argument(
        "--limit", type=positive_int, metavar="N", help="use only the first N distinct inputs"
    )
    data.add_argument(
        "--exclude-benchmark",
        dest="exclude_benchmarks",
        action="append",
        default=[],
        metavar="NAME",
        help="also refuse --input files of this benchmark (repeatable; e.g. HarmBenchPrompt)",
    )
    data.add_argument(
        "--allow-heldout",
        action="store_true",
        help=f"accept inputs from {', '.join(HELD_OUT)}, which the shared data's split rule "
        "keeps for evaluation (refused by default)",
    )
    data.add_argument(
        "--no-implied-none",
        dest="implied_none",
        action="store_false",
        help="do not require Completion: None and Response: None for inputs without a "
        "response (by default a trace judging a response that does not exist is rejected)",
    )
    keep = parser.add_argument_group("filtering")
    keep.add_argument(
        "--max-trace-tokens",
        type=positive_int,
        default=DEFAULT_MAX_TRACE_TOKENS,
        metavar="N",
        help=f"drop traces longer than N tokens (default {DEFAULT_MAX_TRACE_TOKENS})",
    )
    keep.add_argument(
        "--tokenizer",
        metavar="DIR",
        help="tokenizer.json (or its folder) to count trace tokens with, ideally the "
        "student's (default: the first model: teacher's; without either, tokens are "
        f"estimated as ceil(chars / {CHARS_PER_TOKEN:g}), which over-counts Llama 3 by ~15%%)",
    )
    sample = parser.add_argument_group("sampling (model: and openai: teachers)")
    sample.add_argument(
        "--k", type=positive_int, default=4, metavar="N", help="outputs per input (default 4)"
    )
    sample.add_argument(
        "--temperature",
        type=float,
        default=0.7,
        metavar="T",
        help="sampling temperature, > 0 (default 0.7)",
    )
    sample.add_argument(
        "--top-p",
        type=float,
        default=0.95,
        metavar="P",
        help="nucleus (top-p) cut, in (0, 1] (default 0.95)",
    )
    sample.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=1024,
        metavar="N",
        help="per output (default 1024)",
    )
    sample.add_argument(
        "--seed", type=int, default=0, metavar="N", help="sampling seed (default 0)"
    )
    sample.add_argument(
        "--batch-size",
        type=positive_int,
        default=8,
        metavar="N",
        help="rows decoded together (default 8)",
    )
    sample.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default="cpu",
        help="where model: teachers run (default cpu)",
    )
    sample.add_argument(
        "--openai-model",
        default=DEFAULT_OPENAI_MODEL,
        metavar="NAME",
        help=f"model name sent to openai: teachers (default {DEFAULT_OPENAI_MODEL})",
    )
    sample.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="VAR",
        help="environment variable holding the openai: API key (default OPENAI_API_KEY; "
        "unset: no Authorization header)",
    )
    sample.add_argument(
        "--workers",
        type=positive_int,
        default=4,
        metavar="N",
        help="parallel openai: requests (default 4)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        opts = Options(
            inputs=tuple(args.inputs),
            teachers=tuple(args.teachers),
            output=args.output,
            sampling=SamplingConfig(
                k=args.k,
                temperature=args.temperature,
                top_p=args.top_p,
                max_new_tokens=args.max_new_tokens,
                seed=args.seed,
                batch_size=args.batch_size,
            ),
            max_trace_tokens=args.max_trace_tokens,
            tokenizer=args.tokenizer,
            limit=args.limit,
            task=args.task,
            exclude_benchmarks=tuple(args.exclude_benchmarks),
            allow_heldout=args.allow_heldout,
            implied_none=args.implied_none,
            openai_model=args.openai_model,
            api_key_env=args.api_key_env,
            workers=args.workers,
            device=args.device,
        )
        summary = distill(opts)
    except GuardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(render(summary))
    print(f"wrote {summary.kept} traces to {opts.output} (summary: {summary_path(opts.output)})")
    if summary.kept == 0:
        print("error: no trace was kept - see the rejection reasons above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
