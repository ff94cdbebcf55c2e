"""The one training run R-SFT and HS-DPO share, around their own rows and TRL trainer.

Refuse to mix runs in the output directory (or find the checkpoint ``--resume`` continues
from); open the base model in a scratch directory; encode the stage's rows by the runtime's
rule, dropping those over ``--cutoff`` (and refusing to train on none); train; save a full
checkpoint guardcli's converter reads; write ``train_log.json`` last, since the pipeline takes
its presence to mean the stage is done; drop the resumable checkpoints unless kept.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from export import TrainError
from export.train.base import Base, open_base
from export.train.checkpoints import check_output, finish_checkpoints, save_checkpoint
from export.train.options import TrainingOptions
from export.train.runlog import RunLog, say
from export.train.setup import pick_device


class Encoded(Protocol):
    rows: list[Any]  # what the trainer's dataset is made of
    dropped: int  # rows longer than --cutoff


@dataclass(frozen=True)
class Job:
    """What differs between the trainers: the rows they read and the trainer they build."""

    name: str  # train_log.json's "stage", and the scratch directory's prefix
    title: str  # "R-SFT": how progress names it
    rows: str  # "rows", "pairs": what is counted
    encode: Callable[[Base], tuple[int, Encoded]]  # base -> (how many were read, the encoded)
    trainer: Callable[[Base, Encoded, str], Any]  # (base, encoded, device) -> a TRL trainer
    record: Callable[[Base, int, Encoded], dict[str, Any]]  # its own train_log.json entries


def fit(job: Job, model: str, output: Path, options: TrainingOptions) -> dict[str, Any]:
    """Train ``job`` from ``model`` into ``output``; returns what train_log.json says."""
    resume_from = check_output(output, resume=options.resume)
    with tempfile.TemporaryDirectory(prefix=f"guardcli-{job.name}-") as tmp:
        base = open_base(model, Path(tmp))
        device = pick_device(options.device)
        log = RunLog(job.name, base, options, device)
        read, encoded = job.encode(base)
        report_cutoff(job.rows, read, encoded.dropped, len(encoded.rows), options.cutoff)
        trainer = job.trainer(base, encoded, device)
        resuming = f", resuming from {resume_from.name}" if resume_from else ""
        say(f"{job.title}: {len(encoded.rows)} {job.rows} on {device}{resuming}")
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        save_checkpoint(trainer.model, base, output, options.save_dtype)
        log.extra.update(job.record(base, read, encoded))
        written = log.write(output, trainer, resume_from)
    finish_checkpoints(output, options.keep_checkpoints)
    say(f"{job.title}: {output} (final loss {written['final_loss']}, {written['wall_s']:.0f} s)")
    return written


def report_cutoff(what: str, read: int, dropped: int, kept: int, cutoff: int) -> None:
    if dropped:
        say(f"dropped {dropped} of {read} {what} longer than --cutoff {cutoff} tokens")
    if not kept:
        raise TrainError(
            f"every {what[:-1]} is longer than --cutoff {cutoff} tokens", hint="raise --cutoff"
        )
