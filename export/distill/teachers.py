"""Where candidate traces come from: ``--teacher`` specs (released traces files, a local model,
an OpenAI-compatible endpoint), and the released traces matched to inputs by the exact full
model input.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from export.distill.inputs import Inputs, refused_as
from guardcli.core.prompt import build_input
from guardcli.core.records import Skip
from guardcli.errors import InputError, UsageError
from guardcli.eval.labelled import load_predictions


@dataclass(frozen=True)
class Candidate:
    key: str  # the full model input (build_input) the trace answers
    output: str
    teacher: str


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
