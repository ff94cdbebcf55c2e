#!/usr/bin/env bash
# The last call of a GPU lease (export/gpu/__init__.py): check and rebuild what `python -m
# export.gpu pack` sent, train both R-SFT phases of models/nano/recipe-gpu.yaml on the GPU
# (each ends by its time limit at the latest), and leave their states in $OUT, also when the
# training stops early: whatever was saved comes back.
set -uo pipefail
: "${OUT:?run this in a device call: \$OUT is the folder whose files come back}"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu/last/wheels/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD"
python3 -m export.gpu unpack || exit 1
{ nvidia-smi --query-gpu=name,memory.total --format=csv
  python3 -c 'import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__, torch.cuda.is_available())'
} 2>&1 | tee "$OUT/recipe.log"
timeout --signal=INT "${GPU_RECIPE_SECONDS:-550}" python3 -m export.pipeline \
    --config models/nano/recipe-gpu.yaml --only rsft --only rsft-self 2>&1 | tee -a "$OUT/recipe.log"
status=${PIPESTATUS[0]}
python3 -m export.gpu send --to "$OUT" || status=1
exit "$status"
