"""Reasoning traces for R-SFT by rejection sampling: ``python -m export.distill``.

    python -m export.distill \\
        --input ../shared/data/guardreasoner/benchmark/0_1_AegisSafetyTest.json ... \\
        --teacher traces:../shared/data/guardreasoner/teacher/1B \\
        --teacher traces:../shared/data/guardreasoner/teacher/8B \\
        --tokenizer ../shared/tokenizers/llama3 --output train.jsonl

Every labelled input (guardcli.eval.labelled) gets candidate traces from the teachers: released
traces files (matched by the exact full model input), k samples of a local model (a guardcli bundle
or a Hugging Face checkpoint, export.sampling.generate.sample_outputs) or an OpenAI-compatible
endpoint shown the gold labels (export.sampling.endpoint.synthesize). A trace is kept only when its
final Answers block is complete and agrees with every gold label of its input, it fits the token
cap, and the same (input, trace) was not kept already. What is kept is written in the
GuardReasonerTrain format (``instruction`` + "\\n" + ``input`` == guardcli.core.prompt.build_input,
so training sees the runtime's bytes); ``<output>.summary.json`` says what was dropped and why.

An input listed in several files (XSTest's harmful and refusal sets share 445 pairs) is one
input whose gold merges both files' labels, so its traces must get both tasks right. Inputs
without a response must answer None for tasks 2 and 3 (``guardcli.eval.labelled.implied``;
``--no-implied-none`` turns that off). Benchmarks held out by the shared data's split rule
(SimpleSafetyTests, SafeRLHF, BeaverTails) are refused as inputs unless ``--allow-heldout``.

Errors: one line, exit 2 (bad arguments, data) or 3 (a teacher failing); keeping nothing exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from export import positive_int
from export.cli import run_main
from export.distill.inputs import Inputs, gather_inputs, holdout_keys, refused_benchmarks, select
from export.distill.judging import (
    CHARS_PER_TOKEN,
    DEFAULT_MAX_TRACE_TOKENS,
    Summary,
    judge,
    render,
    summary_path,
    token_counter,
    write_train,
)
from export.distill.limits import add_limit_arguments, label_limits
from export.distill.reuse import add_reuse_argument, reuse
from export.distill.teachers import Candidate, Teacher, parse_teacher, trace_candidates, trace_files
from export.sampling.endpoint import synthesize
from export.sampling.generate import SamplingConfig, model_kind, sample_outputs
from export.sampling.options import add_sampling_arguments, sampling_config
from guardcli.core.records import Skip
from guardcli.errors import InputError
from guardcli.eval.benchmarks import HELD_OUT

DEFAULT_OPENAI_MODEL = "gpt-4o-2024-08-06"  # the paper's synthesis model
SHOWN_SKIPS = 20


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
    holdout_split: Path | None = None  # validation.lines of export.data.splits: never sampled
    holdout_prompts: Path | None = None  # the prompts file its line numbers count (a copy)
    request_label: str | None = None  # only inputs whose gold request is this
    label_limits: dict[str, int] | None = None  # at most N inputs of each named request label
    from_end: bool = False  # walk the inputs last first


def distill(opts: Options, *, log: Callable[[str], None] | None = None) -> Summary:
    """Run the whole pipeline; writes ``opts.output`` and its summary, returns the summary."""
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    teachers = [parse_teacher(spec) for spec in opts.teachers]
    refused = refused_benchmarks(opts.exclude_benchmarks, opts.allow_heldout)
    inputs = gather_inputs(
        opts.inputs, task=opts.task, refused=refused, implied_none=opts.implied_none
    )
    inputs, selection = select(
        inputs,
        held=holdout_keys(opts.holdout_split, opts.holdout_prompts),
        request=opts.request_label,
        limit=opts.limit,
        label_limits=opts.label_limits,
        from_end=opts.from_end,
    )
    summary = Summary(
        inputs=len(inputs.by_key),
        skipped_records=len(inputs.skips),
        conflicting_inputs=len(inputs.conflicts),
        max_trace_tokens=opts.max_trace_tokens,
        selection=selection,
    )
    if selection.held_out:
        held, lines = selection.held_out, opts.holdout_split
        say(f"note: {held} inputs are validation prompts ({lines}): left out")
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
        short = sum(len(texts) < opts.sampling.k for texts in outputs)
        if short:  # the sampling's --time-limit came first
            say(f"time limit: {short} of {len(keys)} inputs not (fully) sampled, counted")
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
    add_reuse_argument(data)
    data.add_argument(
        "--task",
        choices=("prompt", "response", "refusal"),
        help="the task bare labels score, for every --input (default: from each file's "
        "benchmark name, e.g. HarmBenchResponse -> response)",
    )
    data.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="use only the first N distinct inputs (after --holdout-split, --request-label)",
    )
    data.add_argument(
        "--holdout-split",
        type=Path,
        metavar="LINES",
        help="leave out every input whose prompt is in this validation split (the "
        "validation.lines of python -m export.data.splits, over its prompts file), counted",
    )
    data.add_argument(
        "--holdout-prompts",
        type=Path,
        metavar="JSONL",
        help="the prompts file the split's line numbers count, where ../shared's is not at "
        "hand (a byte-identical copy: its digest is checked); default ../shared's",
    )
    data.add_argument(
        "--request-label",
        choices=("harmful", "unharmful"),
        help="only inputs whose gold request label is this (the others counted), e.g. to give "
        "the harmless side its own sampling budget",
    )
    add_limit_arguments(data)
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
    add_sampling_arguments(sample)
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
    return run_main(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    if args.reuse is not None:
        return reuse(args.reuse, args.output)
    limits = label_limits(args)
    opts = Options(
        inputs=tuple(args.inputs),
        teachers=tuple(args.teachers),
        output=args.output,
        sampling=sampling_config(args),
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
        holdout_split=args.holdout_split,
        holdout_prompts=args.holdout_prompts,
        request_label=args.request_label,
        label_limits=limits,
        from_end=args.from_end,
    )
    summary = distill(opts)
    print(render(summary))
    print(f"wrote {summary.kept} traces to {opts.output} (summary: {summary_path(opts.output)})")
    if summary.kept == 0:
        print("error: no trace was kept - see the rejection reasons above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
