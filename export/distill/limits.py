"""``--label-limit`` and ``--from-end``: how many inputs of each label a run samples, and from
which end of the files.

One sampling run can then give each side of the request label its own budget (phase 3 of
models/nano/recipe-v2.yaml: 700 harmless and 500 harmful prompts) and reach the prompts an
earlier run's limits, counted from the start, stopped before.
"""

from __future__ import annotations

import argparse

from guardcli.errors import UsageError

LABELS = ("harmful", "unharmful")


def label_limit(text: str) -> tuple[str, int]:
    """``LABEL=N``, checked as it is parsed."""
    label, _, count = text.partition("=")
    if label not in LABELS or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use harmful=N or unharmful=N with N a positive whole number"
        )
    return label, int(count)


def add_limit_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--label-limit",
        dest="label_limits",
        action="append",
        type=label_limit,
        metavar="LABEL=N",
        help="at most N inputs whose gold request label is LABEL (repeatable, one per label; "
        "inputs of a label not named are left out, counted), e.g. unharmful=700 harmful=500: "
        "one run samples both sides, each on its own budget",
    )
    group.add_argument(
        "--from-end",
        action="store_true",
        help="take inputs from the end of the files first, so the limits reach prompts an "
        "earlier run's limits (from the start) did not sample",
    )


def label_limits(args: argparse.Namespace) -> dict[str, int] | None:
    """The checked limits: refused with --request-label (both choose labels) or twice a label."""
    if not args.label_limits:
        return None
    if args.request_label:
        raise UsageError(
            "--label-limit and --request-label both choose labels",
            hint="use --label-limit LABEL=N alone (one per label to sample)",
        )
    limits = dict(args.label_limits)
    if len(limits) < len(args.label_limits):
        raise UsageError("--label-limit names a label twice", hint="one LABEL=N per label")
    return limits
