"""Predictions files: the layouts found under a folder, the task each scores, what is read."""

from __future__ import annotations

import json

import pytest

from guardcli.core.prompt import build_input
from guardcli.core.records import Generation, Label, Result, Verdict
from guardcli.core.tasks import Task
from guardcli.errors import InputError, UsageError
from guardcli.eval.benchmarks import benchmark_of
from guardcli.eval.labelled import Gold, LabelledSample
from guardcli.eval.predictions import PREDICTIONS_NAME, find, judged_of, output_name, read, record
from testkit.pairs import FIXTURE_PAIRS

TRACE = "## Reasoning Step 1: ...\n---\n\nAnswers: \nRequest: harmful\nCompletion: None\n"


def write(path, rows) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def row(label="harmful", predict=TRACE, **extra) -> dict:
    return {"prompt": build_input("p"), "label": label, "predict": predict, **extra}


def test_a_folder_holds_flat_files_and_the_repository_layout(tmp_path):
    flat = write(tmp_path / "HarmBenchPrompt.jsonl", [row()])
    nested = write(tmp_path / "AegisSafetyTest" / PREDICTIONS_NAME, [row()])
    write(tmp_path / "deeper" / "x" / "SimpleSafetyTests.jsonl", [row()])  # not searched
    (tmp_path / "notes.txt").write_text("not predictions")
    assert find([tmp_path]) == [flat, nested]
    assert find([tmp_path, flat]) == [flat, nested]  # each file once
    assert read(nested).name == "AegisSafetyTest" and read(nested).task is Task.PROMPT


def test_a_folder_without_predictions_and_a_missing_path_fail(tmp_path):
    with pytest.raises(UsageError, match="no predictions files"):
        find([tmp_path])
    with pytest.raises(InputError, match="no such file or folder"):
        find([tmp_path / "absent"])


def test_the_task_comes_from_the_option_the_name_or_the_records(tmp_path):
    named = write(tmp_path / "XSTestResponseRefusal.jsonl", [row("refusal")])
    assert read(named).task is Task.REFUSAL
    assert read(named, "response").task is Task.RESPONSE  # --task wins
    own = write(tmp_path / "mychats.jsonl", [row(task="prompt"), row(task="prompt")])
    assert read(own).task is Task.PROMPT and read(own).name == "mychats"
    unknown = write(tmp_path / "other.jsonl", [row()])
    with pytest.raises(InputError, match="cannot tell which task"):
        read(unknown)
    mixed = write(tmp_path / "mixed.jsonl", [row(task="prompt"), row(task="response")])
    with pytest.raises(InputError, match="cannot tell which task"):
        read(mixed)


def test_records_keep_the_raw_label_beside_guardclis_reading(tmp_path):
    path = write(
        tmp_path / "HarmBenchPrompt.jsonl",
        [
            row(output_tokens=120, latency_ms=1500),
            row(label="Harmful!"),  # guardcli refuses it; paper-compat sees it verbatim
            {"prompt": "not a GuardReasoner input", "label": "unharmful", "predict": "x"},
        ],
    )
    found = read(path)
    good, odd, bad = found.judged
    assert (good.gold, good.label, good.output_tokens, good.latency_s) == (
        Label.HARMFUL,
        "harmful",
        120,
        1.5,
    )
    assert odd.gold is None and odd.label == "Harmful!" and "neither a label word" in odd.problem
    assert bad.gold is None and "not a GuardReasoner input" in bad.problem
    assert bad.label == "unharmful" and bad.predict == "x"


def test_a_gold_label_of_another_task_is_no_label(tmp_path):
    block = "Answers: \nRequest: None\nCompletion: None\nResponse: harmful\n"
    judged = judged_of(row(label=block, prompt=build_input("p", "r")), "f:1", Task.PROMPT)
    assert judged.gold is None and "no prompt label" in judged.problem
    judged = judged_of(row(label=block, prompt=build_input("p", "r")), "f:1", Task.RESPONSE)
    assert judged.gold is Label.HARMFUL


def test_bad_lines_are_skips(tmp_path):
    path = tmp_path / "HarmBenchPrompt.jsonl"
    path.write_text(json.dumps(row()) + "\n{not json\n", encoding="utf-8")
    found = read(str(path))
    assert len(found.judged) == 1 and len(found.skips) == 1
    assert found.skips[0].source.endswith(":2")


def test_output_names_read_back_as_the_same_benchmark():
    for name, task in [("HarmBenchResponse", Task.RESPONSE), ("WildGuardTest", Task.REFUSAL)]:
        found = benchmark_of(output_name(name, task))
        assert (found.name, found.task) == (name, task)
    assert output_name("mychats", Task.PROMPT) == "mychats.jsonl"


def test_a_written_record_reads_back_as_what_was_judged():
    pair = FIXTURE_PAIRS[2]
    item = LabelledSample(pair.sample(), Gold(request=pair.request, completion=pair.completion))
    generation = Generation(pair.trace, 200, 80, 2.0, "answers")
    result = Result(pair.sample(), Verdict(raw=pair.trace), generation)
    line = record(item, result, Task.REFUSAL)
    assert list(line)[:3] == ["prompt", "label", "predict"]  # GuardReasoner's keys first
    assert line["prompt"] == pair.model_input() and line["label"] == pair.completion.value
    assert (line["id"], line["task"], line["latency_ms"]) == (pair.id, "refusal", 2000)
    back = judged_of(json.loads(json.dumps(line)), "f:1", Task.REFUSAL)
    assert (back.gold, back.predict, back.output_tokens, back.latency_s) == (
        pair.completion,
        pair.trace,
        80,
        2.0,
    )
