#!/usr/bin/env bash
# The air-gap kit: everything guardcli needs on a machine with no network, in one folder.
#   bash scripts/offline_kit.sh [KIT]          (default KIT: dist/guardcli-kit)
#
#   KIT/wheels/      guardcli, every runtime dependency and the serve extra as wheels (no torch)
#   KIT/nano/        the built GuardReasoner-Nano bundle ('guardcli models build nano')
#   KIT/install.sh   the offline install: checks SHA256SUMS, makes a venv, installs the wheels
#                    with --no-index and makes KIT/nano that venv's default model
#   KIT/SHA256SUMS   sha256 of every file above; KIT/INSTALL.txt says what to run offline
#   KIT/ROOT_SHA256  the bundle's root sha256 (manifest + every file), to pin on the other side
#
# Run it where PyPI is reachable. It finds the Python that has guardcli itself: $PYTHON, else
# this checkout's .venv (what scripts/quickstart.sh makes), else an activated venv, else
# python3; with none of them it stops before writing anything and says what to run. The wheels
# fit this machine's OS, CPU architecture and Python minor version; for another target pass
# pip's platform options, e.g. KIT_PIP_ARGS="--python-version 3.12 --platform manylinux2014_x86_64".
# GUARDCLI_KIT_BUNDLE=DIR ships that bundle instead of nano (e.g. a converted GuardReasoner-1B).
# The kit is assembled in KIT.partial and moved to KIT only once complete: a failure leaves
# no half-made kit behind.
set -euo pipefail

kit=${1:-dist/guardcli-kit}
root=$(cd "$(dirname "$0")/.." && pwd)

die() {
  echo "offline_kit: error: $1" >&2
  exit 2
}

has_guardcli() {  # from / so that a checkout in the working folder cannot stand in for an install
  (cd / && "$1" -c "import guardcli.cli, onnxruntime_genai" 2>/dev/null)
}

find_python() {
  if [ -n "${PYTHON:-}" ]; then
    has_guardcli "$PYTHON" || die "PYTHON=$PYTHON cannot import guardcli and its runtime - point PYTHON at the python of the venv guardcli is installed in"
    echo "$PYTHON"
    return
  fi
  local candidate
  for candidate in "$root/.venv/bin/python" "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}" python3; do
    if [ -n "$candidate" ] && has_guardcli "$candidate"; then
      echo "$candidate"
      return
    fi
  done
  die "no Python with guardcli installed (tried $root/.venv, \$VIRTUAL_ENV and python3) - run 'bash scripts/quickstart.sh' (it makes $root/.venv), or set PYTHON=/path/to/venv/bin/python"
}

python=$(find_python)
guardcli() { "$python" -m guardcli "$@"; }  # never the PATH's: the one this Python imports
"$python" -m pip --version >/dev/null 2>&1 || die "$python has no pip - install it (python -m ensurepip) or set PYTHON"
echo "offline_kit: using $python ($(guardcli version | head -n 1))" >&2

bundle=${GUARDCLI_KIT_BUNDLE:-}
if [ -n "$bundle" ]; then
  [ -f "$bundle/guardcli.json" ] || die "GUARDCLI_KIT_BUNDLE=$bundle is not a model bundle (no guardcli.json) - give the folder export.convert or 'guardcli models build' wrote"
else
  echo "offline_kit: building GuardReasoner-Nano (once; reused from the cache after)" >&2
  bundle=$(guardcli models build nano) || die "could not build nano (see above) - fix that, or set GUARDCLI_KIT_BUNDLE=DIR to ship another bundle"
fi
guardcli models verify --full "$bundle" >&2 || die "$bundle fails verification - rebuild it ('guardcli models build nano --force') or re-copy it"
# The bundle's root sha256 covers its manifest and every file: the one value to carry across
# the air gap by a separate channel and pin on the other side (docs/security.md).
pin=$(guardcli models info "$bundle" | "$python" -c 'import json, sys; print(json.load(sys.stdin)["root_sha256"])')

partial="$kit.partial"
rm -rf "$partial"
trap 'rm -rf "$partial"' EXIT
mkdir -p "$partial/wheels"
echo "offline_kit: building the guardcli wheel and downloading its runtime dependencies" >&2
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$partial/wheels" "$root"
wheel=$(ls "$partial"/wheels/guardcli-*.whl)
# [serve]: Starlette and uvicorn too, so 'guardcli serve' installs offline (pure-Python wheels)
# shellcheck disable=SC2086  # KIT_PIP_ARGS is a list of pip options
"$python" -m pip download --quiet --only-binary=:all: --dest "$partial/wheels" \
  ${KIT_PIP_ARGS:-} "${wheel}[serve]"
heavy=$(cd "$partial/wheels" && ls | grep -iE '^(torch|transformers|trl|peft|nvidia)[-_]' || true)
if [ -n "$heavy" ]; then
  die "the runtime pulled in $heavy; the kit must stay torch-free"
fi
cp -r "$bundle" "$partial/nano"
echo "$pin" > "$partial/ROOT_SHA256"

cat > "$partial/install.sh" <<'SH'
#!/usr/bin/env bash
# Install guardcli from this kit with no network: bash install.sh [VENV] (default: KIT/venv).
set -euo pipefail
kit=$(cd "$(dirname "$0")" && pwd)
venv=${1:-$kit/venv}
(cd "$kit" && sha256sum --quiet -c SHA256SUMS)
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --no-index --find-links "$kit/wheels" guardcli
"$venv/bin/guardcli" models default "$kit/nano"   # the kit's bundle, wherever you run from
echo "guardcli installed in $venv; its default model is $kit/nano. Try: $venv/bin/guardcli scan FILE" >&2
SH
cat > "$partial/INSTALL.txt" <<EOF_INSTALL
guardcli offline kit. On the machine with no network, from this folder:

  bash install.sh                              # checks SHA256SUMS, makes ./venv, installs,
                                               # and makes ./nano the default model
  venv/bin/guardcli scan FILE

or by hand:

  sha256sum -c SHA256SUMS                      # everything arrived intact
  python3 -m venv venv
  venv/bin/pip install --no-index --find-links wheels guardcli
  venv/bin/guardcli models verify ./nano --expect $pin  # the root sha256 you were sent
  venv/bin/guardcli models default "\$PWD/nano" # or pass --model "\$PWD/nano" / set GUARDCLI_MODEL
  # the moderation endpoint too (guardcli serve; its wheels are in the kit):
  venv/bin/pip install --no-index --find-links wheels 'guardcli[serve]'

This kit's model is ./nano ('guardcli models build nano' needs a download, not possible here).
guardcli verifies the bundle's own sha256 manifest every time it loads it. The root sha256
above pins the manifest itself; compare it with the one the kit's builder sent you by another
channel, and set GUARDCLI_MODEL_SHA256=$pin to make every load refuse any other bundle.
EOF_INSTALL
(cd "$partial" && find wheels nano install.sh INSTALL.txt ROOT_SHA256 -type f | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)
rm -rf "$kit"
mv "$partial" "$kit"
trap - EXIT
echo "offline_kit: wrote $kit ($(du -sh "$kit" | cut -f1); $(ls "$kit/wheels" | wc -l) wheels)" >&2
echo "offline_kit: bundle root sha256 $pin (send it by another channel; pin it offline)" >&2
echo "$kit"
