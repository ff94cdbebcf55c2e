#!/usr/bin/env bash
# The air-gap kit: everything guardcli needs on a machine with no network, in one folder.
#   bash scripts/offline_kit.sh [KIT]          (default KIT: dist/guardcli-kit)
#
#   KIT/wheels/      guardcli, every runtime dependency and the serve extra as wheels (no torch)
#   KIT/nano/        the built GuardReasoner-Nano bundle ('guardcli models build nano')
#   KIT/SHA256SUMS   sha256 of every file above; KIT/INSTALL.txt says what to run offline
#
# Run it where guardcli is installed (the quickstart's .venv) and PyPI is reachable. The wheels
# fit this machine's OS, CPU architecture and Python minor version; for another target pass pip's
# platform options, e.g. KIT_PIP_ARGS="--python-version 3.12 --platform manylinux2014_x86_64".
# GUARDCLI_KIT_BUNDLE=DIR ships that bundle instead of nano (e.g. a converted GuardReasoner-1B).
set -euo pipefail

kit=${1:-dist/guardcli-kit}
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
guardcli=${GUARDCLI:-guardcli}

rm -rf "$kit"
mkdir -p "$kit/wheels"
echo "offline_kit: building the guardcli wheel and downloading its runtime dependencies" >&2
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$kit/wheels" "$root"
wheel=$(ls "$kit"/wheels/guardcli-*.whl)
# [serve]: Starlette and uvicorn too, so 'guardcli serve' installs offline (pure-Python wheels)
# shellcheck disable=SC2086  # KIT_PIP_ARGS is a list of pip options
"$python" -m pip download --quiet --only-binary=:all: --dest "$kit/wheels" \
  ${KIT_PIP_ARGS:-} "${wheel}[serve]"
heavy=$(cd "$kit/wheels" && ls | grep -iE '^(torch|transformers|trl|peft|nvidia)[-_]' || true)
if [ -n "$heavy" ]; then
  echo "offline_kit: error: the runtime pulled in $heavy; the kit must stay torch-free" >&2
  exit 1
fi

bundle=${GUARDCLI_KIT_BUNDLE:-}
if [ -z "$bundle" ]; then
  echo "offline_kit: building GuardReasoner-Nano (once; reused from the cache after)" >&2
  bundle=$("$guardcli" models build nano)
fi
"$guardcli" models verify --full "$bundle" >&2
cp -r "$bundle" "$kit/nano"

cat > "$kit/INSTALL.txt" <<'EOF'
guardcli offline kit. On the machine with no network, from this folder:

  sha256sum -c SHA256SUMS                      # everything arrived intact
  python3 -m venv venv
  venv/bin/pip install --no-index --find-links wheels guardcli
  # or, for the moderation endpoint (guardcli serve): ... wheels 'guardcli[serve]'
  venv/bin/guardcli scan FILE --model nano     # or: export GUARDCLI_MODEL="$PWD/nano"

guardcli verifies the bundle's own sha256 manifest every time it loads it.
EOF
(cd "$kit" && find wheels nano INSTALL.txt -type f | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)
echo "offline_kit: wrote $kit ($(du -sh "$kit" | cut -f1); $(ls "$kit/wheels" | wc -l) wheels)" >&2
echo "$kit"
