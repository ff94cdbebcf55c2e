"""export.pipeline: recipe checks in milliseconds, and the whole recipe end to end on a tiny model.

The end-to-end run starts from the fixture model's checkpoint (a tiny Llama that already writes
GuardReasoner traces for testkit/fixture.py's pairs), so after a few steps per stage the final
bundle can be asked for real, parseable Answers blocks: distill keeps the right traces and
rejects the wrong ones, R-SFT lowers the loss, HS-DPO mines pairs from the model's samples and
a diversity file of wrong traces, and the final bundle loads in guardcli and is evaluated.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from export.pipeline import main, plan, resume_flag, run, stage_parser
from export.recipe import load_recipe, to_argv
from guardcli.core.prompt import INSTRUCTION, build_input, format_pair
from guardcli.core.records import Label
from guardcli.errors import UsageError
from testkit.pairs import FIXTURE_PAIRS


def _recipe(tmp_path: Path, **data) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"workdir": str(tmp_path / "run"), "base": "b", **data}))
    return path


def test_options_become_flags_checked_against_the_stage_parser():
    distill = stage_parser("export.distill.command")
    argv = to_argv(
        distill,
        {"input": ["a.json", "b.json"], "teacher": ["traces:x", "traces:y"], "k": 2},
        "distill",
    )
    assert argv == ["--input", "a.json", "b.json", "--teacher", "traces:x", "--teacher",
                    "traces:y", "--k", "2"]  # fmt: skip
    parsed = distill.parse_args([*argv, "--output", "o.jsonl"])
    assert parsed.inputs == ["a.json", "b.json"] and parsed.teachers == ["traces:x", "traces:y"]
    rsft = stage_parser("export.train.rsft")
    assert to_argv(rsft, {"lora": True, "max_steps": 3, "bf16": "no"}, "rsft") == [
        "--lora", "--max-steps", "3", "--bf16", "no"]  # fmt: skip
    assert to_argv(rsft, {"lora": False}, "rsft") == []
    with pytest.raises(UsageError, match="'max-stepz' is not an option"):
        to_argv(rsft, {"max-stepz": 3}, "rsft")


def test_recipe_errors_are_one_line(tmp_path):
    with pytest.raises(UsageError, match="unknown recipe key"):
        load_recipe(_recipe(tmp_path, trian={}))
    with pytest.raises(UsageError, match="evaluate.models has best"):
        load_recipe(_recipe(tmp_path, evaluate={"models": ["best"]}))
    bad = tmp_path / "bad.yaml"
    bad.write_text("workdir: [")
    with pytest.raises(UsageError, match="invalid YAML"):
        load_recipe(bad)
    with pytest.raises(UsageError, match=r"rsft\.output is set by the pipeline"):
        plan(load_recipe(_recipe(tmp_path, rsft={"output": "elsewhere"})))


def test_plan_joins_the_stages(tmp_path):
    recipe = load_recipe(
        _recipe(tmp_path, evaluate={"models": ["rsft", "hsdpo"], "bench": ["x.json"], "limit": 5})
    )
    stages = {s.name: s for s in plan(recipe)}
    assert list(stages) == ["distill", "rsft", "bundle-rsft", "hsdpo", "bundle-hsdpo", "evaluate"]
    train = str(recipe.workdir / "distill" / "train.jsonl")
    assert stages["rsft"].argv[:4] == ["--model", "b", "--data", train]
    hsdpo = stages["hsdpo"].argv
    assert hsdpo[hsdpo.index("--sample-model") + 1] == str(recipe.workdir / "bundles" / "rsft")
    assert hsdpo[hsdpo.index("--data") + 1] == train
    evaluate = stages["evaluate"].argv
    assert evaluate.count("--model") == 2 and evaluate[-4:] == ["--bench", "x.json", "--limit", "5"]


def test_self_distillation_adds_a_second_sft_round_that_hsdpo_starts_from(tmp_path):
    recipe = load_recipe(
        _recipe(
            tmp_path,
            **{"self-distill": {"input": ["p.jsonl"], "k": 2}, "rsft-self": {"max-steps": 3}},
        )
    )
    stages = {s.name: s for s in plan(recipe)}
    work = recipe.workdir
    assert list(stages)[:7] == [
        "distill",
        "rsft",
        "bundle-rsft",
        "self-distill",
        "rsft-self",
        "bundle-rsft-self",
        "hsdpo",
    ]
    teacher = stages["self-distill"].argv
    assert teacher[teacher.index("--teacher") + 1] == f"model:{work / 'bundles' / 'rsft'}"
    again = stages["rsft-self"].argv
    self_train, train = work / "self-distill" / "train.jsonl", work / "distill" / "train.jsonl"
    assert again[:5] == ["--model", str(work / "rsft"), "--data", str(self_train), str(train)]
    assert again[-2:] == ["--max-steps", "3"]
    hsdpo = stages["hsdpo"].argv
    assert hsdpo[hsdpo.index("--model") + 1] == str(work / "rsft-self")
    assert hsdpo[hsdpo.index("--sample-model") + 1] == str(work / "bundles" / "rsft-self")
    with pytest.raises(UsageError, match="teacher"):
        plan(load_recipe(_recipe(tmp_path, **{"self-distill": {"teacher": ["x"]}})))
    on_gpu = {"self-distill": {"input": ["p.jsonl"], "sample-from": "checkpoint"}}
    stages = {s.name: s for s in plan(load_recipe(_recipe(tmp_path, **on_gpu)))}
    teacher = stages["self-distill"].argv
    assert teacher[teacher.index("--teacher") + 1] == f"model:{work / 'rsft'}"
    assert "--sample-from" not in teacher
    with pytest.raises(UsageError, match="bundle or checkpoint"):
        plan(load_recipe(_recipe(tmp_path, **{"self-distill": {"sample-from": "gpu"}})))


def test_a_broad_round_samples_phase_two_and_trains_on_its_traces_alone(tmp_path):
    """broad-distill samples the rsft-self bundle; rsft-broad continues from rsft-self on
    those traces only, its replay-count drawn from the distilled teacher traces (joined by the
    pipeline unless the recipe names replay); HS-DPO, when present, starts from it."""
    rounds = {
        "self-distill": {"input": ["p.jsonl"]},
        "broad-distill": {"input": ["p.jsonl"], "label-limit": ["unharmful=3", "harmful=2"]},
        "rsft-broad": {"trainer": "fast", "replay-count": 5},
    }
    recipe = load_recipe(_recipe(tmp_path, **rounds))
    stages = {s.name: s for s in plan(recipe)}
    work = recipe.workdir
    assert list(stages)[3:10] == [
        "self-distill",
        "rsft-self",
        "bundle-rsft-self",
        "broad-distill",
        "rsft-broad",
        "bundle-rsft-broad",
        "hsdpo",
    ]
    sample = stages["broad-distill"].argv
    assert sample[sample.index("--teacher") + 1] == f"model:{work / 'bundles' / 'rsft-self'}"
    assert sample[sample.index("--output") + 1] == str(work / "broad-distill" / "train.jsonl")
    assert "--label-limit" in sample and "unharmful=3" in sample and "harmful=2" in sample
    broad = stages["rsft-broad"].argv
    assert broad[:5] == [
        "--model",
        str(work / "rsft-self"),
        "--traces",
        str(work / "broad-distill" / "train.jsonl"),
        "--output",
    ]
    assert broad[broad.index("--replay") + 1] == str(work / "distill" / "train.jsonl")
    assert broad[broad.index("--replay-count") + 1] == "5"
    hsdpo = stages["hsdpo"].argv
    assert hsdpo[hsdpo.index("--model") + 1] == str(work / "rsft-broad")
    named = {**rounds, "rsft-broad": {"trainer": "fast", "replay-count": 5, "replay": ["r.jsonl"]}}
    broad = {s.name: s for s in plan(load_recipe(_recipe(tmp_path, **named)))}["rsft-broad"].argv
    assert broad.count("--replay") == 1 and broad[broad.index("--replay") + 1] == "r.jsonl"
    without_self = {"broad-distill": {"input": ["p.jsonl"]}}
    stages = {s.name: s for s in plan(load_recipe(_recipe(tmp_path, **without_self)))}
    sample = stages["broad-distill"].argv
    assert sample[sample.index("--teacher") + 1] == f"model:{work / 'bundles' / 'rsft'}"
    with pytest.raises(UsageError, match="broad-distill.sample-from"):
        plan(load_recipe(_recipe(tmp_path, **{"broad-distill": {"sample-from": "gpu"}})))


def test_dry_run_prints_every_command_and_runs_nothing(tmp_path, capsys):
    assert main(["--config", str(_recipe(tmp_path)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[1/5] distill: -m export.distill --output" in out
    assert "[5/5] bundle-hsdpo: -m export.convert --model" in out
    assert "bundle-base" not in out  # nothing is evaluated, so the base is never converted
    assert not (tmp_path / "run").exists()
    assert main(["--config", str(_recipe(tmp_path, evaluate={"bench": ["x"]})), "--dry-run"]) == 0
    assert "[6/7] bundle-base: -m export.convert --model b" in capsys.readouterr().out


def test_redo_never_deletes_outside_the_workdir(tmp_path):
    recipe = load_recipe(_recipe(tmp_path))
    with pytest.raises(UsageError, match="not a stage"):
        run(recipe, only=["distill"], redo="rsft", dry_run=True)


# ---- end to end ------------------------------------------------------------------------------


def _flip(trace: str) -> str:
    """The same trace with a wrong request label: what a mistaken teacher writes."""
    head, _, tail = trace.rpartition("Request: ")
    word, _, rest = tail.partition("\n")
    return f"{head}Request: {'unharmful' if word == 'harmful' else 'harmful'}\n{rest}"


def _labelled(path: Path) -> Path:
    rows = [
        {
            "id": p.id,
            "prompt": p.prompt,
            "response": p.response,
            "request": p.request.value,
            "completion": p.completion.value,
            "response_label": p.response_label.value,
        }
        for p in FIXTURE_PAIRS
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _traces(path: Path, traces) -> Path:  # noqa: ANN001
    rows = [
        {"prompt": build_input(p.prompt, p.response), "label": p.request.value, "predict": t(p)}
        for p in FIXTURE_PAIRS
        for t in traces
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _benchmark(path: Path) -> Path:
    rows = [
        {
            "instruction": INSTRUCTION,
            "input": format_pair(p.prompt, p.response),
            "output": p.request.value,
        }  # fmt: skip
        for p in FIXTURE_PAIRS
    ]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


@pytest.mark.slow
def test_tiny_recipe_end_to_end(fixture_checkpoint, tmp_path, capsys):
    from safetensors.numpy import load_file

    base = fixture_checkpoint
    data = tmp_path / "data"
    data.mkdir()
    labelled = _labelled(data / "labelled.jsonl")
    teacher = _traces(data / "AegisSafetyTest.jsonl", [lambda p: p.trace, lambda p: _flip(p.trace)])
    (data / "wrong").mkdir()
    wrong = _traces(data / "wrong" / "AegisSafetyTest.jsonl", [lambda p: _flip(p.trace)])
    bench = _benchmark(data / "HarmBenchPrompt.json")
    work = tmp_path / "run"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "workdir": str(work),
                "base": str(base),
                "distill": {"input": [str(labelled)], "teacher": [f"traces:{teacher}"]},
                "rsft": {
                    "max-steps": 4,
                    "batch-size": 2,
                    "lr": 1e-4,
                    "save-steps": 2,
                    "warmup-ratio": 0.0,
                },  # fmt: skip
                "hsdpo": {
                    "k": 2,
                    "max-new-tokens": 200,
                    "extra-traces": [str(wrong)],
                    "max-steps": 2,
                    "batch-size": 2,
                    "lr": 1e-5,
                },  # fmt: skip
                "convert": {"validate": 2, "max-new-tokens": 32},
                "evaluate": {"models": ["hsdpo"], "bench": [str(bench)], "max-new-tokens": 256},
            }
        )
    )
    assert main(["--config", str(recipe)]) == 0

    summary = json.loads((work / "distill" / "train.jsonl.summary.json").read_text())
    assert summary["kept"] == len(FIXTURE_PAIRS)  # every right trace, no wrong one
    rsft_log = json.loads((work / "rsft" / "train_log.json").read_text())
    losses = [point["loss"] for point in rsft_log["loss_curve"]]
    assert losses[-1] < losses[0]
    before = load_file(str(base / "model.safetensors"))
    after = load_file(str(work / "rsft" / "model.safetensors"))
    assert any((before[k] != after[k]).any() for k in before)
    pairs = (work / "hsdpo" / "pairs.jsonl").read_text().splitlines()
    assert pairs  # the model's right samples against the diversity file's wrong traces
    assert all(json.loads(line)["n_wrong"] >= 1 for line in pairs)
    evaluation = json.loads((work / "eval.json").read_text())["rows"]
    [row] = evaluation
    assert row["items"] == len(FIXTURE_PAIRS) and row["parse_failures"] < row["items"]
    assert any(label is Label.HARMFUL for label in (p.request for p in FIXTURE_PAIRS))

    # A second run finds everything done and runs nothing.
    capsys.readouterr()
    assert main(["--config", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert out.count("done already") == 6 and "0 stage(s) ran" in out
    log = json.loads((work / "pipeline_log.json").read_text())
    assert [r["stage"] for r in log] == ["distill", "rsft", "bundle-rsft", "hsdpo",
                                         "bundle-hsdpo", "evaluate"]  # fmt: skip
    assert all(r["status"] == "ok" and r["seconds"] > 0 for r in log)


def test_a_fast_trainer_recipe_that_skips_hsdpo(tmp_path):
    """``trainer: fast`` runs export.train.fast_sft on the traces (resumable from its state), and
    ``hsdpo: skip`` ends the recipe after R-SFT's bundle."""
    recipe = load_recipe(
        _recipe(tmp_path, rsft={"trainer": "fast", "lora-layers": 8, "epochs": 2}, hsdpo="skip")
    )
    stages = {s.name: s for s in plan(recipe)}
    assert list(stages) == ["distill", "rsft", "bundle-rsft"]
    rsft = stages["rsft"]
    train = str(recipe.workdir / "distill" / "train.jsonl")
    assert rsft.module == "export.train.fast_sft"
    assert rsft.argv[:4] == ["--model", "b", "--traces", train]
    assert rsft.argv[-4:] == ["--epochs", "2", "--lora-layers", "8"]
    assert resume_flag(rsft) == []
    (rsft.output / "state").mkdir(parents=True)
    (rsft.output / "state" / "progress.json").write_text("{}")
    assert resume_flag(rsft) == ["--resume"]


def test_an_unknown_trainer_is_refused(tmp_path):
    with pytest.raises(UsageError, match="trainer"):
        plan(load_recipe(_recipe(tmp_path, rsft={"trainer": "keras"})))
