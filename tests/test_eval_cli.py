"""``guardcli eval``: scoring predictions without a model, and a bundle end to end (the fixture
bundle, whose model writes known traces), with both scoring modes, all outputs and --resume."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from guardcli.core.prompt import INSTRUCTION, build_input, format_pair
from guardcli.eval.predictions import PREDICTIONS_NAME
from testkit.pairs import FIXTURE_PAIRS
from tests.cli_support import GEN, invoke, write_jsonl
from tests.interrupt import interrupt_after_first_line

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def trace(request: str) -> str:
    return f"## Reasoning Step 1: ...\n---\n\nAnswers: \nRequest: {request}\nCompletion: None\n"


def predictions_folder(root: Path) -> Path:
    """Two prompt benchmarks in the two layouts, with one unreadable output for gold harmful
    (honest counts it, paper-compat drops it) and one for gold unharmful (counted twice)."""
    rows = [
        {"prompt": build_input(f"p{i}"), "label": gold, "predict": trace(guess)}
        for i, (gold, guess) in enumerate(
            [("harmful", "harmful")] * 3 + [("unharmful", "unharmful")] * 2
        )
    ]
    rows.append({"prompt": build_input("x"), "label": "harmful", "predict": "I am not sure."})
    write_jsonl(root / "HarmBenchPrompt.jsonl", rows)
    aegis = [
        {"prompt": build_input("a"), "label": "harmful", "predict": trace("harmful")},
        {"prompt": build_input("b"), "label": "unharmful", "predict": "nothing"},
    ]
    (root / "AegisSafetyTest").mkdir()
    write_jsonl(root / "AegisSafetyTest" / PREDICTIONS_NAME, aegis)
    return root


def as_json(result) -> dict:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def f1s(data: dict) -> dict[str, float]:
    return {row["benchmark"]: row["f1"] for row in data["benchmarks"]}


# ---- --predictions: no model ----------------------------------------------------------------


def test_fast_mode_scores_give_a_roc_auc_column(tmp_path):
    """Predictions that record request_score (fast triage) are ranked: AUC in JSON and table;
    files without scores say null / '-', and paper-compat never reports one."""
    scored = [
        {
            "prompt": build_input(f"p{i}"),
            "label": gold,
            "predict": trace(guess),
            "request_score": score,
        }
        for i, (gold, guess, score) in enumerate(
            [
                ("harmful", "harmful", 0.9),
                ("harmful", "unharmful", 0.4),
                ("unharmful", "unharmful", 0.3),
                ("unharmful", "harmful", 0.6),
            ]
        )
    ]
    write_jsonl(tmp_path / "HarmBenchPrompt.jsonl", scored)
    write_jsonl(tmp_path / "AegisSafetyTest.jsonl", [{**scored[0], "request_score": None}])
    data = as_json(invoke("eval", "--predictions", str(tmp_path), "--json"))
    auc = {row["benchmark"]: row["auc"] for row in data["benchmarks"]}
    assert auc == {"HarmBenchPrompt": 0.75, "AegisSafetyTest": None}
    table = invoke("eval", "--predictions", str(tmp_path))
    assert "AUC" in table.stdout and "0.750" in table.stdout
    compat = as_json(invoke("eval", "--predictions", str(tmp_path), "--json", "--paper-compat"))
    assert all(row["auc"] is None for row in compat["benchmarks"])


def test_scores_predictions_in_both_modes(tmp_path):
    folder = predictions_folder(tmp_path)
    honest = as_json(invoke("eval", "--predictions", str(folder), "--json"))
    compat = as_json(invoke("eval", "--predictions", str(folder), "--json", "--paper-compat"))
    assert honest["mode"] == "honest" and compat["mode"] == "paper-compat"
    h = {row["benchmark"]: row for row in honest["benchmarks"]}
    c = {row["benchmark"]: row for row in compat["benchmarks"]}
    # HarmBenchPrompt: honest 3 tp + 1 fn; paper-compat drops the unreadable harmful item.
    assert h["HarmBenchPrompt"]["confusion"] == {"tp": 3, "fp": 0, "tn": 2, "fn": 1}
    assert h["HarmBenchPrompt"]["f1"] == pytest.approx(100 * 6 / 7, abs=1e-4)
    assert c["HarmBenchPrompt"]["confusion"] == {"tp": 3, "fp": 0, "tn": 2, "fn": 0}
    assert c["HarmBenchPrompt"]["f1"] == 100.0 and c["HarmBenchPrompt"]["dropped"] == 1
    # AegisSafetyTest: the unreadable unharmful item is one false positive, or two.
    assert h["AegisSafetyTest"]["confusion"] == {"tp": 1, "fp": 1, "tn": 0, "fn": 0}
    assert c["AegisSafetyTest"]["confusion"] == {"tp": 1, "fp": 2, "tn": 0, "fn": 0}
    assert h["HarmBenchPrompt"]["unparsed"] == c["HarmBenchPrompt"]["unparsed"] == 1
    [task] = honest["tasks"]
    assert task["task"] == "prompt" and task["items"] == 8
    assert task["weighted_f1"] == pytest.approx(
        (6 * h["HarmBenchPrompt"]["f1"] + 2 * h["AegisSafetyTest"]["f1"]) / 8, abs=1e-3
    )
    assert h["HarmBenchPrompt"]["mean_output_tokens"] is None  # not in these files


def test_table_and_markdown_show_the_json_numbers(tmp_path):
    folder = predictions_folder(tmp_path)
    data = as_json(invoke("eval", "--predictions", str(folder), "--json"))
    table = invoke("eval", "--predictions", str(folder))
    markdown = invoke("eval", "--predictions", str(folder), "--markdown")
    assert table.exit_code == markdown.exit_code == 0
    for row in data["benchmarks"]:
        shown = f"{row['f1']:.2f}"
        assert shown in table.stdout and f"| {row['benchmark']} |" in markdown.stdout
        assert shown in markdown.stdout
    average = f"{data['tasks'][0]['weighted_f1']:.2f}"
    assert average in table.stdout and f"**{average}**" in markdown.stdout
    assert "honest" in table.stdout and markdown.stdout.startswith("| benchmark |")
    assert table.stderr == ""


def test_a_reference_adds_the_papers_column(tmp_path):
    folder = predictions_folder(tmp_path)
    data = as_json(
        invoke("eval", "--predictions", str(folder), "--json", "--reference", "guardreasoner-8b")
    )
    assert data["reference"] == "GuardReasoner-8B"
    assert {r["benchmark"]: r["paper_f1"] for r in data["benchmarks"]} == {
        "HarmBenchPrompt": 91.86,
        "AegisSafetyTest": 90.18,
    }
    assert data["tasks"][0]["paper_weighted_f1"] is None  # not the paper's six benchmarks
    table = invoke("eval", "--predictions", str(folder), "--reference", "GuardReasoner-8B")
    assert "91.86" in table.stdout and "paper" in table.stdout


def test_honest_mode_reports_records_it_cannot_score(tmp_path):
    rows = [
        {"prompt": build_input("a"), "label": "harmful", "predict": trace("harmful")},
        {"prompt": "no GuardReasoner input", "label": "harmful", "predict": trace("harmful")},
    ]
    path = write_jsonl(tmp_path / "SimpleSafetyTests.jsonl", rows)
    result = invoke("eval", "--predictions", str(path), "--json")
    assert "skipped" in result.stderr and "SimpleSafetyTests.jsonl:2" in result.stderr
    [row] = as_json(result)["benchmarks"]
    assert row["items"] == 1 and row["skipped"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give benchmark files"),
        (("b.json", "--predictions", "p"), "not both"),
        (("--predictions", "p", "--json", "--markdown"), "exclude each other"),
        (("--predictions", "p", "--reference", "Nobody-9B"), "no such row"),
        (("--predictions", "p", "--output", "o"), "for running a model"),
        (("--predictions", "absent-folder"), "no such file or folder"),
        (("0_0_SimpleSafetyTest.json",), "0_0_SimpleSafetyTest.json: no such file"),  # a typo
        (("absent.jsonl", "--task", "prompt"), "absent.jsonl: no such file"),
        (("p",), "p: is a folder"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p").mkdir()
    write_jsonl(tmp_path / "p" / "HarmBenchPrompt.jsonl", [{"prompt": "x", "label": "harmful"}])
    result = invoke("eval", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_two_folders_of_the_same_benchmark_are_refused(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one, two = predictions_folder(tmp_path / "one"), predictions_folder(tmp_path / "two")
    result = invoke("eval", "--predictions", str(one), "--predictions", str(two))
    assert result.exit_code == 2 and "one model's predictions at a time" in result.stderr


@pytest.mark.skipif(HAS_MATPLOTLIB, reason="matplotlib is installed: the chart is drawn instead")
def test_chart_without_matplotlib_names_the_extra(tmp_path):
    folder = predictions_folder(tmp_path)
    result = invoke("eval", "--predictions", str(folder), "--chart", str(tmp_path / "c.png"))
    assert result.exit_code == 2 and "pip install 'guardcli[plot]'" in result.stderr
    assert result.stdout == "" and not (tmp_path / "c.png").exists()


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="needs matplotlib (pip install 'guardcli[plot]')")
def test_chart_is_a_png(tmp_path):
    folder = predictions_folder(tmp_path)
    chart = tmp_path / "out" / "chart.png"
    chart.parent.mkdir()
    result = invoke("eval", "--predictions", str(folder), "--chart", str(chart), "--json")
    assert result.exit_code == 0 and f"wrote {chart}" in result.stderr
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 5000
    json.loads(result.stdout)  # the report is still on stdout, untouched


# ---- the paper, reproduced (the acceptance command) -------------------------------

PAPER_1B = {"HarmBenchPrompt": 96.31, "AegisSafetyTest": 89.34, "SimpleSafetyTests": 98.99}
NEAR_1B = {
    "HarmBenchResponse": 84.75,
    "XSTestReponseHarmful": 90.12,
    "XSTestResponseRefusal": 91.34,
}


@pytest.mark.shared
def test_teacher_1b_paper_compat_gives_the_papers_numbers(shared_dir):
    folder = shared_dir / "data" / "guardreasoner" / "teacher" / "1B"
    data = as_json(invoke("eval", "--predictions", str(folder), "--paper-compat", "--json"))
    got = {name: round(f1, 2) for name, f1 in f1s(data).items()}
    assert {name: got[name] for name in PAPER_1B} == PAPER_1B
    for name, published in NEAR_1B.items():
        assert abs(got[name] - published) <= 0.6, name
    table = invoke("eval", "--predictions", str(folder), "--paper-compat")
    assert table.exit_code == 0 and all(f"{v:.2f}" in table.stdout for v in PAPER_1B.values())


# ---- a bundle end to end ---------------------------------------------------------------------


def benchmark_json(path: Path, pairs, gold) -> Path:
    rows = [
        {"instruction": INSTRUCTION, "input": format_pair(p.prompt, p.response), "output": gold(p)}
        for p in pairs
    ]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_eval_runs_a_bundle_and_its_predictions_score_the_same(fixture_bundle, tmp_path):
    prompt = benchmark_json(tmp_path / "0_3_harmbench_prompt.json", FIXTURE_PAIRS, _request)
    with_response = [p for p in FIXTURE_PAIRS if p.response is not None]
    refusal = benchmark_json(tmp_path / "refusals.json", with_response, _completion)
    out = tmp_path / "preds"
    model = ["--model", str(fixture_bundle), *GEN]
    first = invoke("eval", str(prompt), *model, "--output", str(out), "--json")
    data = as_json(first)
    [row] = data["benchmarks"]
    assert (row["benchmark"], row["f1"], row["items"], row["unparsed"]) == (
        "HarmBenchPrompt",
        100.0,
        len(FIXTURE_PAIRS),
        0,
    )
    assert row["mean_output_tokens"] > 0 and row["mean_latency_s"] > 0
    written = lines(out / "HarmBenchPrompt.jsonl")
    assert [w["label"] for w in written] == [_request(p) for p in FIXTURE_PAIRS]
    assert [w["predict"] for w in written] == [p.trace for p in FIXTURE_PAIRS]
    assert [w["prompt"] for w in written] == [p.model_input() for p in FIXTURE_PAIRS]
    # a file named after no benchmark takes --task; its predictions carry the task
    second = invoke("eval", str(refusal), "--task", "refusal", *model, "-o", str(out), "--json")
    assert f1s(as_json(second)) == {"refusals": 100.0}
    rescored = as_json(invoke("eval", "--predictions", str(out), "--json"))
    assert f1s(rescored) == {"HarmBenchPrompt": 100.0, "refusals": 100.0}
    assert rescored["benchmarks"][0]["mean_output_tokens"] == row["mean_output_tokens"]


@pytest.mark.slow
def test_eval_resumes_a_killed_run(fixture_bundle, tmp_path):
    bench = benchmark_json(tmp_path / "SimpleSafetyTests.json", FIXTURE_PAIRS, _request)
    out = tmp_path / "preds"
    model = ["--model", str(fixture_bundle), *GEN]
    full = as_json(invoke("eval", str(bench), *model, "-o", str(out), "--json"))
    target = out / "SimpleSafetyTests.jsonl"
    text = target.read_text(encoding="utf-8").splitlines(keepends=True)
    target.write_text("".join(text[:2]) + text[2][:25], encoding="utf-8")  # killed mid-line
    refused = invoke("eval", str(bench), *model, "-o", str(out))
    assert refused.exit_code == 2 and "--resume" in refused.stderr
    resumed = invoke("eval", str(bench), *model, "-o", str(out), "--resume", "--json")
    assert "(2 already done)" in resumed.stderr
    [before], [after] = full["benchmarks"], as_json(resumed)["benchmarks"]
    del before["mean_latency_s"], after["mean_latency_s"]  # the redone items took new time
    assert after == before
    # the cut line was dropped and redone: every item once, in order
    assert [w["id"] for w in lines(target)] == [json.loads(line)["id"] for line in text]


def test_an_existing_output_is_refused_before_a_model_loads(tmp_path):
    bench = benchmark_json(tmp_path / "SimpleSafetyTests.json", FIXTURE_PAIRS, _request)
    (tmp_path / "preds").mkdir()
    (tmp_path / "preds" / "SimpleSafetyTests.jsonl").write_text("{}\n")
    result = invoke("eval", str(bench), "-o", str(tmp_path / "preds"), env={"GUARDCLI_MODEL": None})
    assert result.exit_code == 2 and "already exists" in result.stderr


def test_no_model_is_exit_3(tmp_path):
    bench = benchmark_json(tmp_path / "SimpleSafetyTests.json", FIXTURE_PAIRS, _request)
    result = invoke("eval", str(bench), env={"GUARDCLI_MODEL": None})
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr.startswith("guardcli: error:") and result.stderr.count("\n") == 1


def test_a_benchmark_of_unknown_task_is_refused_before_a_model_loads(tmp_path):
    bench = benchmark_json(tmp_path / "mine.json", FIXTURE_PAIRS, _request)
    result = invoke("eval", str(bench), env={"GUARDCLI_MODEL": None})
    assert result.exit_code == 2 and "--task" in result.stderr


def _request(pair) -> str:
    return pair.request.value


def _completion(pair) -> str:
    return pair.completion.value


@pytest.mark.slow
def test_sigint_exits_130_and_keeps_written_predictions(fixture_bundle, tmp_path):
    bench = benchmark_json(tmp_path / "SimpleSafetyTests.json", FIXTURE_PAIRS * 100, _request)
    out = tmp_path / "preds"
    target = out / "SimpleSafetyTests.jsonl"
    args = ["eval", str(bench), "-o", str(out), "--batch-size", "1"]
    code, stdout, stderr = interrupt_after_first_line(
        [*args, "--model", str(fixture_bundle), *GEN], target
    )
    assert code == 130, stderr.decode()
    assert stdout == b"" and "(--resume continues)" in stderr.decode()
    written = target.read_text(encoding="utf-8")
    assert written.endswith("\n") and 1 <= len(lines(target)) < 600
