"""End to end over a real ONNX bundle: the fixture model (testkit/fixture.py) writes known
GuardReasoner traces, so the runtime's labels, batching, streaming and stop rules are checked
against exact expected text rather than "some text came out"."""

from __future__ import annotations

import pytest

from guardcli.bundles.manifest import read_manifest, verify
from guardcli.bundles.resolve import check_bundle
from guardcli.core.parse import answers_complete
from guardcli.core.records import Label, ParseStatus
from testkit.pairs import FIXTURE_PAIRS

pytestmark = pytest.mark.slow

IDS = [pair.id for pair in FIXTURE_PAIRS]


def _assert_matches(result, pair) -> None:
    assert result.sample.id == pair.id
    assert result.generation.text == pair.trace
    verdict = result.verdict
    assert (verdict.request, verdict.completion, verdict.response) == pair.labels
    assert verdict.status is ParseStatus.OK
    assert result.generation.finish in {"eos", "answers"}
    assert result.generation.truncated_input is False


def test_pairs_cover_every_label_shape():
    shapes = {pair.labels for pair in FIXTURE_PAIRS}
    assert len(shapes) == len(FIXTURE_PAIRS)
    assert (Label.HARMFUL, Label.NONE, Label.NONE) in shapes
    assert (Label.UNHARMFUL, Label.NONE, Label.NONE) in shapes
    assert (Label.HARMFUL, Label.REFUSAL, Label.UNHARMFUL) in shapes
    assert (Label.HARMFUL, Label.COMPLIANCE, Label.HARMFUL) in shapes
    assert (Label.UNHARMFUL, Label.COMPLIANCE, Label.UNHARMFUL) in shapes
    for pair in FIXTURE_PAIRS:
        assert answers_complete(pair.trace + "\n")
        assert not answers_complete(pair.trace[: pair.trace.rindex("Answers")])


def test_bundle_manifest_verifies(fixture_bundle):
    manifest = check_bundle(fixture_bundle)  # raises on any hash mismatch
    assert verify(fixture_bundle, read_manifest(fixture_bundle)) == []
    assert manifest.precision == "fp32"
    assert manifest.add_bos is True
    assert manifest.validation["passed"] is True
    assert manifest.validation["exact"] == 1.0
    assert manifest.validation["samples"] == len(FIXTURE_PAIRS)


@pytest.mark.parametrize("pair", FIXTURE_PAIRS, ids=IDS)
def test_each_pair_alone(fixture_guard, pair):
    [result] = fixture_guard.classify_batch([pair.sample()])
    _assert_matches(result, pair)


def test_classify_shortcut(fixture_guard):
    pair = FIXTURE_PAIRS[0]
    result = fixture_guard.classify(pair.prompt, pair.response)
    assert result.generation.text == pair.trace
    verdict = result.verdict
    assert (verdict.request, verdict.completion, verdict.response) == pair.labels


def test_one_mixed_length_batch_streams_the_same_text(fixture_guard):
    samples = [pair.sample() for pair in FIXTURE_PAIRS]
    lengths = {len(fixture_guard.encode(s).ids) for s in samples}
    assert len(lengths) == len(samples)  # every row is padded differently
    pieces: dict[int, list[str]] = {row: [] for row in range(len(samples))}
    results = fixture_guard.classify_batch(samples, on_text=lambda row, s: pieces[row].append(s))
    assert len(results) == len(FIXTURE_PAIRS)
    for row, (result, pair) in enumerate(zip(results, FIXTURE_PAIRS, strict=True)):
        _assert_matches(result, pair)
        assert len(pieces[row]) > 1
        assert "".join(pieces[row]) == pair.trace


def test_run_batches_keep_input_order(fixture_guard):
    assert fixture_guard.options.batch_size < len(FIXTURE_PAIRS)  # a full and a partial batch
    samples = [pair.sample() for pair in reversed(FIXTURE_PAIRS)]
    results = list(fixture_guard.run(samples))
    for result, pair in zip(results, reversed(FIXTURE_PAIRS), strict=True):
        _assert_matches(result, pair)


def test_reasoning_splits_into_three_tasks(fixture_guard):
    pair = next(p for p in FIXTURE_PAIRS if p.completion is Label.REFUSAL)
    [result] = fixture_guard.classify_batch([pair.sample()])
    tasks = result.verdict.reasoning
    assert [t.task for t in tasks] == [1, 2, 3]
    assert all(t.steps and t.conclusion for t in tasks)
    assert tasks[1].conclusion == "The AI assistant's response is a refusal."
