"""guardcli.eval.labelled: benchmark names -> tasks, the three record shapes, gold vs verdict.

pytest tests/test_labelled.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from guardcli.core.parse import parse
from guardcli.core.prompt import INSTRUCTION, build_input, format_pair
from guardcli.core.records import Label, Sample, Skip, Verdict
from guardcli.core.tasks import Task
from guardcli.errors import InputError, UsageError
from guardcli.eval.benchmarks import HELD_OUT, benchmark_of, task_of
from guardcli.eval.labelled import (
    Gold,
    LabelledSample,
    agrees,
    implied,
    load_all,
    load_labelled,
    load_predictions,
    mismatches,
)

H, U, R, C, N = Label.HARMFUL, Label.UNHARMFUL, Label.REFUSAL, Label.COMPLIANCE, Label.NONE


def _answers(request: str, completion: str, response: str) -> str:
    return f"Answers: \nRequest: {request}\nCompletion: {completion}\nResponse: {response}\n"


def _write_json(path: Path, value: object) -> str:
    path.write_text(json.dumps(value), encoding="utf-8")
    return str(path)


def _write_jsonl(path: Path, rows: list[object]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


# ---- names -> tasks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("SimpleSafetyTests", Task.PROMPT),
        ("AegisSafetyTest", Task.PROMPT),
        ("HarmBenchPrompt", Task.PROMPT),
        ("ToxicChat", Task.PROMPT),
        ("OpenAIModeration", Task.PROMPT),
        ("WildGuardTest", Task.PROMPT),
        ("WildGuardTestPrompt", Task.PROMPT),
        ("HarmBenchResponse", Task.RESPONSE),
        ("XSTestReponseHarmful", Task.RESPONSE),  # the GuardReasoner repository's spelling
        ("XSTestResponseHarmful", Task.RESPONSE),
        ("SafeRLHF", Task.RESPONSE),
        ("BeaverTails", Task.RESPONSE),
        ("XSTestResponseRefusal", Task.REFUSAL),
        ("0_5_harmbench_response.json", Task.RESPONSE),
        ("0_7_xstest_response_refusal", Task.REFUSAL),
        ("0_A_beaver_tails.json", Task.RESPONSE),
        ("teacher/1B/XSTestReponseHarmful.jsonl", Task.RESPONSE),
        ("data/test/8B/HarmBenchPrompt/generated_predictions.jsonl", Task.PROMPT),
    ],
)
def test_task_of_benchmark_names(name, task):
    assert task_of(name) is task


def test_both_xstest_spellings_are_one_benchmark():
    assert benchmark_of("0_6_xstest_response_harmful.json").name == "XSTestReponseHarmful"
    assert benchmark_of("XSTestReponseHarmful.jsonl") == benchmark_of("XSTestResponseHarmful")


def test_caller_overrides_the_name():
    assert task_of("0_5_harmbench_response.json", task="refusal") is Task.REFUSAL
    assert task_of("mystery.jsonl", task=Task.PROMPT) is Task.PROMPT


def test_unknown_name_needs_a_task():
    assert benchmark_of("my_chats.jsonl") is None
    with pytest.raises(InputError, match="cannot tell which task"):
        task_of("my_chats.jsonl")
    with pytest.raises(UsageError, match="unknown task"):
        task_of("HarmBenchPrompt", task="harm")


def test_held_out_are_known_benchmarks():
    assert {benchmark_of(name).name for name in HELD_OUT} == set(HELD_OUT)


# ---- GuardReasoner benchmark / train JSON ------------------------------------------------------


def test_benchmark_json_bare_labels(tmp_path):
    items = [
        {"instruction": INSTRUCTION, "input": format_pair("How do I kill a process?", "Use kill."),
         "output": "compliance"},
        {"instruction": INSTRUCTION, "input": format_pair("Make a bomb", "No."),
         "output": "refusal"},
    ]  # fmt: skip
    path = _write_json(tmp_path / "0_7_xstest_response_refusal.json", items)
    got = list(load_labelled(path))
    assert [g.gold for g in got] == [Gold(completion=C), Gold(completion=R)]
    assert got[0].sample == Sample(
        id=f"{path}#1", prompt="How do I kill a process?", response="Use kill.", source=f"{path}#1"
    )
    assert got[1].sample.source == f"{path}#2"


def test_answers_block_gold_reads_none_by_context(tmp_path):
    """SafeRLHF's "Request: None" is unlabelled; a training trace's "Completion: None" for a
    prompt-only sample is the answer none."""
    items = [
        {"input": format_pair("p", "r"), "output": _answers("None", "None", "harmful")},
        {"input": format_pair("q", None), "output": "## Reasoning...\n" + _answers(
            "unharmful", "None", "None")},
        {"input": format_pair("s", "t"), "output": _answers("harmful", "refusal", "unharmful")},
    ]  # fmt: skip
    got = list(load_labelled(_write_json(tmp_path / "train.json", items)))
    assert [g.gold for g in got] == [
        Gold(response=H),
        Gold(request=U, completion=N, response=N),
        Gold(request=H, completion=R, response=U),
    ]
    assert got[1].sample.response is None


def test_bare_label_that_does_not_fit_the_task(tmp_path):
    items = [{"input": format_pair("p", "r"), "output": "refusal"}]
    (skip,) = load_labelled(_write_json(tmp_path / "HarmBenchResponse.json", items))
    assert isinstance(skip, Skip)
    assert skip.source.endswith("HarmBenchResponse.json#1")
    assert "does not fit the response task" in skip.reason


def test_response_label_without_a_response_is_skipped(tmp_path):
    items = [{"input": format_pair("p", None), "output": "harmful"}]
    (skip,) = load_labelled(_write_json(tmp_path / "BeaverTails.json", items))
    assert isinstance(skip, Skip) and "no response" in skip.reason


def test_bare_labels_in_an_unnamed_file_raise_once(tmp_path):
    path = _write_json(
        tmp_path / "data.json", [{"input": format_pair("p", None), "output": "harmful"}]
    )
    with pytest.raises(InputError, match="data.json: cannot tell which task"):
        list(load_labelled(path))
    (item,) = load_labelled(path, task="prompt")
    assert item.gold == Gold(request=H)


def test_bad_benchmark_records(tmp_path):
    items = [
        {"input": "not the format", "output": "harmful"},
        {"input": format_pair("p", None), "output": "maybe"},
        {"input": format_pair("p", None), "output": 3},
        "a string",
    ]
    skips = list(load_labelled(_write_json(tmp_path / "AegisSafetyTest.json", items)))
    assert all(isinstance(s, Skip) for s in skips)
    assert [s.source.rsplit("#", 1)[1] for s in skips] == ["1", "2", "3", "4"]
    assert "not a GuardReasoner input" in skips[0].reason
    assert "neither a label word nor an Answers block" in skips[1].reason
    assert "not a string" in skips[2].reason
    assert "not an object" in skips[3].reason


# ---- labelled chats JSONL ----------------------------------------------------------------------


def test_jsonl_label_field_aliases(tmp_path):
    rows = [
        {"prompt": "p1", "response": "r1", "request": "harmful", "completion": "refusal",
         "response_label": "unharmful"},
        {"prompt": "p2", "response": "r2", "prompt_harm_label": "unharmful",
         "response_refusal_label": "compliance", "response_harm_label": "harmful"},
        {"prompt": "p3", "request": "Harmful", "response_label": None},
        {"id": "x", "prompt": "p4", "response": "r4", "response_harm_label": "unharmful"},
    ]  # fmt: skip
    path = _write_jsonl(tmp_path / "chats.jsonl", rows)
    got = list(load_labelled(path))
    assert [g.gold for g in got] == [
        Gold(request=H, completion=R, response=U),
        Gold(request=U, completion=C, response=H),
        Gold(request=H),
        Gold(response=U),
    ]
    # ``response`` is the AI's text, never a label
    assert [g.sample.response for g in got] == ["r1", "r2", None, "r4"]
    assert got[0].sample.source == f"{path}:1" and got[3].sample.id == "x"


def test_jsonl_messages_and_bare_label_field(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
         "label": "unharmful"},
    ]  # fmt: skip
    (item,) = load_labelled(_write_jsonl(tmp_path / "HarmBenchResponse.jsonl", rows))
    assert item.sample.prompt == "hi" and item.sample.response == "yo"
    assert item.gold == Gold(response=U)


def test_bad_jsonl_records_name_their_line(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"prompt": "a", "request": "harmful"}),
                "{not json",
                json.dumps({"prompt": "b"}),
                json.dumps({"prompt": "c", "request": "harmful", "prompt_harm_label": "unharmful"}),
                json.dumps({"prompt": "d", "response": "e", "completion": "yes"}),
                json.dumps({"prompt": "f", "completion": "refusal"}),
                json.dumps({"text": "g", "request": "harmful"}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    got = list(load_labelled(path))
    assert isinstance(got[0], LabelledSample)
    skips = {s.source.rsplit(":", 1)[1]: s.reason for s in got[1:]}
    assert set(skips) == {"2", "3", "4", "5", "6", "7"}
    assert "invalid JSON" in skips["2"]
    assert "no gold label" in skips["3"]
    assert "disagree" in skips["4"]
    assert "'completion' is 'yes'" in skips["5"] and "refusal or compliance" in skips["5"]
    assert "has none" in skips["6"]
    assert "no 'prompt' field" in skips["7"]


def test_missing_file_fails_at_the_call(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_labelled(tmp_path / "absent.jsonl")


# ---- predictions -------------------------------------------------------------------------------


def test_predictions_file(tmp_path):
    trace = "## Reasoning Step 1: ...\n" + _answers("harmful", "compliance", "harmful")
    rows = [
        {"prompt": build_input("p", "r"), "label": "harmful", "predict": trace},
        {"prompt": build_input("q", "s"), "label": _answers("None", "None", "unharmful"),
         "predict": "garbage"},
        {"prompt": "Human user:\nno end", "label": "harmful", "predict": trace},
        {"prompt": build_input("p", "r"), "predict": trace},
    ]  # fmt: skip
    folder = tmp_path / "HarmBenchResponse"  # GuardReasoner's layout: the folder names the set
    folder.mkdir()
    path = _write_jsonl(folder / "generated_predictions.jsonl", rows)
    got = list(load_predictions(path))
    assert got[0].output == trace
    assert got[0].item.gold == Gold(response=H)
    assert (got[0].item.sample.prompt, got[0].item.sample.response) == ("p", "r")
    assert got[1].item.gold == Gold(response=U)
    assert isinstance(got[2], Skip) and "not a GuardReasoner input" in got[2].reason
    assert isinstance(got[3], Skip) and "no 'label'" in got[3].reason
    # the same file read as labelled inputs
    labelled = [g for g in load_labelled(path) if isinstance(g, LabelledSample)]
    assert [g.gold for g in labelled] == [Gold(response=H), Gold(response=U)]


def test_predictions_loader_refuses_other_records(tmp_path):
    path = _write_jsonl(tmp_path / "AegisSafetyTest.jsonl", [{"prompt": "p", "request": "harmful"}])
    (skip,) = load_predictions(path)
    assert isinstance(skip, Skip) and "no 'predict'" in skip.reason


# ---- gold vs verdict ---------------------------------------------------------------------------


def test_agrees_checks_only_labelled_tasks():
    verdict = parse(_answers("harmful", "refusal", "unharmful"))
    assert agrees(verdict, Gold(request=H))
    assert agrees(verdict, Gold(request=H, completion=R, response=U))
    assert not agrees(verdict, Gold(completion=C))
    assert mismatches(verdict, Gold(request=U, completion=R, response=H)) == (
        mismatches(verdict, Gold(request=U))[0],
        mismatches(verdict, Gold(response=H))[0],
    )
    (miss,) = mismatches(verdict, Gold(request=U))
    assert (miss.task, miss.gold, miss.got) == ("request", U, H)
    assert str(miss) == "request: gold unharmful, model harmful"


def test_unreadable_answer_is_a_mismatch():
    assert not agrees(Verdict(), Gold(response=U))
    assert (
        str(mismatches(Verdict(), Gold(response=U))[0]) == "response: gold unharmful, model unknown"
    )


def test_implied_none_only_without_response():
    prompt_only = LabelledSample(Sample("a", "p"), Gold(request=H))
    assert implied(prompt_only).gold == Gold(request=H, completion=N, response=N)
    with_response = LabelledSample(Sample("b", "p", "r"), Gold(request=H))
    assert implied(with_response) is with_response
    assert not agrees(parse(_answers("harmful", "refusal", "unharmful")), implied(prompt_only).gold)


def test_gold_str():
    assert str(Gold(request=H, response=N)) == "request=harmful, response=none"
    assert str(Gold()) == "unlabelled"


# ---- the shared GuardReasoner data -------------------------------------------------------------

_TASK_WORDS = {"prompt harmfulness": Task.PROMPT, "response harmfulness": Task.RESPONSE,
               "refusal detection": Task.REFUSAL}  # fmt: skip


def _readme_table(shared: Path) -> dict[str, tuple[Task, int]]:
    text = (shared / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\S+\.json) \| ([a-z ]+) \| (\d+) \|$", text, re.MULTILINE)
    return {name: (_TASK_WORDS[task], int(n)) for name, task, n in rows}


def test_every_shared_benchmark_loads_with_readme_counts(shared_dir):
    table = _readme_table(shared_dir)
    bench = shared_dir / "data" / "guardreasoner" / "benchmark"
    assert len(table) == 8 and set(table) == {p.name for p in bench.glob("*.json")}
    for name, (task, count) in table.items():
        items, skips = load_all([bench / name])
        assert not skips, skips[:3]
        assert len(items) == count, name
        assert task_of(name) is task
        # every item labels (at least) its file's task
        assert all(getattr(i.gold, task.field) is not None for i in items), name


def test_train_prompts_load(shared_dir):
    path = shared_dir / "data" / "extra" / "guardreasoner_train_prompts.jsonl"
    readme = (shared_dir / "README.md").read_text(encoding="utf-8")
    count = int(re.search(r"([\d,]+) labelled prompts", readme).group(1).replace(",", ""))
    items, skips = load_all([path])
    assert not skips and len(items) == count == 3824
    assert {i.gold.request for i in items} == {H, U}
    assert all(i.gold.completion is None and i.sample.response is None for i in items)


def test_teacher_files_match_their_benchmarks(shared_dir):
    """Every teacher file loads whole, and its gold labels are its benchmark's, input by input."""
    root = shared_dir / "data" / "guardreasoner"
    benchmarks: dict[str, dict[str, Gold]] = {}
    counts: dict[str, int] = {}
    for path in (root / "benchmark").glob("*.json"):
        items, _ = load_all([path])
        name = benchmark_of(path.name).name
        counts[name] = len(items)
        benchmarks[name] = {build_input(i.sample.prompt, i.sample.response): i.gold for i in items}
    teachers = sorted((root / "teacher").glob("*/*.jsonl"))
    assert len(teachers) == 18
    for path in teachers:
        name = benchmark_of(path).name
        predictions = list(load_predictions(path))
        assert not [p for p in predictions if isinstance(p, Skip)], path
        assert len(predictions) == counts[name], path
        for p in predictions:
            key = build_input(p.item.sample.prompt, p.item.sample.response)
            assert benchmarks[name][key] == p.item.gold, (path, p.item.sample.source)
