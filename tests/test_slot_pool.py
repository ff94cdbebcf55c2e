"""The slot pool on the real runtime (guardcli.backends.ortslots over the fixture bundle):
token for token what a batch and a batch-1 generation give, through refills, moves, the
shared head and chunked reads, and a pooled scan that never loads onnxruntime-genai."""

from __future__ import annotations

import pytest

from guardcli.core.guard import Guard, GuardOptions
from guardcli.core.records import Sample
from testkit.pairs import FIXTURE_PAIRS

SAMPLES = [Sample(p.id, p.prompt, p.response) for p in FIXTURE_PAIRS]


def _guard(bundle, *, pooling: bool, batch_size: int = 4, mode: str = "reason") -> Guard:  # noqa: ANN001
    from guardcli.bundles.resolve import Resolved, open_guard

    options = GuardOptions(max_new_tokens=256, batch_size=batch_size, mode=mode)
    guard = open_guard(Resolved(bundle, "--model"), device="cpu", options=options)[0]
    guard.engine.backend.pooling = pooling
    return guard


@pytest.mark.parametrize("chunk", [256, 7])
def test_pooled_tokens_equal_batch_and_single_generation(fixture_bundle, chunk):
    pooled, plain = _guard(fixture_bundle, pooling=True), _guard(fixture_bundle, pooling=False)
    pooled.engine.backend.prefill_chunk = chunk  # 7: every fill reads in several calls
    prompts = [pooled.encode(s).ids for s in SAMPLES]
    # two slots for six prompts of different output lengths: refills and moves both happen
    got = pooled.engine.generate(prompts, max_new_tokens=256, slots=2)
    batch = plain.engine.generate(prompts, max_new_tokens=256)
    single = [plain.engine.generate([p], max_new_tokens=256)[0] for p in prompts]
    assert [c.tokens for c in got] == [c.tokens for c in batch] == [c.tokens for c in single]
    assert [c.finish for c in got] == [c.finish for c in batch]
    assert len({len(c.tokens) for c in got}) > 1  # rows really did end at different steps
    assert min(c.reused for c in got) > 100  # the GuardReasoner instruction was read once


@pytest.mark.parametrize("mode", ["reason", "cascade", "fast"])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_scans_judge_as_onnxruntime_genai_does_and_load_one_runtime(
    fixture_bundle, mode, batch_size
):
    """On CPU every mode and batch size runs on onnxruntime itself (the pool, and a one-slot
    reader for batch 1 and fast triage): the same verdicts, texts and scores as
    onnxruntime-genai, whose copy of the weights is never loaded."""
    pooled, plain = (
        _guard(fixture_bundle, pooling=pooling, batch_size=batch_size, mode=mode)
        for pooling in (True, False)
    )
    for got, want in zip(pooled.run(SAMPLES), plain.run(SAMPLES), strict=True):
        assert got.verdict == want.verdict, got.sample.id
        assert got.generation.text == want.generation.text
        assert got.generation.finish == want.generation.finish
    assert pooled.engine.backend._loaded is None
    assert plain.engine.backend._loaded is not None


def test_an_input_too_long_for_the_pools_share_is_generated_alone(fixture_bundle):
    guard = _guard(fixture_bundle, pooling=True)
    lengths = [len(guard.encode(s).ids) for s in SAMPLES]
    guard.options = GuardOptions(
        max_new_tokens=256, batch_size=4, batch_tokens=4 * sorted(lengths)[-2]
    )
    plans = guard._plan(lengths)
    longest = lengths.index(max(lengths))
    assert plans[0] == ([r for r in range(len(lengths)) if r != longest], True)
    assert plans[1:] == [([longest], True)]  # a pool of one: the batch-1 reader
    plain = _guard(fixture_bundle, pooling=False)
    for got, want in zip(guard.run(SAMPLES), plain.run(SAMPLES), strict=True):
        assert got.verdict == want.verdict and got.generation.text == want.generation.text


def test_a_reads_logits_survive_the_next_read_through_the_shared_buffer(fixture_bundle):
    """Every call writes its logits into one reused buffer: what a read returned must be
    its own row, equal to an unbuffered (unchunked) read's, and unchanged by later reads."""
    import numpy as np

    guard = _guard(fixture_bundle, pooling=True)
    backend = guard.engine.backend
    first = guard.encode(SAMPLES[0]).ids
    cache = backend.pool(2, 1024)
    row = cache.extend(0, first)
    kept = row.copy()
    # as long as the first read, so its logits land on the same place in the buffer
    other = cache.extend(1, [*first[:-1], first[-1] + 1])
    assert not np.array_equal(other, kept)
    cache.step([1, 2])
    assert np.array_equal(row, kept)
    backend.prefill_chunk = 0  # no chunking: onnxruntime allocates each call's logits
    plain = backend.pool(1, 1024)
    assert plain._logits_buf is None
    np.testing.assert_allclose(plain.extend(0, first), kept, rtol=1e-5, atol=1e-5)
