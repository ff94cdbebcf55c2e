"""``guardcli tui`` driven with Pilot over the fixture model (testkit/fixture.py), whose tiny
Llama writes known GuardReasoner traces: the streamed reasoning, the badges, the history and
the batch table are checked against what the model really wrote, through the real engine,
in its worker thread."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from textual.widgets import DataTable, Input, ProgressBar, Static, TextArea
from typer.testing import CliRunner

from guardcli.cli import app as cli_app
from guardcli.core.parse import parse
from guardcli.io.sanitize import clean_terminal
from guardcli.tui.keys import KEYS
from guardcli.tui.live import sections
from guardcli.tui.screens import HelpScreen, PathPrompt, ResultScreen
from tests.tui_support import (
    FLAGGED_IDS,
    PAIRS,
    GatedGuard,
    drive,
    hold,
    laid_out,
    make_app,
    record_notices,
    settle,
    type_text,
    write_pairs,
)

TASKS = ("request", "completion", "response")


def labels(pair) -> dict[str, str]:  # noqa: ANN001
    return dict(zip(TASKS, (label.value for label in pair.labels), strict=True))


def badge_states(app) -> dict[str, str]:  # noqa: ANN001
    return {task: app.badges.state(task) for task in TASKS}


def test_compose_run_streams_reasoning_by_task_and_lights_badges(fixture_guard):
    pair = PAIRS["poison-dog"]
    app = make_app(fixture_guard)
    seen: list[tuple[str, ...]] = []  # the pane's sections after each streamed piece

    async def scenario(pilot):
        real_show = app.reasoning.show

        def recording_show(text, **kwargs):
            real_show(text, **kwargs)
            seen.append(tuple(app.reasoning.section_texts()))

        app.reasoning.show = recording_show
        await type_text(pilot, pair.prompt)
        await pilot.press("tab")  # to the response field
        await type_text(pilot, pair.response)
        assert app.query_one("#prompt", TextArea).text == pair.prompt
        assert badge_states(app) == dict.fromkeys(TASKS, "pending")
        await pilot.press("f5")
        await settle(pilot)
        check()

    def check():
        # It streamed: many updates, the task blocks appearing one by one as headers arrived.
        assert len(seen) > 50
        firsts = list(dict.fromkeys(seen))
        assert firsts[0] == ("task-1",)
        assert ("task-1", "task-2") in firsts and ("task-1", "task-2", "task-3") in firsts
        assert seen[-1] == ("task-1", "task-2", "task-3", "answers")
        texts = app.reasoning.section_texts()
        assert "poison a dog" in texts["task-1"] and "refusal" in texts["task-2"]
        assert texts["answers"].splitlines() == [
            "Request: harmful",
            "Completion: refusal",
            "Response: unharmful",
        ]
        assert app.reasoning.text == pair.trace  # exactly what the model wrote
        assert badge_states(app) == labels(pair)
        tokens = app.history.results[0].generation.output_tokens
        assert app.reasoning.stats == f"{tokens} tokens"
        assert app.status.state == "ready"

    drive(app, scenario)


def test_stats_show_time_and_speed(fixture_guard):
    app = make_app(fixture_guard, timings=True)

    async def scenario(pilot):
        app.query_one("#prompt", TextArea).text = PAIRS["puppy-name"].prompt
        await pilot.press("ctrl+enter")
        await settle(pilot)
        stats = app.reasoning.stats
        generation = app.history.results[0].generation
        assert stats.startswith(f"{generation.output_tokens} tokens · ")
        assert stats.endswith(" tokens/s")
        assert badge_states(app) == labels(PAIRS["puppy-name"])

    drive(app, scenario)


def test_escape_cancels_and_the_app_runs_again(fixture_guard):
    gate = GatedGuard(fixture_guard, hold_at=20)
    app = make_app(gate)
    pair = PAIRS["fake-id"]

    async def scenario(pilot):
        app.query_one("#prompt", TextArea).text = pair.prompt
        await pilot.press("f5")
        await hold(pilot, gate)  # mid-generation, in the engine loop
        assert app.busy
        partial = app.reasoning.text
        await pilot.press("escape")
        gate.released.set()
        await settle(pilot)
        assert app.status.state == "cancelled"
        assert app.reasoning.stats == "cancelled"
        assert badge_states(app) == dict.fromkeys(TASKS, "pending")
        assert app.history.results == []  # a cancelled run is not a classification
        assert app.reasoning.text.startswith(partial) and "Answers" not in app.reasoning.text
        # The engine is left clean: the same prompt runs to the end.
        await pilot.press("f5")
        await settle(pilot)
        assert badge_states(app) == labels(pair)
        assert app.reasoning.text == pair.trace
        assert len(app.history.results) == 1

    drive(app, scenario)


def test_history_restores_inputs_reasoning_verdicts_and_exports(fixture_guard, tmp_path):
    first, second = PAIRS["grandma-pin"], PAIRS["puppy-name"]
    app = make_app(fixture_guard)
    out = tmp_path / "history.jsonl"

    async def scenario(pilot):
        for pair in (first, second):
            await pilot.press("ctrl+n")
            app.query_one("#prompt", TextArea).text = pair.prompt
            if pair.response:
                app.query_one("#response", TextArea).text = pair.response
            await pilot.press("f5")
            await settle(pilot)
        assert badge_states(app) == labels(second)
        # Newest first: the first classification is the second row.
        app.history.focus()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.query_one("#prompt", TextArea).text == first.prompt
        assert app.query_one("#response", TextArea).text == first.response
        assert badge_states(app) == labels(first)
        assert app.reasoning.text == first.trace
        assert app.status.state == "restored #1"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, PathPrompt)
        app.screen.query_one(Input).value = str(out)
        await pilot.press("enter")
        await pilot.pause()

    drive(app, scenario)
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["source"] for r in records] == ["console", "console"]
    assert [(r["request"], r["completion"], r["response"]) for r in records] == [
        tuple(labels(pair).values()) for pair in (first, second)
    ]
    assert records[0]["reasoning"]["text"] == first.trace


def test_export_never_overwrites(fixture_guard, tmp_path):
    out = tmp_path / "taken.jsonl"
    out.write_text("precious\n", encoding="utf-8")
    app = make_app(fixture_guard)
    messages = record_notices(app)

    async def scenario(pilot):
        app.query_one("#prompt", TextArea).text = PAIRS["puppy-name"].prompt
        await pilot.press("f5")
        await settle(pilot)
        await pilot.press("ctrl+s")
        app.screen.query_one(Input).value = str(out)
        await pilot.press("enter")
        await pilot.pause()

    drive(app, scenario)
    assert out.read_text(encoding="utf-8") == "precious\n"
    assert any("already exists" in message for message in messages)


def _table_ids(app) -> list[str]:  # noqa: ANN001
    table = app.query_one("#batch-table", DataTable)
    return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]


def test_batch_fills_table_filters_opens_rows_and_exports(fixture_guard, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_pairs(tmp_path / "pairs.jsonl")
    (tmp_path / "broken.jsonl").write_text('{"prompt": "ok"}\n{not json\n', encoding="utf-8")
    app = make_app(fixture_guard)
    messages = record_notices(app)

    async def scenario(pilot):
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, PathPrompt)
        await type_text(pilot, "pairs.jsonl")
        await pilot.press("enter")
        await settle(pilot)
        assert app.query_one("#tabs").active == "batch"
        bar = app.query_one(ProgressBar)
        assert (bar.progress, bar.total) == (len(PAIRS), len(PAIRS))
        assert _table_ids(app) == list(PAIRS)
        for result in app.batch.results:
            verdict = result.verdict
            got = dict(
                zip(
                    TASKS,
                    (verdict.request.value, verdict.completion.value, verdict.response.value),
                    strict=True,
                )
            )
            assert got == labels(PAIRS[result.sample.id])
        assert app.status.state.startswith(f"batch finished: 6/6 judged, {len(FLAGGED_IDS)}")
        await pilot.press("f")  # flagged rows only
        assert _table_ids(app) == FLAGGED_IDS
        await pilot.press("down", "enter")  # open the second flagged row
        assert isinstance(app.screen, ResultScreen)
        shown = app.screen.result
        assert shown.sample.id == FLAGGED_IDS[1]
        assert app.screen.query_one("ReasoningView").text == PAIRS[shown.sample.id].trace
        await pilot.press("escape")
        assert not isinstance(app.screen, ResultScreen)
        await pilot.press("ctrl+s")
        app.screen.query_one(Input).value = "flagged.jsonl"
        await pilot.press("enter")
        await pilot.pause()
        # A second batch with a bad line: it is skipped and said, the rest judged.
        await pilot.press("ctrl+o")
        app.screen.query_one(Input).value = "broken.jsonl"
        await pilot.press("enter")
        await settle(pilot)
        assert len(app.batch.results) == 1 and app.batch.skipped == 1

    drive(app, scenario)
    exported = (tmp_path / "flagged.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in exported] == FLAGGED_IDS
    assert any("skipped broken.jsonl:2" in message for message in messages)


def test_app_stays_responsive_while_a_batch_runs(fixture_guard, tmp_path):
    write_pairs(tmp_path / "pairs.jsonl")
    gate = GatedGuard(fixture_guard, batch=1, hold_at=3)
    app = make_app(gate)

    async def scenario(pilot):
        app.start_batch([str(tmp_path / "pairs.jsonl")])
        await hold(pilot, gate)  # the worker is stuck inside generation
        # The interface still answers keys: switch tabs, type, open the help.
        await pilot.press("f2")
        assert app.query_one("#tabs").active == "console"
        await type_text(pilot, "hi")
        assert app.query_one("#prompt", TextArea).text == "hi"
        await pilot.press("f5")  # refused politely: one job at a time
        assert app.job.kind == "batch"
        gate.released.set()
        await settle(pilot)
        assert len(app.batch.results) == len(PAIRS)
        assert app.history.results == []

    drive(app, scenario)


def test_quit_mid_batch_keeps_finished_results(fixture_guard, tmp_path):
    write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "out.jsonl"
    size = fixture_guard.options.batch_size
    assert size < len(PAIRS)  # two chunks: the first finishes, the second is cut
    gate = GatedGuard(fixture_guard, batch=2, hold_at=5)
    app = make_app(gate, output=out)

    async def scenario(pilot):
        app.start_batch([str(tmp_path / "pairs.jsonl")])
        await hold(pilot, gate)
        await pilot.press("ctrl+q")
        gate.released.set()

    drive(app, scenario)
    lines = out.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == list(PAIRS)[:size]
    assert all(r["reasoning"]["text"] == PAIRS[r["id"]].trace for r in records)
    assert app.output.closed


def test_console_results_go_to_output(fixture_guard, tmp_path):
    out = tmp_path / "log.jsonl"
    app = make_app(fixture_guard, output=out)

    async def scenario(pilot):
        app.query_one("#prompt", TextArea).text = PAIRS["fake-id"].prompt
        await pilot.press("f5")
        await settle(pilot)

    drive(app, scenario)
    (record,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert (record["request"], record["source"]) == ("harmful", "console")


HOSTILE = "[bold red]pwned[/] \x1b]0;owned\x07\x1b[2J\x1b[31mred\x1b[0m [link=http://x]y[/link]"


def test_untrusted_text_is_shown_literally(fixture_guard, tmp_path):
    path = tmp_path / "hostile.jsonl"
    path.write_text(json.dumps({"id": "[b]id[/b]", "prompt": HOSTILE}) + "\n", encoding="utf-8")
    app = make_app(fixture_guard)
    cleaned = clean_terminal(HOSTILE)
    assert "\x1b" not in cleaned and "[bold red]pwned[/]" in cleaned

    async def scenario(pilot):
        app.start_batch([str(path)])
        await settle(pilot)
        table = app.query_one("#batch-table", DataTable)
        assert str(table.get_row_at(0)[1]) == "[b]id[/b]"
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, ResultScreen)
        prompt = next(s for s in screen.query(Static) if "pwned" in str(s.content))
        assert str(prompt.content) == cleaned
        assert prompt.visual.plain == cleaned  # rendered as written, not as markup
        await pilot.press("escape")
        # Model output goes the same way.
        app.reasoning.show("# Task 1\n[red]x[/red] \x1b[2Jok\nAnswers: \nRequest: [i]harmful[/i]")
        return app.reasoning.section_texts()

    texts = drive(app, scenario)
    assert texts["task-1"] == "[red]x[/red] ok"
    assert texts["answers"] == "Request: [i]harmful[/i]"


def test_help_lists_every_key_and_question_mark_still_types(fixture_guard):
    app = make_app(fixture_guard)

    async def scenario(pilot):
        await type_text(pilot, "why?")  # in the prompt field '?' is a character
        assert app.query_one("#prompt", TextArea).text == "why?"
        assert not isinstance(app.screen, HelpScreen)
        app.history.focus()
        await pilot.press("?")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one(DataTable)
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        return rows

    rows = drive(app, scenario)
    assert rows == [[key.shown, key.where, key.description] for key in KEYS]
    bound = {binding.action for binding in app.BINDINGS}
    assert {key.action for key in KEYS if key.action} <= bound


def test_readme_lists_every_key():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Interactive console", 1)[1].split("\n## ", 1)[0]
    for key in KEYS:
        assert f"| `{key.shown}` | {key.where} | {key.description} |" in section, key.shown


# ---- the reasoning grouping, without Textual ---------------------------------------------------


def test_sections_grow_monotonically_while_streaming():
    for pair in PAIRS.values():
        final = [s.key for s in sections(pair.trace)]
        assert final[-1] == "answers" and final[0] == "task-1"
        previous: list[str] = []
        for end in range(1, len(pair.trace) + 1):
            keys = [s.key for s in sections(pair.trace[:end])]
            assert keys == final[: len(keys)]  # only ever appends
            assert len(keys) >= len(previous)
            previous = keys


def test_sections_do_not_open_answers_on_a_mid_sentence_word():
    text = "## Reasoning Step 1: The AI answers: nothing.\n# Task 2\n## Reasoning Step 1: ok\n"
    assert [s.key for s in sections(text)] == ["task-1", "task-2"]
    verdict = parse(PAIRS["fake-id"].trace)
    assert [s.key for s in sections(verdict.raw)][-1] == "answers"


def test_settle_waits_for_the_reasoning_blocks_layout(fixture_guard):
    """The snapshot tests' ``settle`` waits on ``laid_out``: it must see a block whose text
    has grown but whose size has not yet, or snapshots can catch a block cut short."""
    pair = PAIRS["poison-dog"]

    async def scenario(pilot):  # noqa: ANN001, ANN202
        app = pilot.app
        app.reasoning.show(pair.trace)
        await settle(pilot)
        assert laid_out(app)
        before = laid_out(app)
        app.reasoning.show(pair.trace + "\nOne more line.\nAnd another.\n")
        during = laid_out(app)
        await settle(pilot)
        return before, during, laid_out(app)

    assert drive(make_app(fixture_guard), scenario) == (True, False, True)


# ---- the command --------------------------------------------------------------------------------


def test_tui_command_opens_the_model_and_runs_the_app(fixture_bundle, monkeypatch):
    from guardcli.tui.app import GuardApp

    ran = {}

    def fake_run(self, *args, **kwargs):
        ran["app"] = self

    monkeypatch.setattr(GuardApp, "run", fake_run)
    result = CliRunner().invoke(
        cli_app,
        [
            "tui",
            "--model",
            str(fixture_bundle),
            "--device",
            "cpu",
            "--threads",
            "1",
            "--max-new-tokens",
            "256",
            "--batch-size",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    app = ran["app"]
    assert app.guard.options.batch_size == 2 and app.guard.options.max_new_tokens == 256
    assert app.model_info.precision == "fp32"
    assert app.model_info.device == "cpu, 1 thread"
    assert app.output is None


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--model", "/nonexistent/bundle"], 3, "neither a bundle directory"),
        (["--output", "{taken}"], 2, "already exists"),
        (["--max-new-tokens", "5000", "--model", "{bundle}"], 2, "leaves no room"),
    ],
)
def test_tui_errors_before_the_app_are_one_line(args, code, text, tmp_path, fixture_bundle):
    taken = tmp_path / "taken.jsonl"
    taken.write_text("x\n", encoding="utf-8")
    args = [a.format(taken=taken, bundle=fixture_bundle) for a in args]
    result = CliRunner().invoke(cli_app, ["tui", "--device", "cpu", *args])
    assert result.exit_code == code
    errors = [line for line in result.stderr.splitlines() if line.startswith("guardcli: error")]
    assert len(errors) == 1 and text in errors[0]


def test_cli_import_does_not_load_textual():
    code = "import sys, guardcli.cli; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
