"""The driver's plan: every input read once, exactly as ``guardcli scan`` reads it.

Ids are made unique across the whole run (a repeat gets ``#2``), which needs the files in
order, so it cannot happen inside the read tasks, which each see one file. The plan walks
every file on the driver (reading is cheap next to judging: ~250 generated tokens a sample),
reports and counts each Skip as scan does, and records the few samples whose run-wide id
differs from the id in their file. A read task then recomputes the same ids and the same
selection (``select``) from its file alone: the plan and the tasks share one rule.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace

from guardcli.core.records import Sample, Skip
from guardcli.errors import UsageError
from guardcli.io.inputs import (
    STDIN,
    InputFile,
    UniqueIds,
    check_paths,
    input_files,
    read_input_file,
)
from guardcli.io.options import InputOptions
from guardcli.io.shard import Shard

# (file number in the plan, sample number in that file) -> the run-wide id, where it differs
Renames = dict[tuple[int, int], str]


@dataclass(frozen=True)
class Selection:
    """What the job judges: the samples of ``shard`` (all when None) not already ``done``."""

    options: InputOptions
    shard: Shard | None = None
    renames: Renames = field(default_factory=dict)

    def wants(self, ident: str, done: Collection[str]) -> bool:
        return (self.shard is None or self.shard.keeps(ident)) and ident not in done


@dataclass
class Plan:
    selection: Selection
    files: list[InputFile] = field(default_factory=list)
    todo: list[int] = field(default_factory=list)  # per file: the samples its task emits
    resumed: list[str] = field(default_factory=list)  # ids of this run already written
    skipped: int = 0
    other_shards: int = 0
    samples: int = 0  # every sample read, whatever the shard or the output holds

    @property
    def total(self) -> int:
        return sum(self.todo)


def make_plan(
    paths: Sequence[str],
    options: InputOptions,
    *,
    shard: Shard | None,
    done: Collection[str],
    on_skip: Callable[[Skip], None],
) -> Plan:
    """Read everything once; ``on_skip`` hears of each bad input, in scan's order."""
    if STDIN in paths:
        raise UsageError("guardcli batch cannot read stdin", hint="give files or folders")
    check_paths(paths)
    unique = UniqueIds()
    renames: Renames = {}
    plan = Plan(Selection(options, shard, renames))
    for found in input_files(paths, options):
        if isinstance(found, Skip):
            plan.skipped += 1
            on_skip(found)
            continue
        number, todo = len(plan.files), 0
        for ordinal, item in enumerate(_samples(found, options, plan, on_skip)):
            ident = unique(item.id)
            if ident != item.id:
                renames[(number, ordinal)] = ident
            plan.samples += 1
            if shard is not None and not shard.keeps(ident):
                plan.other_shards += 1
            elif ident in done:
                plan.resumed.append(ident)
            else:
                todo += 1
        plan.files.append(found)
        plan.todo.append(todo)
    return plan


def _samples(
    found: InputFile, options: InputOptions, plan: Plan, on_skip: Callable[[Skip], None]
) -> Iterator[Sample]:
    for item in read_input_file(found, options):
        if isinstance(item, Skip):
            plan.skipped += 1
            on_skip(item)
        else:
            yield item


def select(
    number: int, found: InputFile, selection: Selection, done: Collection[str]
) -> Iterator[Sample]:
    """A read task's samples: file ``number`` of the plan re-read, its Skips dropped (the plan
    reported them), the run-wide ids restored, and only the samples the job judges."""
    ordinal = 0
    for item in read_input_file(found, selection.options):
        if isinstance(item, Skip):
            continue
        ident = selection.renames.get((number, ordinal), item.id)
        ordinal += 1
        if selection.wants(ident, done):
            yield item if ident == item.id else replace(item, id=ident)
