#!/usr/bin/env bash
# Every number of models/nano/README.md's evaluation tables, from one bundle, in one go.
#
#   bash scripts/nano_eval.sh [MODEL] [OUT] [LIMIT]
#
# MODEL: a bundle (default: nano, the built default model); OUT: where predictions and JSON
# summaries go (default runs/nano/eval-card); LIMIT: items per held-out file and of the
# validation split in reason mode (default 200; reason mode is ~2 s per item on 2 cores).
# Fast mode always reads the whole validation split and 200 items per held-out file.
# Needs ../shared (the benchmarks and the labelled prompts) and the export extra (export.data.splits).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-nano}
OUT=${2:-runs/nano/eval-card}
LIMIT=${3:-200}
B=../shared/data/guardreasoner/benchmark
mkdir -p "$OUT"
python -m export.data.splits export --output "$OUT/validation.jsonl"

run() {  # run NAME ARGS...: one guardcli eval, its JSON summary in OUT/NAME.json
    local name=$1
    shift
    echo "== $name" >&2
    guardcli eval "$@" --model "$MODEL" -o "$OUT/$name" --json >"$OUT/$name.json"
}

# the validation split (prompt harm, real harmless prompts): fast = AUC and the calibrated cut
run val-fast "$OUT/validation.jsonl" --task prompt --mode fast
run val-reason "$OUT/validation.jsonl" --task prompt --limit "$LIMIT" --seed 0
# held-out benchmarks, as in v1's card
run heldout-fast $B/0_0_SimpleSafetyTests.json $B/0_9_safe_rlhf.json $B/0_A_beaver_tails.json \
    --limit 200 --seed 0 --mode fast
run heldout-reason $B/0_0_SimpleSafetyTests.json $B/0_9_safe_rlhf.json $B/0_A_beaver_tails.json \
    --limit "$LIMIT" --seed 0
# the obvious cases
run sanity-prompts models/nano/sanity/prompts.jsonl --task prompt
run sanity-responses models/nano/sanity/responses.jsonl --task response
run sanity-prompts-fast models/nano/sanity/prompts.jsonl --task prompt --mode fast
run sanity-responses-fast models/nano/sanity/responses.jsonl --task response --mode fast
echo "wrote $OUT/*.json" >&2
