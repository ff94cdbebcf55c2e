"""The model input must equal GuardReasoner's, byte for byte."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardcli.core.prompt import INSTRUCTION, build_input, format_pair, split_input
from tests.conftest import teacher_files


def test_instruction_has_the_original_trailing_spaces():
    assert INSTRUCTION.startswith(
        "You are a classifier for analyzing interactions between humans and AI. \n\n"
    )
    assert "refusal or compliance. \nTask 3" in INSTRUCTION
    assert INSTRUCTION.endswith("Keep consistency between the reasoning and the Answers.\n")
    assert INSTRUCTION.count(" \n") == 3


def test_prompt_only_uses_the_literal_none():
    assert build_input("hi") == INSTRUCTION + "\nHuman user:\nhi\n\nAI assistant:\nNone\n\n"
    assert format_pair("hi", "ok") == "Human user:\nhi\n\nAI assistant:\nok\n\n"


@pytest.mark.shared
def test_rebuilt_inputs_equal_every_teacher_prompt(shared_dir):
    files = teacher_files()
    assert files, "no teacher files under ../shared"
    checked = 0
    for path in files:
        for number, line in enumerate(path.open(encoding="utf-8"), 1):
            original = json.loads(line)["prompt"]
            parts = split_input(original)
            assert parts is not None, f"{path}:{number} is not in the GuardReasoner format"
            assert build_input(*parts) == original, f"{path}:{number} differs"
            checked += 1
    assert checked > 6000


@given(st.text(), st.one_of(st.none(), st.text()))
def test_split_inverts_build_when_unambiguous(prompt, response):
    text = build_input(prompt, response)
    parts = split_input(text)
    assert parts is not None
    if "\n\nAI assistant:\n" not in prompt + (response or "") and response != "None":
        assert parts == (prompt, response)
    assert build_input(*parts) == text
