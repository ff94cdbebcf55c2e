"""Help and command-line errors read like the rest of guardcli: no Typer placeholders
(``{paths}``, ``<str>``, ``<list[str]>``), and a bad value is one ``guardcli: error:`` line
that names the valid values."""

from __future__ import annotations

import re

import pytest

from tests.cli_support import invoke

COMMANDS = [
    ("scan",),
    ("classify",),
    ("eval",),
    ("tui",),
    ("version",),
    *(("models", name) for name in ("list", "info", "verify", "path", "default", "build")),
]
# What Typer writes where no metavar says better: a type in angle brackets, {name} in usage.
PLACEHOLDER = re.compile(r"<(str|int|float|path|list\[[^]]*\]|int range|bool)>|\{\w+\}")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_no_typer_placeholders(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert not PLACEHOLDER.findall(result.stdout), result.stdout
    assert result.stdout.startswith(f"Usage: guardcli {' '.join(command)} [OPTIONS]")


def test_usage_names_arguments_by_what_they_hold():
    assert invoke("scan", "--help").stdout.startswith("Usage: guardcli scan [OPTIONS] PATH...\n")
    assert (
        "Usage: guardcli models info [OPTIONS] [MODEL]\n"
        in invoke("models", "info", "--help").stdout
    )
    text = invoke("scan", "--help").stdout
    for option in ("-m, --model DIR|NAME", "-o, --output FILE", "--mode [reason|fast|cascade]"):
        assert option in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("scan", "x", "--mode", "fsat"),
         "--mode 'fsat' is not one of reason, fast, cascade (did you mean --mode fast?)"),
        (("classify", "-p", "x", "-f", "jsnl"),
         "--format 'jsnl' is not one of table, json, jsonl, csv, sarif"
         " (did you mean --format jsonl?)"),
        (("eval", "--task", "promt"),
         "--task 'promt' is not one of prompt, response, refusal (did you mean --task prompt?)"),
        (("scan", "x", "--threads", "0"), "--threads: input should be greater than or equal to 1"),
        (("scan",), "Missing argument 'PATH...'"),
        (("scan", "x", "--fromat", "json"),
         "No such option: --fromat (Possible options: --format, --stdin-format)"),
    ],
)  # fmt: skip
def test_a_bad_command_line_is_one_line_with_the_fix(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr == (
        f"guardcli: error: {message} - see 'guardcli {' '.join(args[:1])} --help'\n"
    ), result.stderr
    assert result.stdout == "" and "Value error" not in result.stderr
