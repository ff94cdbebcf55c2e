"""``--shard K/N``: which samples one of N independent jobs judges.

A plain scheduler (a Slurm array, a Kubernetes indexed Job, GNU parallel) runs the same
command N times with a different index; each run keeps the samples whose id hashes to its
index. The hash is of the id, not of the position: adding or reordering files does not move
any other sample to another shard, so every shard's ``--resume`` output stays valid. It is a
cryptographic hash (blake2b), never Python's ``hash()``, which is salted per process and
would give every run a different partition.

K counts from 0, like ``$SLURM_ARRAY_TASK_ID`` (with ``--array=0-N-1``) and Kubernetes'
``$JOB_COMPLETION_INDEX``: ``--shard 0/4`` .. ``--shard 3/4`` together cover everything.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from guardcli.errors import UsageError

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
EXAMPLE = "e.g. --shard 0/4 .. --shard 3/4 (K counts from 0, like $JOB_COMPLETION_INDEX)"


def shard_of(sample_id: str, count: int) -> int:
    """The shard (0..count-1) that ``sample_id`` belongs to: the same on every machine and
    every Python, for ever (the first 8 bytes of its blake2b digest, modulo ``count``)."""
    digest = hashlib.blake2b(sample_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``; checked when made."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise UsageError(f"--shard {self}: N must be at least 1", hint=EXAMPLE)
        if not 0 <= self.index < self.count:
            last = self.count - 1
            raise UsageError(
                f"--shard {self}: K must be 0..{last}",
                hint=f"K counts from 0, like $JOB_COMPLETION_INDEX: --shard 0/{self.count} .. "
                f"--shard {last}/{self.count}",
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def keeps(self, sample_id: str) -> bool:
        return self.count == 1 or shard_of(sample_id, self.count) == self.index


def parse_shard(text: str | None) -> Shard | None:
    """``"K/N"`` -> Shard, None -> None (no sharding), anything else a one-line error."""
    if text is None:
        return None
    match = _SPEC.match(text)
    if match is None:
        raise UsageError(f"--shard {text!r} is not K/N", hint=EXAMPLE)
    return Shard(int(match.group(1)), int(match.group(2)))
