"""The TUI shows when an input carried template markers (issue 15, item 1): a warning for a
classification, a mark in the history, a count on the batch tab."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Static, TextArea

from export.injection_suite import ATTACKS, attack
from tests.tui_support import PAIRS, drive, make_app, record_notices, settle, type_text

pytestmark = pytest.mark.slow

PLANTED = next(a for a in ATTACKS if a.name == "answers-after-prompt")


def test_classification_and_batch_show_the_injection(fixture_guard, tmp_path):
    planted = attack(PAIRS["puppy-name"].sample(), PLANTED)
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps({"id": "clean", "prompt": PAIRS["puppy-name"].prompt})
        + "\n"
        + json.dumps({"id": "planted", "prompt": planted.prompt})
        + "\n",
        encoding="utf-8",
    )
    app = make_app(fixture_guard)
    notices = record_notices(app)

    async def scenario(pilot):
        app.start_batch([str(path)])
        await settle(pilot)
        info = str(app.query_one("#batch-info", Static).content)
        await pilot.press("f2")
        app.query_one("#prompt", TextArea).focus()
        await type_text(pilot, planted.prompt)
        await pilot.press("f5")
        await settle(pilot)
        line = str(app.history.children[0].query_one("Label").content)
        return info, line

    info, line = drive(app, scenario)
    assert "1 with injection markers" in info
    assert "injection" in line
    assert any("template (answers)" in notice for notice in notices)
