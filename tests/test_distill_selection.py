"""export.distill's input selection: the validation split and one request label left out before
any sampling, and each left-out input counted in the summary (the recipe's self-distillation
samples the harmless training prompts only, never a validation prompt)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from export.distill.command import Options, distill
from export.distill.inputs import gather_inputs, select
from export.distill.judging import summary_path
from guardcli.core.prompt import build_input, split_input
from guardcli.errors import InputError


def _prompts(path: Path, rows: list[tuple[str, str]]) -> str:
    lines = [json.dumps({"prompt": p, "request": label, "source": "S"}) for p, label in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


ROWS = [("a", "harmful"), ("b", "unharmful"), ("c", "unharmful"), ("d", "unharmful")]


def test_select_counts_what_it_leaves_out(tmp_path):
    from export.data.splits import prompt_key

    inputs = gather_inputs([_prompts(tmp_path / "p.jsonl", ROWS)])
    chosen, selection = select(inputs, held={prompt_key("c")}, request="unharmful", limit=1)
    assert [e.item.sample.prompt for e in chosen.by_key.values()] == ["b"]
    assert (selection.held_out, selection.other_label, selection.over_limit) == (1, 1, 1)
    everything, nothing = select(inputs)
    assert len(everything.by_key) == 4 and nothing.held_out == nothing.over_limit == 0


def test_holdout_split_keeps_validation_prompts_from_the_teacher(tmp_path, monkeypatch):
    """Self-distillation over the labelled prompts never samples a validation prompt."""
    from export.data import splits

    prompts = Path(_prompts(tmp_path / "prompts.jsonl", ROWS))
    monkeypatch.setattr(splits, "PROMPTS", prompts)
    lines = tmp_path / "validation.lines"
    splits.write_lines(lines, {3}, "")  # line 3 = "c"
    preds = tmp_path / "AegisSafetyTest.jsonl"  # bare labels score the prompt task
    answers = "Answers: \nRequest: {}\nCompletion: None\nResponse: None"
    preds.write_text(
        "".join(
            json.dumps(
                {"prompt": build_input(p, None), "label": lab, "predict": answers.format(lab)}
            )
            + "\n"
            for p, lab in ROWS
        ),
        encoding="utf-8",
    )
    out = tmp_path / "self.jsonl"
    summary = distill(
        Options(
            inputs=(str(prompts),),
            teachers=(f"traces:{preds}",),
            output=out,
            holdout_split=lines,
            request_label="unharmful",
        ),
        log=lambda _: None,
    )
    written = [split_input(json.loads(r)["input"])[0] for r in out.read_text().splitlines()]
    assert written == ["b", "d"]
    assert summary.inputs == 2 and summary.kept == 2
    data = json.loads(summary_path(out).read_text(encoding="utf-8"))
    assert data["left_out"] == {"validation_split": 1, "other_request_label": 1, "over_limit": 0}
    with pytest.raises(InputError, match="--holdout-split"):
        distill(
            Options(
                inputs=(str(prompts),),
                teachers=(f"traces:{preds}",),
                output=out,
                holdout_split=tmp_path / "missing.lines",
            )
        )
    # on a machine without ../shared (a GPU lease), a copy of the prompts file stands in
    monkeypatch.setattr(splits, "PROMPTS", tmp_path / "not-here.jsonl")
    options = Options(
        inputs=(str(prompts),),
        teachers=(f"traces:{preds}",),
        output=out,
        holdout_split=lines,
        request_label="unharmful",
    )
    with pytest.raises(InputError, match="--holdout-prompts"):
        distill(options, log=lambda _: None)
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(prompts.read_bytes())
    distill(replace(options, holdout_prompts=copy), log=lambda _: None)
    written = [split_input(json.loads(r)["input"])[0] for r in out.read_text().splitlines()]
    assert written == ["b", "d"]
