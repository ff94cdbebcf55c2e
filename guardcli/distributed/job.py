"""The Ray Data pipeline: read tasks over the plan's files -> an actor pool of Judges ->
(id, JSONL line) pairs streamed back to the driver, which writes them (guardcli.distributed.once).

Sizing: each actor runs one model with ``threads`` intra-op threads and asks Ray for that many
CPUs (``num_cpus``), so a node of C cores runs C // threads actors, each holding its own copy
of the weights. Read tasks ask for no CPU: they only parse text, and with every core given to
actors they would otherwise never be scheduled.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from guardcli.distributed import require_ray
from guardcli.distributed.judge import Judge, JudgeConfig
from guardcli.distributed.plan import Plan
from guardcli.distributed.source import make_datasource
from guardcli.errors import GuardError, ModelError, UsageError

DEFAULT_THREADS = 4  # per actor: decoding is memory-bound, more threads per model pay less


@dataclass(frozen=True)
class Pool:
    actors: int
    threads: int  # per actor, and the CPUs it reserves


def connect(address: str | None, *, quiet: bool = False):  # noqa: ANN201 - the ray module
    """Ray, joined to ``address`` (None: ``$RAY_ADDRESS``, else a local Ray for this run)."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=not quiet)
    return ray


def size_pool(ray: Any, actors: int | None, threads: int | None) -> Pool:
    """``--actors`` x ``--threads``; by default every CPU of the cluster, DEFAULT_THREADS a
    model (fewer on a smaller cluster)."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    threads = threads or max(1, min(DEFAULT_THREADS, cpus))
    if threads > cpus:
        raise UsageError(
            f"--threads {threads} is more than the cluster's {cpus} CPUs",
            hint=f"use --threads {cpus} or fewer",
        )
    return Pool(actors or max(1, cpus // threads), threads)


def judged(
    plan: Plan,
    done: frozenset[str],
    config: JudgeConfig,
    pool: Pool,
    *,
    batch_size: int,
    judge: type = Judge,
) -> Iterator[tuple[str, str]]:
    """(id, JSONL line) for every sample the plan selects, in no particular order; an id can
    come twice when Ray retries a task (the writer drops the repeat)."""
    ray = require_ray()
    from ray.data import ActorPoolStrategy

    done_ref = ray.put(done) if done else None
    dataset = ray.data.read_datasource(make_datasource(plan, done_ref), num_cpus=0)
    gpus = 1 if config.device == "cuda" else None
    dataset = dataset.map_batches(
        judge,
        fn_constructor_kwargs={"config": config},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=pool.actors),
        num_cpus=pool.threads,
        num_gpus=gpus,
    )
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for ident, line in zip(batch["id"], batch["line"], strict=True):
                yield str(ident), str(line)
    except GuardError:
        raise
    except Exception as exc:  # Ray wraps what a task or an actor raised
        raise _guard_error(exc) from None


def _guard_error(exc: BaseException) -> GuardError:
    """The GuardError a remote task raised (a bundle refused on a node), else one line."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, GuardError):
            return current
        for name in ("cause", "creation_task_error", "__cause__", "__context__"):
            found = getattr(current, name, None)
            if isinstance(found, BaseException):
                todo.append(found)
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return ModelError(
        f"the Ray job failed: {type(exc).__name__}: {first}",
        hint="see the Ray logs above; rerun with --resume to finish (nothing written is lost)",
    )
