"""Batch-1 reasoning on the real runtime reuses the previous input's KV cache (rewind to the
common head, append the rest): the greedy tokens must be those of a fresh prefill, in
reason mode and in a cascade whose reasoning follows its own triage."""

from __future__ import annotations

import pytest

from guardcli.core.guard import Guard, GuardOptions
from guardcli.core.records import Sample
from testkit.pairs import FIXTURE_PAIRS

SAMPLES = [Sample(p.id, p.prompt, p.response) for p in FIXTURE_PAIRS]


def _guard(bundle, mode: str, reuse: bool) -> Guard:  # noqa: ANN001
    from guardcli.bundles.resolve import Resolved, open_guard

    options = GuardOptions(max_new_tokens=256, mode=mode, batch_size=1)
    guard = open_guard(Resolved(bundle, "--model"), device="cpu", options=options)[0]
    guard.engine.reuse_prefix = reuse
    return guard


def test_cached_batch_1_tokens_equal_fresh_prefills(fixture_bundle):
    cached, fresh = (_guard(fixture_bundle, "reason", reuse) for reuse in (True, False))
    reused = []
    for sample in SAMPLES:
        ids = cached.encode(sample).ids
        [hit] = cached.engine.generate([ids], max_new_tokens=64)
        [miss] = fresh.engine.generate([ids], max_new_tokens=64)
        assert hit.tokens == miss.tokens, sample.id
        assert miss.reused == 0
        reused.append(hit.reused)
    assert reused[0] == 0 and min(reused[1:]) > 100  # the instruction came from the cache
    assert fresh.engine._reader is None  # the fresh engine never opened a reader


@pytest.mark.parametrize("mode", ["reason", "cascade"])
def test_verdicts_and_traces_do_not_depend_on_the_cache(fixture_bundle, mode):
    cached, fresh = (_guard(fixture_bundle, mode, reuse) for reuse in (True, False))
    for hit, miss in zip(cached.run(SAMPLES), fresh.run(SAMPLES), strict=True):
        assert hit.verdict == miss.verdict, hit.sample.id
        assert hit.generation.output_tokens == miss.generation.output_tokens
