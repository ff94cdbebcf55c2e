"""A checkpoint part-way between two: base + scale x (tuned - base), tensor by tensor.

    python scripts/scale_delta.py --base runs/nano2/rsft-self --tuned runs/nano2/rsft-harmless \\
        --scale 0.3 --output runs/nano2/harmless-0.3

A LoRA stage's merged weights differ from its base by the adapter's delta, so scaling that
difference is scaling the adapter (what a smaller ``lora_alpha`` would give) without training
again: one trained stage yields a line of models between "before" and "after", each then
converted with ``export.convert`` and measured. The nano card's phase-3 trials use it to ask
whether a stage that overshoots (too few false positives, too little recall) has a better
point part-way (models/nano/README.md, "How the run got here").
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def scale_delta(base: Path, tuned: Path, scale: float, output: Path) -> int:
    """Write the scaled checkpoint; returns how many tensors it holds."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    shards = sorted(tuned.glob("*.safetensors"))
    if not shards:
        raise SystemExit(f"scale_delta: {tuned}: no *.safetensors: give a merged checkpoint")
    for shard in shards:  # every shard checked (headers only) before anything is written
        if not (base / shard.name).is_file():
            raise SystemExit(f"scale_delta: {base}: no {shard.name}: the two must share a layout")
        with (
            safe_open(str(shard), "pt") as after,
            safe_open(str(base / shard.name), "pt") as before,
        ):
            if set(after.keys()) != set(before.keys()):
                raise SystemExit(f"scale_delta: {shard.name}: the two hold different tensors")
    output.mkdir(parents=True, exist_ok=True)
    count = 0
    for shard in shards:
        after, before = load_file(str(shard)), load_file(str(base / shard.name))
        mixed = {k: (before[k] + scale * (after[k] - before[k])).contiguous() for k in after}
        save_file(mixed, str(output / shard.name), metadata={"format": "pt"})
        count += len(mixed)
    for item in tuned.iterdir():  # config and tokenizer last: a complete checkpoint or none
        if item.is_file() and item.suffix != ".safetensors":
            shutil.copyfile(item, output / item.name)
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="the checkpoint before")
    parser.add_argument("--tuned", type=Path, required=True, help="the checkpoint after")
    parser.add_argument("--scale", type=float, required=True, help="0: base, 1: tuned")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    count = scale_delta(args.base, args.tuned, args.scale, args.output)
    print(f"scale_delta: {count} tensors at {args.scale} in {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
