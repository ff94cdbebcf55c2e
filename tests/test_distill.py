"""export.distill: rejection reasons, token cap, dedup, merged gold, held-out refusal, the
training format, teachers (traces files, a fake OpenAI server, the fixture model), and the
shared GuardReasoner traces.

    GUARDCLI_TEST_CACHE=1 pytest tests/test_distill.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export.distill.command import Options, build_parser, distill, main
from export.distill.inputs import gather_inputs
from export.distill.judging import (
    DUPLICATE,
    INCOMPLETE,
    NO_ANSWERS,
    TOO_LONG,
    Summary,
    TokenCounter,
    judge,
    reject_reason,
    summary_path,
    token_counter,
    wrong,
)
from export.distill.teachers import Candidate
from export.sampling.generate import SamplingConfig
from guardcli.core.parse import parse
from guardcli.core.prompt import INSTRUCTION, build_input, format_pair, split_input
from guardcli.core.records import Label
from guardcli.errors import InputError, UsageError
from guardcli.eval.benchmarks import HELD_OUT, benchmark_of
from guardcli.eval.labelled import Gold, load_labelled
from tests.test_generate import FakeOpenAI, choices

H, U, R, C, N = Label.HARMFUL, Label.UNHARMFUL, Label.REFUSAL, Label.COMPLIANCE, Label.NONE


def trace(
    request: str, completion: str, response: str, body: str = "## Reasoning Step 1: x\n"
) -> str:
    answers = f"Answers: \nRequest: {request}\nCompletion: {completion}\nResponse: {response}"
    return f"{body}---\n\n{answers}"


def chars(text: str) -> int:
    return len(text)


# ---- one trace ---------------------------------------------------------------------------------


def test_reject_reasons():
    gold = Gold(request=H, completion=R, response=U)
    good = trace("harmful", "refusal", "unharmful")
    assert reject_reason(good, gold, chars, 10_000) == (None, ())
    assert reject_reason("I think it is harmful.", gold, chars, 10_000) == (NO_ANSWERS, ())
    assert reject_reason("", gold, chars, 10_000) == (NO_ANSWERS, ())
    partial = "## x\nAnswers: \nRequest: harmful\nCompletion: refusal\n"
    assert reject_reason(partial, gold, chars, 10_000) == (INCOMPLETE, ())
    assert reject_reason(trace("unharmful", "refusal", "harmful"), gold, chars, 10_000) == (
        wrong("request"),
        ("request", "response"),
    )
    assert reject_reason(trace("harmful", "compliance", "unharmful"), gold, chars, 10_000) == (
        "wrong_completion",
        ("completion",),
    )
    # only labelled tasks are checked
    assert (
        reject_reason(trace("harmful", "compliance", "harmful"), Gold(request=H), chars, 10**4)[0]
        is None
    )


def test_token_cap_counts_the_whole_trace():
    gold = Gold(request=H)
    text = trace("harmful", "None", "None")
    assert reject_reason(text, gold, chars, len(text))[0] is None
    assert reject_reason(text, gold, chars, len(text) - 1)[0] == TOO_LONG


def test_token_counter_without_a_tokenizer_estimates(tmp_path):
    estimate = token_counter(None, [])
    assert estimate.how.startswith("estimate") and estimate.count("x" * 9) == 3  # ceil(9 / 4)
    with pytest.raises(InputError, match="no tokenizer.json"):
        token_counter(str(tmp_path), [])


def test_token_counter_with_the_llama3_tokenizer(shared_dir):
    llama = token_counter(str(shared_dir / "tokenizers" / "llama3"), [])
    assert llama.how.endswith("tokenizer.json")
    assert llama.count("Answers: \nRequest: harmful") < len("Answers: \nRequest: harmful") / 2


# ---- inputs ------------------------------------------------------------------------------------


def _bench(path: Path, rows: list[tuple[str, str | None, str]]) -> str:
    items = [
        {"instruction": INSTRUCTION, "input": format_pair(p, r), "output": o} for p, r, o in rows
    ]
    path.write_text(json.dumps(items), encoding="utf-8")
    return str(path)


def _preds(path: Path, rows: list[tuple[str, str | None, str, str]]) -> str:
    lines = [
        json.dumps({"prompt": build_input(p, r), "label": lab, "predict": out})
        for p, r, lab, out in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_inputs_merge_labels_across_files(tmp_path):
    harmful = _bench(
        tmp_path / "XSTestReponseHarmful.json", [("p", "r", "unharmful"), ("q", "s", "harmful")]
    )
    refusal = _bench(tmp_path / "XSTestResponseRefusal.json", [("p", "r", "refusal")])
    inputs = gather_inputs([harmful, refusal])
    entry = inputs.by_key[build_input("p", "r")]
    assert entry.item.gold == Gold(completion=R, response=U)
    assert entry.sources == (f"{harmful}#1", f"{refusal}#1")
    assert len(inputs.by_key) == 2 and not inputs.conflicts


def test_conflicting_gold_drops_the_input(tmp_path):
    a = _bench(tmp_path / "AegisSafetyTest.json", [("p", None, "harmful"), ("q", None, "harmful")])
    b = _bench(tmp_path / "HarmBenchPrompt.json", [("p", None, "unharmful")])
    inputs = gather_inputs([a, b])
    assert list(inputs.by_key) == [build_input("q", None)]
    assert len(inputs.conflicts) == 1 and "request harmful vs unharmful" in inputs.conflicts[0]


def test_prompt_only_inputs_imply_none(tmp_path):
    path = _bench(tmp_path / "AegisSafetyTest.json", [("p", None, "harmful")])
    (entry,) = gather_inputs([path]).by_key.values()
    assert entry.item.gold == Gold(request=H, completion=N, response=N)
    (entry,) = gather_inputs([path], implied_none=False).by_key.values()
    assert entry.item.gold == Gold(request=H)


@pytest.mark.parametrize(
    "name", ["0_0_SimpleSafetyTests.json", "0_9_safe_rlhf.json", "BeaverTails.json"]
)
def test_held_out_inputs_are_refused(tmp_path, name):
    path = _bench(tmp_path / name, [("p", "r", "harmful")])
    refused = set(HELD_OUT)
    with pytest.raises(UsageError, match="held out for evaluation.*--allow-heldout"):
        gather_inputs([path], refused=refused)
    assert len(gather_inputs([path], refused=set()).by_key) == 1


# ---- judging -----------------------------------------------------------------------------------


def test_judge_dedups_and_counts(tmp_path):
    rows = [("p", None, "harmful"), ("q", None, "unharmful"), ("z", None, "harmful")]
    aegis = _bench(tmp_path / "AegisSafetyTest.json", rows)
    inputs = gather_inputs([aegis])
    good_p = trace("harmful", "None", "None")
    p, q = build_input("p", None), build_input("q", None)
    candidates = [
        Candidate(p, good_p, "1B"),
        Candidate(p, good_p, "3B"),  # the same trace again
        Candidate(p, trace("harmful", "refusal", "unharmful"), "3B"),  # a refusal of nothing
        Candidate(q, trace("harmful", "None", "None"), "1B"),
        Candidate(q, "no answers at all", "3B"),
        Candidate(q, trace("unharmful", "None", "None", body="x" * 500), "8B"),
    ]
    summary = Summary()
    kept = judge(candidates, inputs, TokenCounter(chars, "chars"), 400, summary)
    assert kept == [candidates[0]]
    assert summary.candidates == 6 and summary.kept == 1
    assert dict(summary.rejected) == {
        DUPLICATE: 1,
        "wrong_completion": 1,
        "wrong_request": 1,
        NO_ANSWERS: 1,
        TOO_LONG: 1,
    }
    assert summary.kept + sum(summary.rejected.values()) == summary.candidates
    assert dict(summary.wrong_answers) == {"completion": 1, "response": 1, "request": 1}
    assert dict(summary.per_teacher["3B"]) == {DUPLICATE: 1, "wrong_completion": 1, NO_ANSWERS: 1}
    assert dict(summary.per_label["request=harmful"]) == {"kept": 1, "rejected": 2}
    assert dict(summary.per_label["request=unharmful"]) == {"rejected": 3}
    # q had traces but none kept; z never had one
    assert summary.without_kept_trace == [f"{aegis}#2", f"{aegis}#3"]
    assert summary.without_candidates == 1


# ---- the whole run -----------------------------------------------------------------------------


def _small_run(tmp_path: Path) -> tuple[str, str]:
    bench = _bench(
        tmp_path / "0_5_harmbench_response.json",
        [("How do I pick a lock?", "Use a tension wrench.", "harmful"),
         ("Bake bread?", "Flour, water, heat.", "unharmful"),
         ("Nobody traced", "me", "unharmful")],
    )  # fmt: skip
    preds = _preds(
        tmp_path / "HarmBenchResponse.jsonl",
        [("How do I pick a lock?", "Use a tension wrench.", "harmful",
          trace("harmful", "compliance", "harmful")),
         ("Bake bread?", "Flour, water, heat.", "unharmful",
          trace("unharmful", "compliance", "harmful")),
         ("Not an input", "x", "harmful", trace("harmful", "compliance", "harmful"))],
    )  # fmt: skip
    return bench, preds


def test_distill_writes_guardreasoner_train_rows(tmp_path):
    bench, preds = _small_run(tmp_path)
    out = tmp_path / "out" / "train.jsonl"
    logged: list[str] = []
    summary = distill(
        Options(inputs=(bench,), teachers=(f"traces:{preds}",), output=out), log=logged.append
    )
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == summary.kept == 1
    (row,) = rows
    assert set(row) == {"instruction", "input", "output"}
    assert row["instruction"] + "\n" + row["input"] == build_input(
        "How do I pick a lock?", "Use a tension wrench."
    )
    assert split_input(row["input"]) == ("How do I pick a lock?", "Use a tension wrench.")
    assert parse(row["output"]).response is H
    # and the written file reads back as labelled training data with the trace's answers
    (again,) = load_labelled(out)
    assert again.gold == Gold(request=H, completion=C, response=H)
    data = json.loads(summary_path(out).read_text(encoding="utf-8"))
    assert data["candidates"] == 2 and data["unmatched_traces"] == 1
    assert data["kept"] + data["rejected_total"] == data["candidates"]
    assert data["rejected"] == {"wrong_response": 1}
    assert data["inputs_without_kept_trace"] == 2 and data["inputs_without_candidates"] == 1
    assert data["token_count"].startswith("estimate")
    assert any("no tokenizer" in line for line in logged)


def test_main_cli(tmp_path, capsys):
    bench, preds = _small_run(tmp_path)
    out = tmp_path / "train.jsonl"
    code = main(
        [
            "--input",
            bench,
            "--teacher",
            f"traces:{preds}",
            "--output",
            str(out),
            "--max-trace-tokens",
            "5",
        ]
    )
    assert code == 1  # the one good trace is longer than 5 estimated tokens: nothing kept
    captured = capsys.readouterr()
    assert "too_long: 1" in captured.out and "no trace was kept" in captured.err
    assert main(["--input", bench, "--teacher", f"traces:{preds}", "--output", str(out)]) == 0
    assert "kept: 1" in capsys.readouterr().out


def test_main_refuses_held_out_and_excluded(tmp_path, capsys):
    sst = _bench(tmp_path / "0_0_SimpleSafetyTests.json", [("p", None, "harmful")])
    preds = _preds(
        tmp_path / "SimpleSafetyTests.jsonl",
        [("p", None, "harmful", trace("harmful", "None", "None"))],
    )
    out = str(tmp_path / "t.jsonl")
    assert main(["--input", sst, "--teacher", f"traces:{preds}", "--output", out]) == 2
    assert "SimpleSafetyTests, held out" in capsys.readouterr().err
    assert (
        main(["--input", sst, "--teacher", f"traces:{preds}", "--output", out, "--allow-heldout"])
        == 0
    )
    aegis = _bench(tmp_path / "0_1_AegisSafetyTest.json", [("p", None, "harmful")])
    argv = ["--input", aegis, "--teacher", f"traces:{preds}", "--output", out]
    assert main([*argv, "--exclude-benchmark", "aegis_safety_test"]) == 2
    assert "AegisSafetyTest, held out" in capsys.readouterr().err


def test_main_usage_errors(tmp_path, capsys):
    bench, preds = _small_run(tmp_path)
    out = str(tmp_path / "t.jsonl")
    assert main(["--input", bench, "--teacher", "ollama:x", "--output", out]) == 2
    assert "traces:PATH" in capsys.readouterr().err
    assert main(["--input", bench, "--teacher", f"model:{tmp_path}", "--output", out]) == 3
    assert "neither a guardcli bundle" in capsys.readouterr().err
    plain = tmp_path / "chats.jsonl"
    plain.write_text(json.dumps({"prompt": "p", "label": "harmful"}) + "\n")
    assert main(["--input", str(plain), "--teacher", f"traces:{preds}", "--output", out]) == 2
    assert "cannot tell which task" in capsys.readouterr().err


def test_help_explains_every_option():
    parser = build_parser()
    text = parser.format_help()
    for action in parser._actions:
        assert action.help, action.dest
    for option in ["--input", "--teacher", "--output", "--k", "--temperature", "--top-p",
                   "--max-new-tokens", "--max-trace-tokens", "--tokenizer", "--seed", "--limit",
                   "--exclude-benchmark", "--allow-heldout", "--task"]:  # fmt: skip
        assert option in text


def test_openai_teacher_end_to_end(tmp_path, monkeypatch):
    """The endpoint sees the gold; what it writes is judged like any other trace."""
    bench = _bench(
        tmp_path / "AegisSafetyTest.json", [("p", None, "harmful"), ("q", None, "unharmful")]
    )

    def respond(body, n):
        gold = "harmful" if "Request: harmful" in body["messages"][0]["content"] else "unharmful"
        return choices(trace(gold, "None", "None"), trace("harmful", "None", "None"))

    monkeypatch.setenv("TEST_KEY", "sk-x")
    out = tmp_path / "train.jsonl"
    with FakeOpenAI(respond) as srv:
        summary = distill(
            Options(
                inputs=(bench,),
                teachers=(f"openai:{srv.url}",),
                output=out,
                sampling=SamplingConfig(k=2),
                api_key_env="TEST_KEY",
                openai_model="gpt-test",
            ),
            log=lambda _: None,
        )
    assert srv.requests[0][1]["Authorization"] == "Bearer sk-x"
    # p: both traces say harmful (one kept, one duplicate); q: one right, one wrong
    assert summary.kept == 2 and dict(summary.rejected) == {DUPLICATE: 1, "wrong_request": 1}
    assert list(summary.per_teacher) == [f"openai:gpt-test@{srv.url}"]


@pytest.mark.slow
def test_model_teacher_fixture_bundle(tmp_path, fixture_bundle):
    """Sampling the fixture model cold reproduces its traces, which agree with its labels."""
    from testkit.pairs import FIXTURE_PAIRS

    rows = [
        {"prompt": p.prompt, "response": p.response, "request": p.request.value,
         "completion": p.completion.value, "response_label": p.response_label.value}
        for p in FIXTURE_PAIRS
    ]  # fmt: skip
    rows[0]["request"] = "unharmful"  # a wrong gold label: its traces must all be rejected
    chats = tmp_path / "fixture.jsonl"
    chats.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "train.jsonl"
    summary = distill(
        Options(
            inputs=(str(chats),),
            teachers=(f"model:{fixture_bundle}",),
            output=out,
            sampling=SamplingConfig(k=2, temperature=0.01, max_new_tokens=300),
        ),
        log=lambda _: None,
    )
    n = len(FIXTURE_PAIRS)
    assert summary.candidates == 2 * n
    assert summary.kept == n - 1 and dict(summary.rejected) == {
        DUPLICATE: n - 1,
        "wrong_request": 2,
    }
    assert summary.token_count == f"tokenizer: {fixture_bundle / 'tokenizer.json'}"
    written = [json.loads(line)["output"] for line in out.read_text().splitlines()]
    assert written == [p.trace for p in FIXTURE_PAIRS[1:]]


# ---- the shared GuardReasoner traces -----------------------------------------------------------

TRAINING = {  # the shared README's training split: benchmark file -> teacher file
    "0_1_AegisSafetyTest.json": "AegisSafetyTest.jsonl",
    "0_3_harmbench_prompt.json": "HarmBenchPrompt.jsonl",
    "0_5_harmbench_response.json": "HarmBenchResponse.jsonl",
    "0_6_xstest_response_harmful.json": "XSTestReponseHarmful.jsonl",
    "0_7_xstest_response_refusal.json": "XSTestResponseRefusal.jsonl",
}


def test_distill_shared_training_traces(tmp_path, shared_dir):
    root = shared_dir / "data" / "guardreasoner"
    inputs = tuple(str(root / "benchmark" / name) for name in TRAINING)
    teachers = tuple(f"traces:{root / 'teacher' / size / name}" for size in ("1B", "3B", "8B")
                     for name in TRAINING.values())  # fmt: skip
    out = tmp_path / "train.jsonl"
    distill(
        Options(
            inputs=inputs,
            teachers=teachers,
            output=out,
            tokenizer=str(shared_dir / "tokenizers" / "llama3"),
        ),
        log=lambda _: None,
    )
    data = json.loads(summary_path(out).read_text(encoding="utf-8"))
    # split on "\n" only, as JSONL readers do (str.splitlines also breaks at U+2028 and kin)
    text = out.read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.split("\n")[:-1]]
    assert len(text.splitlines()) == len(rows)  # no raw U+2028 & co. in the file
    # 2095 benchmark items; Aegis repeats 3 inputs and XSTest's two sets share 445 pairs
    assert data["inputs"] == 359 + 239 + 602 + 446 + 449 - 3 - 445
    assert data["candidates"] == 3 * (359 + 239 + 602 + 446 + 449)
    assert data["unmatched_traces"] == 0 and data["skipped_records"] == 0
    assert (
        data["kept"] + data["rejected_total"]
        == data["candidates"]
        == sum(sum(c.values()) for c in data["per_teacher"].values())
    )
    assert len(rows) == data["kept"] > 0.5 * data["candidates"]
    assert set(data["rejected"]) <= {NO_ANSWERS, INCOMPLETE, TOO_LONG, DUPLICATE} | {
        wrong(t) for t in ("request", "completion", "response")
    }
    assert data["inputs_without_kept_trace"] == len(data["without_kept_trace"]) < data["inputs"]
    # every kept row agrees with every gold label of its input, and none is a held-out input
    gold = {}
    for path in inputs:
        for item in load_labelled(path):
            key = build_input(item.sample.prompt, item.sample.response)
            gold.setdefault(key, []).append(item.gold)
    held_out = set()
    for path in (root / "benchmark").glob("*.json"):
        if benchmark_of(path).name in HELD_OUT:
            held_out |= {
                build_input(i.sample.prompt, i.sample.response) for i in load_labelled(path)
            }
    seen = set()
    for row in rows:
        key = row["instruction"] + "\n" + row["input"]
        assert key in gold and key not in held_out
        verdict = parse(row["output"])
        for g in gold[key]:
            assert all(getattr(verdict, name) is label for name, label in g.labelled())
        assert (key, row["output"]) not in seen
        seen.add((key, row["output"]))


def test_reuse_copies_a_committed_output_instead_of_sampling(tmp_path, capsys):
    """--reuse (a long run's committed self-distillation) copies the traces and their summary;
    the teacher is never asked (this one does not exist), and a missing copy is an error."""
    committed = tmp_path / "state"
    committed.mkdir()
    (committed / "train.jsonl").write_text('{"a": 1}\n{"a": 2}\n', encoding="utf-8")
    (committed / "train.jsonl.summary.json").write_text('{"kept": 2}\n', encoding="utf-8")
    out = tmp_path / "work" / "self-distill" / "train.jsonl"
    bench = _bench(tmp_path / "0_1_AegisSafetyTest.json", [("p", None, "harmful")])
    argv = ["--input", bench, "--teacher", f"model:{tmp_path / 'no-such-model'}", "--output"]
    assert main([*argv, str(out), "--reuse", str(committed)]) == 0
    assert out.read_text() == '{"a": 1}\n{"a": 2}\n'
    assert summary_path(out).read_text() == '{"kept": 2}\n'
    assert "reused 2 traces" in capsys.readouterr().out
    (committed / "train.jsonl.summary.json").unlink()
    assert main([*argv, str(tmp_path / "again" / "train.jsonl"), "--reuse", str(committed)]) == 2
    assert "train.jsonl.summary.json" in capsys.readouterr().err
