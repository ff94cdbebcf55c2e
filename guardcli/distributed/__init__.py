"""``guardcli batch``: the scan as a Ray Data job, for inputs one machine cannot get through.

The driver plans (reads every input once, as ``scan`` does: the same Skips, the same ids),
read tasks re-read each file with the same readers on the cluster (``source``), an actor pool
judges batches with ``Guard``, one bundle opened per actor after checking it against the
driver's manifest (``judge``), and the driver alone appends the verdicts to one JSONL file,
each id at most once (``once``). ``job`` ties them together. Ray is the optional extra
``guardcli[ray]``; nothing outside this package imports it.
"""

from __future__ import annotations

from guardcli.errors import UsageError

EXTRA = "pip install 'guardcli[ray]'"


def require_ray():  # noqa: ANN201 - the ray module
    """Ray, or a one-line error naming the extra that installs it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the extra is ray[data]: pyarrow and pandas with it
    except ImportError as exc:
        raise UsageError(
            f"guardcli batch needs Ray Data ({exc.name or 'ray'} is not installed)",
            hint=f"install the extra: {EXTRA}",
        ) from None
    return ray
