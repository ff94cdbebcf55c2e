"""scripts/bench.py runs two engines on the same weights and inputs and reports them fairly.

On the fixture model, transformers ``generate`` and guardcli decode the same greedy tokens
(tests/test_parity.py), so the bench must report 100% verdict agreement between them at every
batch size, and its JSON record must carry what makes a run comparable: machine, versions,
the bandwidth ceiling and per-engine peak RSS. No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.pairs import FIXTURE_PAIRS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_compares_torch_and_guardcli_on_the_same_inputs(
    fixture_bundle, fixture_checkpoint, tmp_path
):
    labelled = tmp_path / "pairs.jsonl"
    labelled.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": p.prompt,
                    "response": p.response,
                    "prompt_harm_label": p.request.value,
                }
            )
            + "\n"
            for p in FIXTURE_PAIRS
        )
    )
    record = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"),
         "--engine", f"torch-fp32={fixture_checkpoint}",
         "--engine", f"guardcli-fp32={fixture_bundle}",
         "--engine", f"guardcli-fast={fixture_bundle}@fast",
         "--engine", f"guardcli-tuned={fixture_bundle}",
         "--engine-option", "guardcli-tuned:lookahead=1",
         "--engine-option", "guardcli-tuned:session.enable_cpu_mem_arena=false",
         "--engine-option", "guardcli-tuned:reuse_prefix=false",
         "--engine-option", "guardcli-tuned:low_memory=true",
         "--engine-option", "guardcli-tuned:prefill_chunk=0",
         "--bench", str(labelled), "--limit", "4", "--batch-size", "1", "2",
         "--max-new-tokens", "200", "--json", str(record)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + 4 * 2  # header + 4 engines x 2 batch sizes
    data = json.loads(record.read_text())
    assert data["versions"]["onnxruntime-genai"] and data["memory_bandwidth_gbs"] > 0
    assert data["batch1_decode_ceiling_tokens_per_s"] > 0
    reasoning, fast = [*data["engines"][:2], data["engines"][3]], data["engines"][2]
    for run in fast["runs"]:  # triage generates nothing: verdicts, but no decode rate
        assert run["samples"] == 4 and run["mean_output_tokens"] == 0
        assert all(v[0] in ("harmful", "unharmful") for v in run["verdicts"])
    for engine in reasoning:
        assert engine["peak_rss_mb"] > 0
        if sys.platform.startswith("linux"):  # private memory is read from /proc/self/status
            assert 0 < engine["private_mb"] <= engine["peak_rss_mb"]
        for run in engine["runs"]:
            assert run["samples"] == 4 and run["agreement"] == 1.0, (engine["engine"], run)
            assert run["looped"] == 0
            assert run["decode_tokens_per_s"] > 0 and run["p95_latency_s"] >= run["p50_latency_s"]
    # the shared instruction is read once, at batch 1 (the cache) and batch 2 (the slot
    # pool), unless told not to; the pool pads nothing and steps no finished row
    cached = {e["engine"]: [r["cached_share"] for r in e["runs"]] for e in data["engines"][1:]}
    assert cached["guardcli-fp32"][0] > 0.3 and cached["guardcli-fast"][0] > 0.3
    assert cached["guardcli-fp32"][1] > 0.3 and cached["guardcli-tuned"] == [0, 0]
    pooled = data["engines"][1]["runs"][1]
    assert pooled["padding_share"] == 0 and pooled["finished_row_share"] == 0
    torch_verdicts = data["engines"][0]["runs"][0]["verdicts"]
    assert any(v[0] == "harmful" for v in torch_verdicts)  # real verdicts, not all unknown
