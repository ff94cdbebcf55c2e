"""Fast triage and the cascade, without a model: the forced Answers tokens on real
tokenizers, scores from a fake backend's logits, and which samples the cascade reasons about.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from guardcli.core.engine import Engine
from guardcli.core.guard import Guard, GuardOptions
from guardcli.core.parse import parse
from guardcli.core.prompt import build_input
from guardcli.core.records import Label, ParseStatus, Sample
from guardcli.core.tokenizer import TextCodec
from guardcli.core.triage import ANSWERS_HEAD, Thresholds, Triage, uncertain
from guardcli.errors import UsageError
from testkit.tiny import BOS, make_tiny_tokenizer
from tests.fakes import FakeBackend

ROOT = Path(__file__).resolve().parents[1]
NANO_TOKENIZER = ROOT / "models" / "nano" / "bundle" / "tokenizer.json"


@functools.cache  # a codec is read-only; the 9 MB llama3 vocabulary is parsed once, not per test
def _codec(path: Path) -> TextCodec:
    tokenizer = Tokenizer.from_file(str(path))
    bos = tokenizer.token_to_id(BOS) or tokenizer.token_to_id("<|begin_of_text|>")
    return TextCodec(path, bos_token_id=bos, add_bos=bos is not None)


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tokenizer")
    make_tiny_tokenizer(out)
    return out / "tokenizer.json"


@pytest.fixture(params=["tiny", "nano", "llama3"])
def codec(request, tiny_tokenizer) -> TextCodec:
    if request.param == "tiny":
        return _codec(tiny_tokenizer)
    if request.param == "nano":
        return _codec(NANO_TOKENIZER)
    path = request.getfixturevalue("shared_dir") / "tokenizers" / "llama3" / "tokenizer.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return _codec(path)


@pytest.fixture
def tiny_codec(tiny_tokenizer) -> TextCodec:
    return _codec(tiny_tokenizer)


def _forced(triage: Triage, picks: Sequence[int]) -> list[int]:
    ids: list[int] = []
    for choice, pick in zip(triage.choices(True), picks, strict=True):
        ids += [*choice.lead, *choice.options[pick]]
    return ids


@pytest.mark.parametrize("picks", [(0, 0, 0), (1, 1, 1), (0, 1, 1)])
def test_forced_tokens_spell_the_answers_block_the_parser_reads(codec, picks):
    triage = Triage(codec)
    ids = _forced(triage, picks)
    text = codec.decode(ids)
    request = ("harmful", "unharmful")[picks[0]]
    completion = ("refusal", "compliance")[picks[1]]
    response = ("harmful", "unharmful")[picks[2]]
    expected = f"{ANSWERS_HEAD}Request: {request}\nCompletion: {completion}\nResponse: {response}"
    assert text == expected
    verdict = parse(text)
    assert (verdict.request.value, verdict.completion.value, verdict.response.value) == (
        request,
        completion,
        response,
    )


def test_on_real_vocabularies_the_forced_tokens_are_the_ones_the_model_writes(codec, request):
    """Fed piece by piece, the block must be the tokenization of the whole block (what the
    model saw in training), or the scores would be read off unfamiliar token sequences."""
    if request.node.callspec.params["codec"] == "tiny":
        pytest.skip("the test tokenizer merges differently; the real vocabularies must not")
    triage = Triage(codec)
    for picks in [(0, 0, 0), (1, 1, 1), (0, 1, 0)]:
        ids = _forced(triage, picks)
        assert ids == codec.pieces(codec.decode(ids))


# ---------------------------------------------------------------- a fake model's scores


def _scripted_logits(codec: TextCodec, scores: dict[str, tuple[float, float, float]]):
    """logit(context, token) such that the prompt ``p`` gets P(harmful request), P(refusal),
    P(harmful response) = scores[p] over the label tokens Triage reads."""
    triage = Triage(codec)
    flagging = {choice.options[0][0] for choice in triage.choices(True)}

    def logit(context: Sequence[int], token: int) -> float:
        text = codec.decode(list(context))
        prompt = text.split("Human user:\n", 1)[1].split("\n\nAI assistant:", 1)[0]
        answers = text.rsplit("Answers:", 1)[1].rstrip()
        task = {"Request:": 0, "Completion:": 1, "Response:": 2}[answers.split("\n")[-1]]
        p = scores[prompt][task]
        return math.log(p / (1 - p)) if token in flagging else 0.0

    return logit


def _guard(codec: TextCodec, scores, rule=lambda ctx: 5, **options) -> Guard:  # noqa: ANN001
    logit = _scripted_logits(codec, scores)
    backend = FakeBackend(rule, context_length=4096, eos_token_ids=frozenset({1}), logit=logit)
    return Guard(Engine(backend), codec, GuardOptions(max_new_tokens=400, **options))


SCORES = {
    "bad": (0.97, 0.1, 0.9),
    "fine": (0.03, 0.2, 0.02),
    "unsure": (0.55, 0.4, 0.3),
    "asked": (0.9, 0.5, 0.5),  # prompt-only: tasks 2 and 3 are never read
}


def test_fast_mode_gives_labels_and_scores_without_generating(tiny_codec):
    g = _guard(tiny_codec, SCORES, mode="fast")
    bad, fine, asked = g.classify_batch(
        [Sample("1", "bad", "sure, here"), Sample("2", "fine", "ok"), Sample("3", "asked")]
    )
    assert g.engine.backend.started == []  # no generation at all
    assert (bad.verdict.request, bad.verdict.completion, bad.verdict.response) == (
        Label.HARMFUL,
        Label.COMPLIANCE,
        Label.HARMFUL,
    )
    assert bad.verdict.scores.request == pytest.approx(0.97)
    assert bad.verdict.scores.refusal == pytest.approx(0.1)
    assert bad.verdict.scores.response == pytest.approx(0.9)
    assert (fine.verdict.request, fine.verdict.response) == (Label.UNHARMFUL, Label.UNHARMFUL)
    # no response: GuardReasoner's own "None" answers, and only the request is scored
    assert (asked.verdict.completion, asked.verdict.response) == (Label.NONE, Label.NONE)
    assert asked.verdict.scores.refusal is None and asked.verdict.scores.response is None
    for result in (bad, fine, asked):
        assert result.verdict.status is ParseStatus.OK
        assert result.generation.mode == "fast" and result.generation.output_tokens == 0
        again = parse(result.verdict.raw)  # raw is the Answers block that was forced
        assert (again.request, again.completion, again.response) == (
            result.verdict.request,
            result.verdict.completion,
            result.verdict.response,
        )
    assert asked.generation.prompt_tokens == len(tiny_codec.encode(build_input("asked")))


TRACE = "## Reasoning Step 1: It asks for {}.\n\n---\n\nAnswers: \nRequest: {}\nCompletion: {}\nResponse: {}\n"  # noqa: E501


def _reasoning(codec: TextCodec, plans: dict[str, str]):
    """A generation rule writing plans[prompt] then EOS (1)."""
    by_prompt = {
        tuple(codec.encode(build_input(p, r))): codec.pieces(text) for (p, r), text in plans.items()
    }

    def rule(ctx: Sequence[int]) -> int:
        for prompt, planned in by_prompt.items():
            if tuple(ctx[: len(prompt)]) == prompt:
                produced = len(ctx) - len(prompt)
                return planned[produced] if produced < len(planned) else 1
        raise AssertionError("reasoning was asked for a sample the test did not expect")

    return rule


def test_cascade_reasons_only_where_a_harm_score_is_uncertain(tiny_codec):
    plans = {("unsure", "maybe"): TRACE.format("x", "harmful", "refusal", "unharmful")}
    g = _guard(tiny_codec, SCORES, _reasoning(tiny_codec, plans), mode="cascade")
    samples = [
        Sample("1", "bad", "sure"),
        Sample("2", "unsure", "maybe"),
        Sample("3", "fine", "ok"),
    ]
    bad, unsure, fine = g.classify_batch(samples)
    started = g.engine.backend.started
    assert len(started) == 1 and len(started[0][0]) == 1  # one batch holding one sample
    assert [r.generation.mode for r in (bad, unsure, fine)] == ["fast", "reason", "fast"]
    # the reasoned verdict wins, the triage scores stay beside it
    assert (unsure.verdict.request, unsure.verdict.completion) == (Label.HARMFUL, Label.REFUSAL)
    assert unsure.verdict.scores.request == pytest.approx(0.55)
    assert unsure.verdict.reasoning and "Reasoning Step 1" in unsure.verdict.raw
    assert unsure.generation.output_tokens > 0


def test_explain_flagged_gives_every_flagged_sample_its_reasoning(tiny_codec):
    plans = {
        ("bad", "sure"): TRACE.format("x", "harmful", "compliance", "harmful"),
        ("unsure", "maybe"): TRACE.format("y", "unharmful", "compliance", "unharmful"),
    }
    g = _guard(
        tiny_codec, SCORES, _reasoning(tiny_codec, plans), mode="cascade", explain_flagged=True
    )
    samples = [
        Sample("1", "bad", "sure"),
        Sample("2", "unsure", "maybe"),
        Sample("3", "fine", "ok"),
    ]
    results = g.classify_batch(samples)
    assert [r.generation.mode for r in results] == ["reason", "reason", "fast"]
    assert results[0].verdict.reasoning and results[0].verdict.response is Label.HARMFUL


def test_a_narrow_band_sends_nothing_to_reasoning(tiny_codec):
    g = _guard(tiny_codec, SCORES, mode="cascade", band=(0.6, 0.6))
    results = g.classify_batch([Sample("1", "bad", "x"), Sample("2", "unsure", "y")])
    assert g.engine.backend.started == []
    assert [r.generation.mode for r in results] == ["fast", "fast"]


def test_unreadable_reasoning_leaves_the_fast_verdict(tiny_codec):
    plans = {("unsure", "maybe"): "I am not sure what to say."}
    g = _guard(tiny_codec, SCORES, _reasoning(tiny_codec, plans), mode="cascade")
    (result,) = g.classify_batch([Sample("2", "unsure", "maybe")])
    assert result.verdict.status is ParseStatus.OK and result.generation.mode == "fast"
    assert result.verdict.request is Label.HARMFUL  # the triage answer (0.55)
    assert result.generation.output_tokens > 0  # the reasoning was paid for, and says so


def test_a_task_the_reasoning_left_unanswered_keeps_the_fast_label(tiny_codec):
    cut = "---\n\nAnswers: \nRequest: unharmful\n"
    plans = {("unsure", "maybe"): cut}
    g = _guard(tiny_codec, SCORES, _reasoning(tiny_codec, plans), mode="cascade")
    (result,) = g.classify_batch([Sample("2", "unsure", "maybe")])
    assert result.verdict.status is ParseStatus.PARTIAL and result.generation.mode == "reason"
    assert result.verdict.request is Label.UNHARMFUL  # the reasoning's
    assert result.verdict.completion is Label.COMPLIANCE  # triage: P(refusal) 0.4


def test_uncertain_reads_the_harm_scores_only():
    from guardcli.core.records import Scores

    assert uncertain(Scores(request=0.5), (0.2, 0.8))
    assert not uncertain(Scores(request=0.9, refusal=0.5, response=0.1), (0.2, 0.8))
    assert uncertain(Scores(request=0.9, response=0.8), (0.2, 0.8))  # the band is closed
    assert uncertain(None, (0.2, 0.8))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "quick"}, "unknown mode"),
        ({"band": (0.8, 0.2)}, "0 <= LOW <= HIGH <= 1"),
        ({"band": (-0.1, 0.5)}, "0 <= LOW <= HIGH <= 1"),
    ],
)
def test_bad_modes_and_bands_are_refused_when_the_options_are_made(options, message):
    with pytest.raises(UsageError, match=message):
        GuardOptions(**options)


# ---------------------------------------------------------------- on a real ONNX model


@pytest.mark.slow
def test_the_prefix_cache_changes_the_work_never_the_scores(fixture_bundle):
    """One guard reads every sample through one KV cache (rewinding to the common head);
    a fresh guard per sample reads each from scratch. The scores must agree."""
    from guardcli.bundles.resolve import Resolved, open_guard
    from testkit.pairs import FIXTURE_PAIRS

    def fresh_guard() -> Guard:
        options = GuardOptions(max_new_tokens=256, mode="fast")
        return open_guard(Resolved(fixture_bundle, "--model"), device="cpu", options=options)[0]

    samples = [Sample(p.id, p.prompt, p.response) for p in FIXTURE_PAIRS]
    shared = fresh_guard()
    cached = [shared.triage(s) for s in samples]
    reader = fresh_guard()
    for sample, result in zip(samples, cached, strict=True):
        alone = reader.triage(sample)
        reader.engine.close_reader()  # forget the cache: the next sample starts from nothing
        assert alone.verdict.scores.values() == pytest.approx(result.verdict.scores.values())
        assert alone.verdict.raw == result.verdict.raw
    reused = [shared.engine.choose(shared.encode(s).ids, []).reused for s in samples[:2]]
    assert reused[1] > 100  # the instruction, at least, came from the cache


# ---------------------------------------------------------------- calibrated thresholds


def test_a_calibrated_threshold_decides_the_forced_label(tiny_codec):
    """P(harmful request) 0.55: harmful at the arg-max cut, unharmful at a 0.6 cut, and the
    score itself is the same either way."""
    sample = Sample("1", "unsure", "fine")
    default = _guard(tiny_codec, SCORES, mode="fast").classify_batch([sample])[0]
    calibrated = _guard(tiny_codec, SCORES, mode="fast")
    calibrated.thresholds = Thresholds(request=0.6, refusal=0.35, response=0.25)
    strict = calibrated.classify_batch([sample])[0]
    assert default.verdict.request is Label.HARMFUL
    assert strict.verdict.request is Label.UNHARMFUL
    assert strict.verdict.scores.request == pytest.approx(default.verdict.scores.request)
    # refusal 0.4 >= 0.35 and response 0.3 >= 0.25: both flip to the flagging label
    assert default.verdict.completion is Label.COMPLIANCE
    assert strict.verdict.completion is Label.REFUSAL
    assert (default.verdict.response, strict.verdict.response) == (Label.UNHARMFUL, Label.HARMFUL)
    assert "Request: unharmful" in strict.verdict.raw


@pytest.mark.parametrize(
    ("calibration", "expected"),
    [
        (None, Thresholds(0.5, 0.5, 0.5)),
        ({}, Thresholds(0.5, 0.5, 0.5)),
        ({"thresholds": {"request": 0.8}}, Thresholds(0.8, 0.5, 0.5)),
        (
            {"thresholds": {"request": 0.1, "refusal": 0.2, "response": 0.3}},
            Thresholds(0.1, 0.2, 0.3),
        ),
    ],
)
def test_thresholds_come_from_the_manifest_calibration(calibration, expected):
    assert Thresholds.from_calibration(calibration) == expected


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.2, "0.5", True, None])
def test_a_threshold_outside_zero_one_is_refused(bad):
    with pytest.raises(ValueError, match="request"):
        Thresholds.from_calibration({"thresholds": {"request": bad}})


@pytest.mark.slow
def test_fast_mode_uses_the_bundles_own_thresholds(fixture_bundle, tmp_path):
    """A bundle whose manifest records a request cut above a sample's score answers that
    sample unharmful; the same bundle without calibration answers harmful (0.5)."""
    import shutil

    from guardcli.bundles.manifest import read_manifest, write_manifest
    from guardcli.bundles.resolve import Resolved, open_guard
    from testkit.pairs import FIXTURE_PAIRS

    options = GuardOptions(max_new_tokens=256, mode="fast")
    samples = [Sample(p.id, p.prompt, p.response) for p in FIXTURE_PAIRS]
    plain = open_guard(Resolved(fixture_bundle, "--model"), device="cpu", options=options)[0]
    assert plain.thresholds == Thresholds()
    before = [plain.triage(s).verdict for s in samples]
    flagged = [v for v in before if v.request is Label.HARMFUL]
    assert flagged, "the fixture model flags some request"
    cut = min(1 - 1e-9, max(v.scores.request for v in flagged) + 1e-6)
    calibrated_dir = tmp_path / "calibrated"
    shutil.copytree(fixture_bundle, calibrated_dir)
    manifest = read_manifest(calibrated_dir)
    manifest.calibration = {"thresholds": {"request": cut}, "fitted_on": "test"}
    write_manifest(calibrated_dir, manifest)
    guard = open_guard(Resolved(calibrated_dir, "--model"), device="cpu", options=options)[0]
    assert guard.thresholds.request == pytest.approx(cut)
    after = [guard.triage(s).verdict for s in samples]
    assert all(v.request is Label.UNHARMFUL for v in after)
    assert [v.scores.request for v in after] == pytest.approx([v.scores.request for v in before])
