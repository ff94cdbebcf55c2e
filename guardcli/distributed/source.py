"""A Ray Data datasource over guardcli's own readers: one read task per input file.

``ray.data.read_json`` would parse the files its own way (and fail, or silently drop, where
``scan`` reports a bad line and goes on); reading with guardcli's readers gives exactly the
samples and ids ``scan`` gives. Each task streams its file in blocks of ``BLOCK_ROWS`` rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from guardcli.distributed.plan import Plan, Selection, select
from guardcli.io.inputs import InputFile

BLOCK_ROWS = 256
COLUMNS = ("id", "prompt", "response", "source")


def make_datasource(plan: Plan, done_ref: Any):  # noqa: ANN201 - a ray.data.Datasource
    """The datasource for ``plan``; ``done_ref`` is an ObjectRef to the ids already written
    (shared by every task instead of copied into each), or None."""
    from ray.data import Datasource

    class GuardInputs(Datasource):
        def get_name(self) -> str:
            return "GuardcliInputs"

        def estimate_inmemory_data_size(self) -> int | None:
            return sum(_size(found) for found in plan.files)

        def get_read_tasks(self, parallelism: int, **_: Any) -> list:
            return [
                _read_task(number, found, plan.selection, todo, done_ref)
                for number, (found, todo) in enumerate(zip(plan.files, plan.todo, strict=True))
                if todo
            ]

    return GuardInputs()


def _size(found: InputFile) -> int:
    try:
        return os.path.getsize(found.path)
    except OSError:
        return 0


def _read_task(number: int, found: InputFile, selection: Selection, todo: int, done_ref: Any):  # noqa: ANN202
    from ray.data import ReadTask
    from ray.data.block import BlockMetadata

    def read() -> Iterator:
        import ray

        done = ray.get(done_ref) if done_ref is not None else frozenset()
        rows: list = []
        for sample in select(number, found, selection, done):
            rows.append(sample)
            if len(rows) >= BLOCK_ROWS:
                yield _block(rows)
                rows = []
        if rows:
            yield _block(rows)

    metadata = BlockMetadata(
        num_rows=todo, size_bytes=_size(found), input_files=[found.path], exec_stats=None
    )
    return ReadTask(read, metadata)


def _block(samples: list):  # noqa: ANN202 - a pyarrow.Table
    import pyarrow as pa

    return pa.table(
        {
            "id": pa.array([s.id for s in samples], pa.string()),
            "prompt": pa.array([s.prompt for s in samples], pa.string()),
            "response": pa.array([s.response for s in samples], pa.string()),
            "source": pa.array([s.source for s in samples], pa.string()),
        }
    )
