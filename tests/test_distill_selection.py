"""export.distill's input selection: the validation split and one request label left out before
any sampling, and each left-out input counted in the summary (the recipe's self-distillation
samples the harmless training prompts only, never a validation prompt)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from export.distill.command import Options, distill
from export.distill.inputs import Selection, gather_inputs, select
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


def test_label_limits_take_each_side_from_the_end_and_count_the_rest(tmp_path):
    """--label-limit gives each request label its own budget in one run; --from-end walks the
    file last first; what is left out is counted, never silently dropped."""
    rows = [(f"p{i}", "harmful" if i % 3 == 0 else "unharmful") for i in range(12)]
    inputs = gather_inputs([_prompts(tmp_path / "p.jsonl", rows)])
    kept, selection = select(inputs, label_limits={"unharmful": 3, "harmful": 2}, from_end=True)
    prompts = [entry.item.sample.prompt for entry in kept.by_key.values()]
    assert prompts == ["p11", "p10", "p9", "p8", "p6"]  # p7: a fourth harmless one, over
    assert selection == Selection(held_out=0, other_label=0, over_limit=12 - 5)
    only, selection = select(inputs, label_limits={"harmful": 2})
    assert [e.item.gold.request.value for e in only.by_key.values()] == ["harmful"] * 2
    assert selection == Selection(other_label=8, over_limit=2)
    assert list(select(inputs, limit=2)[0].by_key) == list(inputs.by_key)[:2]


def test_label_limit_is_checked_when_parsed(tmp_path, capsys):
    from export.distill.command import build_parser, main

    source = _prompts(tmp_path / "p.jsonl", ROWS)
    base = ["--input", source, "--teacher", "traces:x", "--output", str(tmp_path / "o.jsonl")]
    for bad in ("harmful", "safe=3", "harmful=0", "harmful=x"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*base, "--label-limit", bad])
        assert "harmful=N or unharmful=N" in capsys.readouterr().err
    args = build_parser().parse_args([*base, "--label-limit", "unharmful=7"])
    assert args.label_limits == [("unharmful", 7)]
    both = [*base, "--label-limit", "harmful=2", "--request-label", "harmful"]
    assert main(both) == 2
    assert "--label-limit and --request-label" in capsys.readouterr().err
    assert main([*base, "--label-limit", "harmful=2", "--label-limit", "harmful=3"]) == 2
    assert "names a label twice" in capsys.readouterr().err


def test_reuse_unpacks_a_gzipped_committed_output(tmp_path, capsys):
    """Committed traces may be gzipped (a few MB of JSONL are a few hundred KB in git)."""
    import gzip

    from export.distill.command import main

    committed = tmp_path / "state"
    committed.mkdir()
    rows = '{"a": 1}\n{"a": 2}\n{"a": 3}\n'
    (committed / "train.jsonl.gz").write_bytes(gzip.compress(rows.encode()))
    (committed / "train.jsonl.summary.json").write_text('{"kept": 3}\n', encoding="utf-8")
    out = tmp_path / "work" / "broad-distill" / "train.jsonl"
    source = _prompts(tmp_path / "p.jsonl", ROWS)
    argv = ["--input", source, "--teacher", "model:nowhere", "--output", str(out)]
    assert main([*argv, "--reuse", str(committed)]) == 0
    assert out.read_text() == rows
    assert summary_path(out).read_text() == '{"kept": 3}\n'
    assert "reused 3 traces" in capsys.readouterr().out
