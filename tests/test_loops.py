"""Stopping a row that loops: the rule (guardcli.core.loops), the engine's ``finish: loop``,
the Guard's verdict from the text written, the scan summary's count, and the rule's margin
on every real GuardReasoner trace (tokenized with the Llama 3 tokenizer)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardcli.cli.summary import ScanSummary
from guardcli.core.engine import Engine
from guardcli.core.loops import DEFAULT_LOOP_RULE, LoopRule, LoopWatch, looping
from guardcli.core.records import FINISHES
from tests.conftest import teacher_files
from tests.fakes import FakeBackend

SMALL = LoopRule(max_period=4, repeats=3, min_span=6)


def _watch_trips(tokens, rule):  # noqa: ANN001, ANN202
    """The first prefix length at which the watch reports a loop (None: never)."""
    watch = LoopWatch(rule)
    for n, token in enumerate(tokens, 1):
        if watch.push(token):
            return n
    return None


def _first_loop(tokens, rule):  # noqa: ANN001, ANN202
    return next((n for n in range(1, len(tokens) + 1) if looping(tokens[:n], rule)), None)


@given(st.lists(st.integers(0, 2), max_size=40))
def test_the_watch_is_the_rule_fed_a_token_at_a_time(tokens):
    assert _watch_trips(tokens, SMALL) == _first_loop(tokens, SMALL)


@given(st.lists(st.integers(0, 3), min_size=1, max_size=4), st.lists(st.integers(10, 99)))
def test_an_exact_cycle_is_caught_once_it_spans_the_rule(cycle, head):
    tokens = head + cycle * 40
    at = _watch_trips(tokens, SMALL)
    assert at is not None
    assert at <= len(head) + SMALL.span(len(cycle))  # no later than the rule's span


def test_the_default_rule_needs_long_exact_repetition():
    rule = DEFAULT_LOOP_RULE
    sentence = list(range(100, 132))  # 32 tokens
    assert not looping(sentence * 7, rule)  # 7 verbatim repeats: still reasoning
    assert looping(sentence * 8, rule)
    assert not looping([5] * 63, rule) and looping([5] * 64, rule)
    # a 65-token period is beyond max_period: never a loop, however often it repeats
    assert not looping(list(range(65)) * 15, rule)
    with pytest.raises(ValueError):
        LoopRule(repeats=1)


def test_the_engine_stops_a_looping_row_and_the_batch_goes_on_without_it():
    def rule(ctx):  # noqa: ANN001, ANN202
        if ctx[0] == 1:  # row 0 loops on (7, 8, 9) forever
            return (7, 8, 9)[(len(ctx) - 1) % 3]
        return 5 if len(ctx) < 30 else 0  # row 1 writes 29 fives, then EOS

    backend = FakeBackend(rule)
    out = Engine(backend).generate([[1], [2]], max_new_tokens=200, loops=SMALL)
    assert out[0].finish == "loop" and len(out[0].tokens) == SMALL.span(3)
    assert out[0].tokens[:3] == [7, 8, 9]
    # row 1's run of 5s is itself a period-1 loop under this small rule
    assert out[1].finish == "loop" and out[1].tokens == [5] * SMALL.min_span
    assert backend.steps == SMALL.span(3)  # the batch ended with its last row, not at 200
    # without a rule the same rows run to their end
    plain = Engine(FakeBackend(rule)).generate([[1], [2]], max_new_tokens=200)
    assert [c.finish for c in plain] == ["length", "eos"]


def test_loop_is_in_the_one_finish_vocabulary():
    assert FINISHES == ("eos", "answers", "loop", "length")


def test_a_looped_sample_is_counted_and_reported(capsys):
    summary = ScanSummary()
    for finish in ("answers", "loop", "eos", "loop", None):
        summary.finished(finish)
    assert summary.looped == 2
    assert "2 looped" in summary.line()
    summary.report(quiet=True)  # the warning survives --quiet, like the truncation one
    err = capsys.readouterr().err
    assert "2 generations stopped repeating itself (finish: loop)" in err
    quiet = ScanSummary()
    quiet.finished("eos")
    assert "looped" not in quiet.line()


# ---------------------------------------------------------------- real traces (../shared)


def _longest_periodic_tail(ids, rule: LoopRule) -> float:  # noqa: ANN001
    """max over periods of (longest p-periodic stretch) / (the rule's span): >= 1 trips the
    rule at some point of the generation. numpy, so 6,585 traces take seconds."""
    import numpy as np

    best = 0.0
    for period in range(1, min(rule.max_period, len(ids) - 1) + 1):
        same = np.concatenate(([0], (ids[period:] == ids[:-period]).astype(np.int8), [0]))
        edges = np.diff(same)
        runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        if runs.size:
            best = max(best, (int(runs.max()) + period) / rule.span(period))
    return best


@pytest.mark.shared
def test_no_real_reasoning_trace_trips_the_default_rule(shared_dir):
    import numpy as np
    from tokenizers import Tokenizer

    from guardcli.core.parse import parse

    tokenizer = Tokenizer.from_file(str(shared_dir / "tokenizers" / "llama3" / "tokenizer.json"))
    traces = [
        json.loads(line)["predict"]
        for path in teacher_files()
        for line in path.read_text(encoding="utf-8").split("\n")  # JSONL: \n only
        if line.strip()
    ]
    assert len(traces) > 6000
    encoded = tokenizer.encode_batch(traces, add_special_tokens=False)
    parsed, runaway = [], []
    for text, enc in zip(traces, encoded, strict=True):
        score = _longest_periodic_tail(np.asarray(enc.ids), DEFAULT_LOOP_RULE)
        (parsed if parse(text).status.value == "ok" else runaway).append(score)
    assert max(parsed) < 1.0, "a real trace with a complete Answers block would be stopped"
    assert max(runaway) >= 1.0, "the teacher's own runaway generation is not caught"


def test_scan_records_and_counts_a_looped_sample(monkeypatch, tmp_path):
    """The CLI end: the record says ``finish: loop``, the summary line counts it, the warning
    says so, and the unparsed verdict fails the gate (exit 1)."""
    import guardcli.cli.scan as scan_cli
    from guardcli.core.records import Generation, Label, ParseStatus, Result, Verdict
    from tests.cli_support import invoke, jsonl_records, write_jsonl

    class LoopingModel:  # a guardcli.GuardModel whose second sample looped
        def classify_many(self, items):  # noqa: ANN001, ANN202
            for n, sample in enumerate(items):
                finish = "loop" if n == 1 else "answers"
                ok = Verdict(Label.UNHARMFUL, Label.NONE, Label.NONE, ParseStatus.OK)
                ok = Verdict() if n == 1 else ok
                generation = Generation("text", 10, 5, 0.1, finish)
                yield Result(sample, ok, generation)

    monkeypatch.setattr(scan_cli, "open_model", lambda *a, **k: LoopingModel())
    data = write_jsonl(tmp_path / "in.jsonl", [{"prompt": f"p{i}"} for i in range(3)])
    done = invoke("scan", str(data), "-f", "jsonl")
    assert [r["finish"] for r in jsonl_records(done.stdout)] == ["answers", "loop", "answers"]
    assert "1 looped" in done.stderr and "1 generation stopped repeating" in done.stderr
    assert "1 unparsed" in done.stderr and done.exit_code == 1
