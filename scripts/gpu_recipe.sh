#!/usr/bin/env bash
# The last call of a GPU lease (export/gpu/__init__.py): check and rebuild what `python -m
# export.gpu pack` sent, run models/nano/recipe-gpu.yaml's phase 1, self-distillation and
# phase 2 on the GPU, each inside its own share of the 10-minute call, and leave what they
# saved in $OUT, also when a stage fails or runs out of time.
set -uo pipefail
: "${OUT:?run this in a device call: \$OUT is the folder whose files come back}"
export PYTHONUNBUFFERED=1
RECIPE=models/nano/recipe-gpu.yaml
LOG="$OUT/recipe.log"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu/last/wheels/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD"
python3 -m export.gpu unpack 2>&1 | tee "$LOG"
[ "${PIPESTATUS[0]}" = 0 ] || exit 1
{ nvidia-smi --query-gpu=name,memory.total --format=csv
  python3 -c 'import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__, torch.cuda.is_available())'
} 2>&1 | tee -a "$LOG"

# The recipe's time limits end each training phase properly (merged checkpoint written); these
# outer limits only stop a stage that hangs. 170 + 140 + 220 s + unpacking and sending < 600 s.
stage() {  # stage SECONDS NAME: one pipeline stage, interrupted at SECONDS
    echo "== $2 ($(date +%T), at most $1 s)" | tee -a "$LOG"
    timeout --signal=INT "$1" python3 -m export.pipeline --config "$RECIPE" --only "$2" 2>&1 |
        tee -a "$LOG"
    return "${PIPESTATUS[0]}"
}
status=0
stage "${GPU_PHASE1_SECONDS:-170}" rsft || status=1
if ! stage "${GPU_SAMPLE_SECONDS:-140}" self-distill; then
    echo "== self-distill did not finish: phase 2 trains on the committed one" | tee -a "$LOG"
    python3 -m export.gpu reuse 2>&1 | tee -a "$LOG"
fi
stage "${GPU_PHASE2_SECONDS:-220}" rsft-self || status=1
python3 -m export.gpu send --to "$OUT" 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
exit "$status"
