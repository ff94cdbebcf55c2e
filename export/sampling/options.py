"""The sampling options of a command that samples a model (``export.distill``): defined once,
beside SamplingConfig, and read back into one."""

from __future__ import annotations

import argparse

from export import positive_int
from export.sampling.generate import SamplingConfig


def add_sampling_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--k", type=positive_int, default=4, metavar="N", help="outputs per input (default 4)"
    )
    group.add_argument(
        "--temperature",
        type=float,
        default=0.7,
        metavar="T",
        help="sampling temperature, > 0 (default 0.7)",
    )
    group.add_argument(
        "--top-p",
        type=float,
        default=0.95,
        metavar="P",
        help="nucleus (top-p) cut, in (0, 1] (default 0.95)",
    )
    group.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=1024,
        metavar="N",
        help="per output (default 1024)",
    )
    group.add_argument("--seed", type=int, default=0, metavar="N", help="sampling seed (default 0)")
    group.add_argument(
        "--batch-size",
        type=positive_int,
        default=8,
        metavar="N",
        help="rows decoded together (default 8)",
    )
    group.add_argument(
        "--time-limit",
        type=float,
        metavar="SECONDS",
        help="model: teachers start no batch after this long (loading included); the inputs "
        "not reached are counted as without candidates, and what was sampled is judged",
    )
    group.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default="cpu",
        help="where model: teachers run (default cpu)",
    )


def sampling_config(args: argparse.Namespace) -> SamplingConfig:
    return SamplingConfig(
        k=args.k,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        batch_size=args.batch_size,
        time_limit=args.time_limit,
    )
