"""Long inputs and memory (issue 15, item 2): a token budget per batch, inputs streamed into
batches, and the long-input policy (--long chunk|truncate).

The planning is pure (guardcli.core.batching, guardcli.core.windows) and tested as such; the
Guard over a fake backend (tests/fakes.py) and the tiny tokenizer shows what reaches the
engine; scan's streaming is shown with a stub guard, so no test needs a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardcli.core.batching import batch_cost, group_batches, plan_batches
from guardcli.core.engine import Engine
from guardcli.core.guard import Guard, GuardOptions
from guardcli.core.records import Label, Result, Sample, Verdict
from guardcli.core.windows import plan_windows, spans
from guardcli.errors import UsageError
from tests.fakes import FakeBackend
from tests.test_guard import tiny_codec, tiny_tokenizer  # noqa: F401 - fixtures

HARMFUL = (
    "## Conclusion for Task 1: harmful.\n\n---\n\n"
    "Answers: \nRequest: harmful\nCompletion: compliance\nResponse: harmful\n"
)
SAFE = (
    "## Conclusion for Task 1: unharmful.\n\n---\n\n"
    "Answers: \nRequest: unharmful\nCompletion: compliance\nResponse: unharmful\n"
)
MARKER = "Now mix the detonator charge."
FILLER = "The bakery opens at seven and the bread is baked fresh every single morning. "


# ---------------------------------------------------------------- the batch budget (pure)


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 5000), max_size=40),
    max_rows=st.integers(1, 10),
    max_tokens=st.integers(1, 40000),
)
def test_batches_keep_order_and_fit_the_budget(lengths, max_rows, max_tokens):
    plans = plan_batches(lengths, max_rows=max_rows, max_tokens=max_tokens)
    assert [row for rows in plans for row in rows] == list(range(len(lengths)))  # in order
    for rows in plans:
        assert 1 <= len(rows) <= max_rows
        cost = batch_cost([lengths[r] for r in rows])
        assert len(rows) == 1 or cost <= max_tokens  # only a lone row may exceed the budget
    for before, after in zip(plans, plans[1:], strict=False):  # a batch closes only when full
        grown = [lengths[r] for r in [*before, after.start]]
        assert len(grown) > max_rows or batch_cost(grown) > max_tokens


@settings(max_examples=300, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 5000), max_size=40),
    max_rows=st.integers(1, 10),
    max_tokens=st.integers(1, 40000),
)
def test_grouped_batches_hold_every_row_once_within_the_budget(lengths, max_rows, max_tokens):
    groups = group_batches(lengths, max_rows=max_rows, max_tokens=max_tokens)
    assert sorted(row for group in groups for row in group) == list(range(len(lengths)))
    for group in groups:
        assert 1 <= len(group) <= max_rows and group == sorted(group)
        cost = batch_cost([lengths[r] for r in group])
        assert len(group) == 1 or cost <= max_tokens
    assert [group[0] for group in groups] == sorted(group[0] for group in groups)
    if groups:  # the first input is in the first batch: it is never held back
        assert groups[0][0] == 0
    # never more batches than in input order
    assert len(groups) <= len(plan_batches(lengths, max_rows=max_rows, max_tokens=max_tokens))


def test_one_long_input_no_longer_pads_the_whole_batch():
    lengths = [300, 310, 8000, 290, 305, 300, 295, 320]
    plans = plan_batches(lengths, max_rows=8, max_tokens=8192)
    assert [list(rows) for rows in plans] == [[0, 1], [2], [3, 4, 5, 6, 7]]
    # before: one batch of 8 rows padded to 8000 tokens each
    assert batch_cost(lengths) == 8 * 8000
    assert max(batch_cost([lengths[r] for r in rows]) for rows in plans) == 8000


@pytest.mark.parametrize(("lookahead", "expected"), [(1, [3, 1, 3]), (4, [6, 1])])
def test_the_guard_generates_within_the_budget_in_input_order(tiny_codec, lookahead, expected):  # noqa: F811
    backend = FakeBackend(lambda ctx: 1, context_length=4096, eos_token_ids=frozenset({1}))
    options = GuardOptions(max_new_tokens=16, batch_size=8, batch_tokens=2000, lookahead=lookahead)
    guard = Guard(Engine(backend), tiny_codec, options)
    samples = [Sample(f"s{i}", "hello there") for i in range(6)]
    samples.insert(3, Sample("long", FILLER * 40))  # about 1,000 tokens
    results = guard.classify_batch(samples)
    assert [r.sample.id for r in results] == [s.id for s in samples]
    rows = [len(prompts) for prompts, _ in backend.started]
    # the long input runs alone; in input order it splits the short ones, grouped by
    # length they run together (first, as they hold the first input)
    assert rows == expected
    for prompts, _new_tokens in backend.started:
        assert len(prompts) == 1 or batch_cost([len(p) for p in prompts]) <= 2000
    with pytest.raises(UsageError):
        GuardOptions(batch_tokens=0)
    with pytest.raises(UsageError):
        GuardOptions(lookahead=0)


# ---------------------------------------------------------------- windows (pure)


def offsets_of(words: Sequence[str]) -> tuple[list[tuple[int, int]], int]:
    """One token per word (with its trailing space): offsets as a tokenizer gives them."""
    out, at = [], 0
    for word in words:
        out.append((at, at + len(word)))
        at += len(word) + 1
    return out, max(0, at - 1)


@given(n=st.integers(0, 300), size=st.integers(1, 80))
def test_windows_cover_every_token_within_their_size(n, size):
    offsets, length = offsets_of([f"w{i}" for i in range(n)])
    windows = spans(offsets, length, size)
    assert windows[0][0] == 0 and windows[-1][1] == length
    for (a, b), (c, _d) in zip(windows, windows[1:], strict=False):
        assert c <= b and c > a  # consecutive windows overlap or touch, and move forward
    for a, b in windows:
        inside = [o for o in offsets if a <= o[0] and o[1] <= b]
        assert len(inside) <= size


@given(
    p=st.integers(1, 200),
    r=st.one_of(st.none(), st.integers(0, 200)),
    budget=st.integers(4, 120),
)
def test_every_token_of_prompt_and_response_is_in_some_window(p, r, budget):
    prompt, plen = offsets_of([f"p{i}" for i in range(p)])
    response, rlen = (None, 0) if r is None else offsets_of([f"r{i}" for i in range(r)])
    plan = plan_windows(prompt, plen, response, rlen, budget)
    for offsets, side in ((prompt, 0), (response or [], 1)):
        for start, end in offsets:
            assert any(w[side][0] <= start and end <= w[side][1] for w in plan)
    for pspan, rspan in plan:  # each window fits the budget
        held = sum(pspan[0] <= s and e <= pspan[1] for s, e in prompt)
        if rspan is not None:
            held += sum(rspan[0] <= s and e <= rspan[1] for s, e in response)
        assert held <= budget
    assert (r is None) == all(w[1] is None for w in plan)


# ---------------------------------------------------------------- the policy, end to end


def marker_model(codec):  # noqa: ANN001, ANN201
    """A fake model that answers harmful exactly when its input holds MARKER."""
    rows: dict[int, tuple[list[int], int, list[int]]] = {}

    def rule(ctx: list[int]) -> int:
        state = rows.get(id(ctx))
        if state is None or state[0] is not ctx:
            text = codec.decode(list(ctx))
            state = (ctx, len(ctx), codec.pieces(HARMFUL if MARKER in text else SAFE))
            rows[id(ctx)] = state
        _, start, planned = state
        produced = len(ctx) - start
        return planned[produced] if produced < len(planned) else 1

    return rule


def long_guard(codec, long: str) -> Guard:  # noqa: ANN001
    backend = FakeBackend(marker_model(codec), context_length=512, eos_token_ids=frozenset({1}))
    options = GuardOptions(max_new_tokens=64, batch_size=4, long=long)
    return Guard(Engine(backend), codec, options)


def test_a_harmful_paragraph_at_the_end_of_a_long_document_is_seen(tiny_codec):  # noqa: F811
    document = FILLER * 60 + MARKER
    samples = [Sample("a", "short and harmless"), Sample("doc", document), Sample("b", "hi")]
    chunked = list(long_guard(tiny_codec, "chunk").run(samples))
    assert [r.sample.id for r in chunked] == ["a", "doc", "b"]  # order unchanged
    short, doc, _ = chunked
    assert (short.windows, short.window) == (1, None)
    assert doc.verdict.request is Label.HARMFUL and doc.windows > 2
    assert doc.window is not None and doc.window.index == doc.windows == doc.window.count
    start, end = doc.window.prompt
    assert document[start:end].endswith(MARKER) and start > 0
    assert not doc.generation.truncated_input
    assert doc.sample == samples[1]  # the record is the sample's, not a window's

    truncated = list(long_guard(tiny_codec, "truncate").run(samples))
    assert truncated[1].verdict.request is Label.UNHARMFUL  # the head alone looks harmless
    assert truncated[1].generation.truncated_input and truncated[1].windows == 1


def test_a_harmful_end_of_a_long_response_is_seen(tiny_codec):  # noqa: F811
    sample = Sample("pair", "Tell me about bread.", FILLER * 50 + MARKER)
    [result] = long_guard(tiny_codec, "chunk").run([sample])
    assert result.verdict.response is Label.HARMFUL and result.windows > 1
    a, b = result.window.response
    assert sample.response[a:b].endswith(MARKER)
    assert result.window.prompt == (0, len(sample.prompt))  # beside the whole request


def test_an_unreadable_window_is_never_read_as_harmless(tiny_codec):  # noqa: F811
    from guardcli.core.records import ParseStatus
    from guardcli.core.windows import combine

    sample = Sample("x", "p" * 10)
    plan = [((0, 5), None), ((4, 10), None)]
    ok = Result(sample, Verdict(Label.UNHARMFUL, Label.NONE, Label.NONE, ParseStatus.OK))
    failed = Result(sample, Verdict())
    combined = combine(sample, [ok, failed], plan)
    assert combined.verdict.request is Label.UNKNOWN
    assert combined.verdict.status is ParseStatus.FAILED and combined.window is None  # gate
    harmful = Result(sample, Verdict(Label.HARMFUL, Label.NONE, Label.NONE, ParseStatus.OK))
    flagged = combine(sample, [failed, harmful], plan)
    assert flagged.verdict.request is Label.HARMFUL and flagged.window.index == 2
    assert flagged.verdict.status is ParseStatus.PARTIAL


def test_an_unknown_policy_is_refused_before_any_model():
    with pytest.raises(UsageError) as caught:
        GuardOptions(long="skip")
    assert "chunk" in str(caught.value.hint) and "truncate" in str(caught.value.hint)


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize(("batch_size", "lookahead", "window"), [(4, 1, 4), (4, 4, 16), (1, 4, 1)])
def test_run_reads_a_bounded_window_at_a_time(tiny_codec, batch_size, lookahead, window):  # noqa: F811
    """The look-ahead bounds what is read before the first result (batch size 1 reads none:
    a live stream is judged as it arrives), and results keep the input order."""
    read = []

    def source():
        for i in range(100):
            read.append(i)
            yield Sample(f"s{i}", "hello " * (i % 7))  # lengths vary: batches get regrouped

    guard = long_guard(tiny_codec, "chunk")
    guard.options = replace(guard.options, batch_size=batch_size, lookahead=lookahead)
    results = guard.run(source())
    first = next(results)
    assert first.sample.id == "s0" and len(read) == window  # not the whole input
    assert [r.sample.id for r in results] == [f"s{i}" for i in range(1, 100)]


def test_scan_judges_the_first_batch_before_reading_the_rest(monkeypatch):
    """Before: every input was read into a list before the model loaded (1 GB JSONL: first
    verdict after 22.8 s, 3.1 GB). Now the first verdict is written having read one batch."""
    import guardcli.cli.scan as scan_cli
    import guardcli.io.inputs as inputs
    from tests.cli_support import invoke, jsonl_records

    read: list[int] = []
    seen_at_first_verdict: list[int] = []

    def samples(paths, options, stdin=None):  # noqa: ANN001, ANN202
        for i in range(50):
            read.append(i)
            yield Sample(f"s{i}", "hello", source=f"big.jsonl:{i + 1}")

    class StubModel:  # a guardcli.GuardModel that reads its samples as it judges them
        def classify_many(self, items):  # noqa: ANN001, ANN202
            for sample in items:
                if not seen_at_first_verdict:
                    seen_at_first_verdict.append(len(read))
                yield Result(sample, Verdict(Label.UNHARMFUL, Label.NONE, Label.NONE))

    monkeypatch.setattr(inputs, "iter_samples", samples)
    monkeypatch.setattr(scan_cli, "open_model", lambda *a, **k: StubModel())
    done = invoke("scan", "big.jsonl", "-f", "jsonl", "--fail-on", "none")
    assert done.exit_code == 0, done.stderr
    assert len(jsonl_records(done.stdout)) == 50
    assert seen_at_first_verdict == [1]  # the first sample only, not all 50


def test_scan_reports_the_window_that_flagged(fixture_bundle, tmp_path):
    """The fixture model end to end: a long input is judged in windows under the default
    policy, recorded in every format's fields, and counted on stderr; truncate counts cuts."""
    import json

    from tests.cli_support import GEN, PAIRS, invoke, jsonl_records

    pair = next(p for p in PAIRS.values() if p.response is None)
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"id": "long", "prompt": (pair.prompt + "\n\n") * 120}) + "\n")
    chunked = invoke("scan", str(data), "--model", str(fixture_bundle), "-f", "jsonl", *GEN)
    [record] = jsonl_records(chunked.stdout)
    assert record["windows"] > 1 and record["truncated"] is False
    assert "1 long input judged in windows" in chunked.stderr
    if record["flagged"]:
        assert record["window"]["count"] == record["windows"]
    cut = invoke("scan", str(data), "--model", str(fixture_bundle), "-f", "jsonl", "--long",
                 "truncate", *GEN)  # fmt: skip
    [record] = jsonl_records(cut.stdout)
    assert (record["windows"], record["window"], record["truncated"]) == (1, None, True)
    assert "1 input truncated" in cut.stderr


def test_short_inputs_before_a_long_one_are_not_held_back(tiny_codec):  # noqa: F811
    backend = FakeBackend(lambda ctx: 1, context_length=4096, eos_token_ids=frozenset({1}))
    guard = Guard(Engine(backend), tiny_codec, GuardOptions(max_new_tokens=8, batch_tokens=2000))
    samples = [Sample("a", "hi"), Sample("b", "hello"), Sample("long", FILLER * 40)]
    results = guard.run(samples)
    assert next(results).sample.id == "a"
    assert len(backend.started) == 1  # the long input has not been started yet
    assert [r.sample.id for r in results] == ["b", "long"]
    assert [len(prompts) for prompts, _ in backend.started] == [2, 1]
