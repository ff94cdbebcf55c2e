#!/usr/bin/env bash
# Rehearse a GPU lease on this machine, before spending one (export/gpu/__init__.py): pack,
# copy the working tree the way a device call copies it, deliver the GGUF's parts the way the
# staging calls do, run scripts/gpu_recipe.sh on the CPU with the recipe cut to seconds (and
# the sampling to 3 prompts), then receive, merge and convert here. About 10 minutes on two
# cores; it ends with the converted bundle in runs/nano-gpu/bundles/rsft-self (an untrained
# model: it checks the plumbing, not the training).
#   bash scripts/gpu_rehearsal.sh
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
sim=$(mktemp -d /tmp/gpu-rehearsal-tree.XXXX)
out=$(mktemp -d /tmp/gpu-rehearsal-out.XXXX)
staging=/tmp/guardcli-gpu  # what unpack reads there (export.gpu.STAGING)
python -m export.gpu pack >"$out.calls"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp -P --parents -t "$sim"
rm -rf "$staging" && mkdir -p "$staging" "$sim/.gpu/parts"
parts=(.gpu/parts/*)
for part in "${parts[@]::${#parts[@]}-1}"; do cp "$part" "$staging/"; done  # calls 1..n-1
cp "${parts[-1]}" "$sim/.gpu/parts/" && cp -r .gpu/last "$sim/.gpu/"  # the last call's carry
python - "$sim/models/nano/recipe-gpu.yaml" <<'EOF'
import sys, yaml
path = sys.argv[1]
recipe = yaml.safe_load(open(path, encoding="utf-8"))
for phase in ("rsft", "rsft-self"):
    recipe[phase].update({"time-limit": 150, "save-every": 2, "eval-every": 3, "eval-limit": 8})
recipe["self-distill"].update({"limit": 3, "time-limit": 300})
yaml.safe_dump(recipe, open(path, "w", encoding="utf-8"), sort_keys=False)
EOF
(cd "$sim" && OUT="$out" GPU_PHASE1_SECONDS=600 GPU_SAMPLE_SECONDS=600 GPU_PHASE2_SECONDS=600 \
    bash scripts/gpu_recipe.sh)
ls -l "$out"
python -m export.gpu receive --from "$out" --force
python -m export.pipeline --config models/nano/recipe-gpu.yaml \
    --only rsft --only rsft-self --only bundle-rsft-self
echo "rehearsal passed: the calls were" && cat "$out.calls"
rm -rf "$sim" "$out" "$out.calls"
