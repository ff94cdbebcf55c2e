"""The actor that judges batches: one bundle opened per actor, checked before any verdict.

The bundle reaches the workers as a path on storage every node mounts at the same place (or
a copy at the same path on each node). The driver hashes the bundle's manifest; each actor
hashes the manifest it sees and refuses to start unless the two are equal, then checks every
file against that manifest's sha256s (``guardcli.bundles.resolve.check_bundle``, with the
node's hash cache) before it opens the model. A node with a stale or half-copied bundle so
fails loudly instead of writing verdicts from another model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardcli.bundles.manifest import MANIFEST
from guardcli.errors import ModelError


def manifest_sha256(bundle: Path) -> str:
    """The sha256 of the bundle's manifest, which holds the sha256 of every other file."""
    try:
        return hashlib.sha256((bundle / MANIFEST).read_bytes()).hexdigest()
    except OSError as exc:
        raise ModelError(
            f"{bundle / MANIFEST}: cannot read ({exc.strerror or exc})",
            hint="put the bundle on storage every node mounts at the same path",
        ) from None


@dataclass(frozen=True)
class JudgeConfig:
    """What every actor needs; picklable, sent once per actor."""

    bundle: str
    sha256: str  # of the manifest, as the driver read it
    guard: Any  # GuardOptions
    device: str = "cpu"
    threads: int | None = None
    low_memory: bool = False  # --low-memory: the actors on a node share one mapped copy
    reasoning: bool = False
    fail_on: str = "any"


class Judge:
    """``map_batches``' callable class: built once per actor, called once per batch."""

    def __init__(self, config: JudgeConfig) -> None:
        from guardcli.bundles.resolve import Resolved, open_guard

        bundle = Path(config.bundle)
        seen = manifest_sha256(bundle)
        if seen != config.sha256:
            raise ModelError(
                f"{bundle}: this node's manifest (sha256 {seen[:12]}) is not the driver's "
                f"({config.sha256[:12]})",
                hint="copy the same bundle to the same path on every node",
            )
        self.config = config
        self.guard, self.manifest, self.device = open_guard(
            Resolved(bundle, "guardcli batch"),
            device=config.device,
            threads=config.threads,
            verify_hashes=True,
            options=config.guard,
            low_memory=config.low_memory,
        )

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A batch of samples -> their ids and their JSONL records, as ``scan -f jsonl``
        writes them."""
        import numpy as np

        from guardcli.core.records import Sample
        from guardcli.io.outputs import json_line, result_record

        samples = [
            Sample(id=str(i), prompt=str(p), response=None if r is None else str(r), source=str(s))
            for i, p, r, s in zip(
                batch["id"], batch["prompt"], batch["response"], batch["source"], strict=True
            )
        ]
        config = self.config
        ids, lines = [], []
        for result in self.guard.run(samples):
            record = result_record(result, reasoning=config.reasoning, fail_on=config.fail_on)
            ids.append(result.sample.id)
            lines.append(json_line(record))
        return {"id": np.array(ids, dtype=object), "line": np.array(lines, dtype=object)}
