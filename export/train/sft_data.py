"""Training sequences for the CPU LoRA trainer (export.train.fast_sft): traces and label-only rows.

Two kinds of row, both as the exact ids guardcli feeds the converted model:

* a **trace** row: the GuardReasoner input, then a reasoning trace and its Answers block
  (export.distill's output); the loss covers the trace and EOS, as in export.train.rsft;
* a **label-only** row: the input followed by the forced Answers opening fast triage reads
  (``---\\n\\nAnswers: \\nRequest:`` and, with a response, ``Completion:``/``Response:``), built
  from guardcli.core.triage's own token plan, so training sees byte for byte what ``--mode fast``
  feeds. The loss covers only the label tokens: the model never learns to *start* an output
  with the Answers block (which would skip the reasoning in ``--mode reason``), only which label
  follows it. This is how every labelled example trains the answer tokens, not only the few
  that got a trace.

Rows whose prompt is a validation prompt (export.data.splits) are refused here, whatever file they
come from, so the validation split stays unseen by construction.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from export.data.splits import prompt_key
from guardcli.core.prompt import build_input, split_input
from guardcli.core.records import Label

IGNORE = -100


@dataclass(frozen=True)
class Sequence_:
    """One training row: ids and the positions (into ids) whose token takes loss."""

    ids: tuple[int, ...]
    targets: tuple[int, ...]  # indices i >= 1: ids[i] is predicted from ids[:i]
    kind: str  # "trace" or "label"
    key: str  # normalised prompt text, for disjointness checks


@dataclass(frozen=True)
class LabelExample:
    prompt: str
    response: str | None
    request: Label
    completion: Label | None = None  # None: prompt-only
    response_label: Label | None = None


def trace_sequence(base, text: str, output: str) -> Sequence_:  # noqa: ANN001 - export.train.base.Base
    prompt = base.prompt_ids(text)
    completion = base.completion_ids(output)
    ids = tuple(prompt + completion)
    targets = tuple(range(len(prompt), len(ids)))
    pair = split_input(text)
    return Sequence_(ids, targets, "trace", prompt_key(pair[0] if pair else text))


def label_sequence(base, triage, example: LabelExample) -> Sequence_:  # noqa: ANN001
    """prompt ids + for each task: lead tokens (no loss), the gold label's tokens (loss)."""
    has_response = example.response is not None
    gold = [example.request]
    if has_response:
        gold += [example.completion, example.response_label]
    ids = list(base.prompt_ids(build_input(example.prompt, example.response)))
    targets: list[int] = []
    for choice, label, task in zip(triage.choices(has_response), gold, _tasks(), strict=False):
        ids += choice.lead
        option = choice.options[task.options.index(label)]
        targets += range(len(ids), len(ids) + len(option))
        ids += option
    return Sequence_(tuple(ids), tuple(targets), "label", prompt_key(example.prompt))


def _tasks():  # noqa: ANN202
    from guardcli.core.triage import TASKS

    return TASKS


def label_examples_from_traces(rows: Iterable) -> list[LabelExample]:  # noqa: ANN001 - TrainRow
    """One label-only example per distinct input, from its (gold-agreeing) trace's answers."""
    from guardcli.core.parse import parse

    seen: set[str] = set()
    examples = []
    for row in rows:
        if row.text in seen:
            continue
        pair = split_input(row.text)
        verdict = parse(row.output)
        if pair is None or verdict.request not in (Label.HARMFUL, Label.UNHARMFUL):
            continue
        prompt, response = pair
        if response is not None and (
            verdict.completion not in (Label.REFUSAL, Label.COMPLIANCE)
            or verdict.response not in (Label.HARMFUL, Label.UNHARMFUL)
        ):
            continue
        seen.add(row.text)
        examples.append(
            LabelExample(prompt, response, verdict.request, verdict.completion, verdict.response)
        )
    return examples


def label_examples_from_prompts(rows: Iterable) -> list[LabelExample]:  # noqa: ANN001 - Labelled
    return [LabelExample(r.prompt, None, Label(r.request)) for r in rows]


def balance_prompt_traces(rows: list, seed: int) -> tuple[list, int]:  # noqa: ANN001 - TrainRow
    """Prompt-only trace rows with the rarer request label repeated until both labels have as many
    rows. The released traces of prompt-only inputs are 77% harmful (HarmBench prompts are all
    harmful), and a student trained on them reasons its way to "harmful" for most harmless
    prompts even when its answer-token score ranks them well; repeats (each row at most
    ceil(majority / minority) times, in a seeded order) even out what its reasoning sees without
    dropping any trace. Traces of inputs with a response keep their natural mix. Returns the rows
    plus the repeats, and how many repeats were added."""
    from guardcli.core.parse import parse

    by_label: dict[Label, list] = {Label.HARMFUL: [], Label.UNHARMFUL: []}
    for row in rows:
        pair = split_input(row.text)
        if pair is not None and pair[1] is None:
            label = parse(row.output).request
            if label in by_label:
                by_label[label].append(row)
    small, large = sorted(by_label.values(), key=len)
    if not small or len(small) == len(large):
        return list(rows), 0
    order = list(small)
    random.Random(seed).shuffle(order)
    extra = [order[i % len(order)] for i in range(len(large) - len(small))]
    return [*rows, *extra], len(extra)


def drop_held_out(sequences: Sequence[Sequence_], held: set[str]) -> tuple[list[Sequence_], int]:
    kept = [s for s in sequences if s.key not in held]
    return kept, len(sequences) - len(kept)


@dataclass
class Data:
    train: list[Sequence_]
    validation: list[Sequence_]  # label-only rows of the validation split (harmful, unharmful)
    probe: list[Sequence_]  # trace rows kept out of training: a held-out loss
    counts: dict[str, int]


def build_data(opts, base) -> Data:  # noqa: ANN001 - fast_sft.Options, base.Base
    from export.data import splits
    from export.train.rft import replay_sample
    from export.train.rows import read_train_rows
    from guardcli.core.triage import Triage

    triage = Triage(base.codec)
    lines = opts.split_lines or splits.LINES
    split = splits.load(opts.prompts, lines) if opts.prompts else None
    held = {prompt_key(r.prompt) for r in split.validation} if split else set()
    trace_rows = read_train_rows(opts.traces) if opts.traces else []
    replayed = []
    if opts.replay_count:
        pool = [row for row in read_train_rows(opts.replay) if row.has_response]
        replayed = replay_sample(pool, opts.replay_count, opts.seed)
    trace_rows += replayed
    repeats = 0
    if opts.balance_traces:
        trace_rows, repeats = balance_prompt_traces(trace_rows, opts.seed)
    seqs = [trace_sequence(base, r.text, r.output) for r in trace_rows]
    examples = label_examples_from_traces(trace_rows) if opts.label_from_traces else []
    if split and opts.prompt_labels:
        examples += label_examples_from_prompts(split.train)
    seqs += [label_sequence(base, triage, e) for e in examples]
    too_long = [s for s in seqs if len(s.ids) > opts.cutoff]
    seqs = [s for s in seqs if len(s.ids) <= opts.cutoff]
    seqs, overlap = drop_held_out(seqs, held)
    traces = [i for i, s in enumerate(seqs) if s.kind == "trace"]
    probe_at = set(random.Random(opts.seed).sample(traces, min(opts.probe_rows, len(traces))))
    probe = [seqs[i] for i in sorted(probe_at)]
    seqs = [s for i, s in enumerate(seqs) if i not in probe_at]
    validation = []
    if split:
        validation = [
            label_sequence(base, triage, e) for e in label_examples_from_prompts(split.validation)
        ]
        validation = [v for v in validation if len(v.ids) <= opts.cutoff]
        random.Random(opts.seed).shuffle(validation)  # any prefix (--eval-limit) is a fair sample
    counts = {
        "trace_rows": sum(s.kind == "trace" for s in seqs),
        "label_rows": sum(s.kind == "label" for s in seqs),
        "replayed_rows": len(replayed),
        "balance_repeats": repeats,
        "dropped_over_cutoff": len(too_long),
        "dropped_validation_overlap": overlap,
        "validation_rows": len(validation),
        "probe_rows": len(probe),
        "train_tokens": sum(len(s.ids) for s in seqs),
        "target_tokens": sum(len(s.targets) for s in seqs),
    }
    return Data(seqs, validation, probe, counts)
