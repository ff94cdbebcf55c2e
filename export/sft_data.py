"""Training sequences for the CPU LoRA trainer (export.fast_sft): traces and label-only rows.

Two kinds of row, both as the exact ids guardcli feeds the converted model:

* a **trace** row: the GuardReasoner input, then a reasoning trace and its Answers block
  (export.distill's output); the loss covers the trace and EOS, as in export.rsft;
* a **label-only** row: the input followed by the forced Answers opening fast triage reads
  (``---\\n\\nAnswers: \\nRequest:`` and, with a response, ``Completion:``/``Response:``), built
  from guardcli.triage's own token plan, so training sees byte for byte what ``--mode fast``
  feeds. The loss covers only the label tokens: the model never learns to *start* an output
  with the Answers block (which would skip the reasoning in ``--mode reason``), only which label
  follows it. This is how every labelled example trains the answer tokens, not only the few
  that got a trace.

Rows whose prompt is a validation prompt (export.splits) are refused here, whatever file they
come from, so the validation split stays unseen by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


def prompt_key(prompt: str) -> str:
    return " ".join(prompt.split()).lower()


def trace_sequence(base, text: str, output: str) -> Sequence_:  # noqa: ANN001 - train_common.Base
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


def drop_held_out(sequences: Sequence[Sequence_], held: set[str]) -> tuple[list[Sequence_], int]:
    kept = [s for s in sequences if s.key not in held]
    return kept, len(sequences) - len(kept)
