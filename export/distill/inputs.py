"""The labelled inputs traces are distilled for: read from benchmark-format files, held-out
benchmarks refused, and one input listed in several files merged into one whose gold carries
every file's labels (an input whose files disagree is dropped as a conflict).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from guardcli.core.prompt import build_input
from guardcli.core.records import Skip
from guardcli.errors import InputError, UsageError
from guardcli.eval.benchmarks import HELD_OUT, benchmark_of
from guardcli.eval.labelled import Gold, LabelledSample, implied, load_labelled


@dataclass(frozen=True)
class Input:
    """One distinct model input, its merged gold labels and the records it came from."""

    item: LabelledSample
    sources: tuple[str, ...]

    @property
    def key(self) -> str:
        return build_input(self.item.sample.prompt, self.item.sample.response)


@dataclass(frozen=True)
class Inputs:
    by_key: dict[str, Input]
    skips: tuple[Skip, ...]
    conflicts: tuple[str, ...]  # "source: request harmful vs unharmful" (those inputs dropped)


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


@dataclass(frozen=True)
class Selection:
    """What was left out of the inputs before sampling, counted so nothing vanishes silently."""

    held_out: int = 0  # prompts of the validation split (export.data.splits)
    other_label: int = 0  # gold request label not the one asked for
    over_limit: int = 0  # past --limit, or past a label's --label-limit


def select(
    inputs: Inputs,
    *,
    held: frozenset[str] | set[str] = frozenset(),
    request: str | None = None,
    limit: int | None = None,
    label_limits: Mapping[str, int] | None = None,
    from_end: bool = False,
) -> tuple[Inputs, Selection]:
    """The inputs a run samples for, in file order (``from_end``: last first, so a later run
    reaches prompts an earlier one's limit stopped before): validation prompts out (``held``
    holds ``export.data.splits.prompt_key`` of each), only one gold request label if asked (so
    the harmless side, which a biased student rarely gets right, can be given its own budget),
    or the first ``label_limits[label]`` of each label named there, then the first ``limit``."""
    from export.data.splits import prompt_key

    kept: dict[str, Input] = {}
    taken: Counter[str] = Counter()
    held_out = other = over = 0
    entries = list(inputs.by_key.items())
    for key, entry in reversed(entries) if from_end else entries:
        label = getattr(entry.item.gold.request, "value", None)
        if held and prompt_key(entry.item.sample.prompt) in held:
            held_out += 1
        elif (request is not None and label != request) or (
            label_limits is not None and label not in label_limits
        ):
            other += 1
        elif label_limits is not None and taken[label] >= label_limits[label]:
            over += 1
        else:
            taken[label] += 1
            kept[key] = entry
    if limit is not None and len(kept) > limit:
        over += len(kept) - limit
        kept = dict(list(kept.items())[:limit])
    return replace(inputs, by_key=kept), Selection(held_out, other, over)


def holdout_keys(lines: Path | None, prompts: Path | None = None) -> frozenset[str]:
    """The validation split's prompt keys: self-distillation must never see them."""
    if lines is None:
        return frozenset()
    from export.data import splits

    prompts = prompts or splits.PROMPTS
    try:
        return splits.validation_keys(lines, prompts)
    except OSError as exc:
        raise InputError(
            f"--holdout-split {lines}: {exc.strerror or exc}",
            hint=f"it needs {lines} and {prompts} (run from the repository root, or pass "
            "--holdout-prompts)",
        ) from None
