"""The one judging path (labelled_file -> judge_file -> score_benchmark, as ``guardcli eval``
and export.eval.evaluate run it) over the fixture bundle: real generations, scored against known
gold."""

from __future__ import annotations

import json

import pytest

from guardcli.core.prompt import INSTRUCTION, build_input, format_pair
from guardcli.core.records import Label
from guardcli.core.tasks import Task
from guardcli.eval.judge import judge_file, labelled_file, pick
from guardcli.eval.metrics import predicted, score
from guardcli.eval.scoring import Mode, score_benchmark
from testkit.pairs import FIXTURE_PAIRS


def _benchmark(path, pairs, gold_of):
    rows = [
        {
            "instruction": INSTRUCTION,
            "input": format_pair(p.prompt, p.response),
            "output": gold_of(p),
        }
        for p in pairs
    ]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def _judge(guard, path, seen=None, **read):
    """The file read, and its honest score, the way export.eval.evaluate gets them."""
    found = labelled_file(path, **read)
    on_result = None if seen is None else lambda item, result: seen.append(result)
    judged = judge_file(guard, found, on_result=on_result)
    scored = score_benchmark(
        judged, name=found.name, path=str(path), task=found.task, mode=Mode.HONEST
    )
    return found, scored


def test_pick_is_a_seeded_subset_in_file_order():
    items = list(range(100))
    chosen = pick(items, 10, seed=3)
    assert len(chosen) == 10 and chosen == sorted(chosen)
    assert chosen == pick(items, 10, seed=3)
    assert chosen != pick(items, 10, seed=4)
    assert pick(items, None) == items and pick(items, 500) == items


@pytest.mark.slow
def test_prompt_task_scores_the_fixture_exactly(fixture_guard, tmp_path):
    path = _benchmark(tmp_path / "HarmBenchPrompt.json", FIXTURE_PAIRS, lambda p: p.request.value)
    seen = []
    found, result = _judge(fixture_guard, path, seen)
    assert result.name == "HarmBenchPrompt" and result.task is Task.PROMPT
    s = result.scores
    harmful = sum(p.request is Label.HARMFUL for p in FIXTURE_PAIRS)
    assert (s.tp, s.tn, s.fp, s.fn, s.unparsed) == (harmful, len(FIXTURE_PAIRS) - harmful, 0, 0, 0)
    parse_failures = sum(not r.verdict.parsed for r in seen)
    skipped = len(found.skips) + found.unlabelled
    assert s.f1 == 1.0 and parse_failures == 0 and skipped == 0
    assert len(seen) == len(FIXTURE_PAIRS)
    assert result.mean_output_tokens == sum(r.generation.output_tokens for r in seen) / len(seen)


@pytest.mark.slow
def test_wrong_gold_becomes_errors_and_unlabelled_items_are_skipped(fixture_guard, tmp_path):
    with_response = [p for p in FIXTURE_PAIRS if p.response is not None]
    flipped = {Label.REFUSAL: "compliance", Label.COMPLIANCE: "refusal"}
    path = _benchmark(tmp_path / "refusal.json", with_response, lambda p: flipped[p.completion])
    _found, result = _judge(fixture_guard, path, task="refusal", limit=3)
    s = result.scores
    assert s.n == 3 and s.tp == 0 and s.tn == 0 and s.fp + s.fn == 3
    assert result.task is Task.REFUSAL and result.name == "refusal"


def test_labelled_file_reads_the_whole_file_before_any_model_time(tmp_path):
    rows = [
        {"id": "a", "prompt": "p1", "response": "r1", "response_label": "harmful"},
        {"id": "b", "prompt": "p2", "response": "r2", "request": "harmful"},  # no task-3 label
        {"id": "c", "prompt": "p3", "response_label": "harmful"},  # labels a missing response
        {"id": "d", "prompt": "p4", "response": "r4", "response_label": "unharmful"},
    ]
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    found = labelled_file(path, task="response")
    assert found.name == "chats" and found.task is Task.RESPONSE
    assert [i.sample.id for i in found.items] == ["a", "d"]
    assert found.unlabelled == 1 and len(found.skips) == 1 and "has none" in found.skips[0].reason
    assert [i.sample.id for i in labelled_file(path, task="response", limit=1).items] == ["d"]


@pytest.mark.slow
def test_judge_file_reuses_done_records_and_scores_what_the_verdicts_say(fixture_guard, tmp_path):
    path = _benchmark(tmp_path / "HarmBenchPrompt.json", FIXTURE_PAIRS, lambda p: p.request.value)
    found = labelled_file(path)
    first, rest = found.items[0], found.items[1:]
    fake = {
        "prompt": build_input(first.sample.prompt, first.sample.response),
        "label": first.gold.request.value,
        "predict": "no answers here",
    }
    ran = []
    judged = judge_file(
        fixture_guard, found, done={first.sample.id: fake}, on_result=lambda i, r: ran.append(i)
    )
    assert ran == list(rest)  # the done item was not run again ...
    assert judged[0].predict == "no answers here"  # ... its recorded output is scored
    honest = score_benchmark(judged, name="h", path="", task=Task.PROMPT, mode=Mode.HONEST)
    assert honest.unparsed == 1 and honest.items == len(FIXTURE_PAIRS)
    results = []
    fresh = judge_file(fixture_guard, found, on_result=lambda i, r: results.append((i, r)))
    from_judged = score_benchmark(fresh, name="h", path="", task=Task.PROMPT, mode=Mode.HONEST)
    # Scoring the recorded outputs gives what the verdicts themselves say.
    pairs = [(i.gold.request, predicted(r.verdict, Task.PROMPT)) for i, r in results]
    assert from_judged.scores == score(pairs, Task.PROMPT)
    assert from_judged.mean_output_tokens > 0 and from_judged.mean_latency_s > 0
