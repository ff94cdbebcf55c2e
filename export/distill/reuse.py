"""``export.distill --reuse DIR``: a long run's committed output stands in for sampling again.

Self-distillation samples the phase-1 model for 40-80 minutes on 2 cores; a fresh checkout that
continues phase 2 needs the same traces, not new ones, so the recipe names the committed copy.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
from pathlib import Path

from export.distill.judging import summary_path
from guardcli.errors import InputError


def add_reuse_argument(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--reuse",
        type=Path,
        metavar="DIR",
        help="a committed copy of this output (OUTPUT's file name and its .summary.json in "
        "DIR): copied to OUTPUT instead of sampling again, so a long training run continues on "
        "the same traces in a fresh checkout (models/nano/train-state/self-distill)",
    )


def reuse(folder: Path, output: Path) -> int:
    """Copy a committed output and its summary in place of a sampling run (``--reuse``); the
    output may be committed gzipped (``NAME.gz``: a few MB of traces are a few hundred KB)."""
    source = folder / output.name
    packed = source.with_name(source.name + ".gz")
    if not source.is_file() and packed.is_file():
        source = packed
    pairs = [(source, output), (summary_path(folder / output.name), summary_path(output))]
    missing = [str(src) for src, _ in pairs if not src.is_file()]
    if missing:
        raise InputError(
            f"--reuse {folder}: no {' or '.join(missing)}",
            hint="commit both files there, or drop --reuse (the recipe's reuse:) to sample again",
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    if source == packed:
        with gzip.open(source, "rb") as src, output.open("wb") as dest:
            shutil.copyfileobj(src, dest)
    else:
        shutil.copyfile(source, output)
    shutil.copyfile(*pairs[1])
    kept = sum(1 for line in output.read_text(encoding="utf-8").splitlines() if line.strip())
    print(f"reused {kept} traces from {source}: wrote {output} (summary: {summary_path(output)})")
    return 0
