"""export.cli.run_main: the one error edge of every ``python -m export...`` command."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from export import ConvertError, ExportError, TrainError
from export.cli import run_main
from guardcli.errors import ExitCode, ModelError, UsageError

EXPORT = Path(__file__).resolve().parents[1] / "export"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export.x")
    parser.add_argument("--n", type=int, default=0)
    return parser


def test_the_body_gets_the_parsed_arguments_and_its_status_is_returned():
    assert run_main(_parser(), lambda args: args.n, ["--n", "1"]) == 1
    assert run_main(_parser(), lambda args: None, []) == 0


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConvertError("no config.json"), ExitCode.MODEL),
        (TrainError("every row is longer than --cutoff 8"), ExitCode.USAGE),
        (ExportError("the build failed"), ExitCode.MODEL),
        (UsageError("--output DIR is required"), ExitCode.USAGE),
        (ModelError("the bundle fails verification"), ExitCode.MODEL),
    ],
)
def test_an_error_is_one_line_and_its_documented_exit_code(capsys, error, code):
    def body(_args):
        raise error

    assert run_main(_parser(), body, []) == code
    out, err = capsys.readouterr()
    assert out == "" and err == f"error: {error}\n"


def test_no_export_error_claims_the_flagged_exit_code():
    """1 means "flagged" (or a bundle that failed validation), never a failure to run."""
    assert {ExportError.exit_code, ConvertError.exit_code, TrainError.exit_code}.isdisjoint(
        {ExitCode.FLAGGED}
    )


def test_ctrl_c_is_the_command_s_advice_and_130(capsys):
    def body(_args):
        raise KeyboardInterrupt

    assert run_main(_parser(), body, [], interrupted="interrupted: rerun it") == 130
    assert capsys.readouterr().err == "interrupted: rerun it\n"
    assert run_main(_parser(), body, []) == ExitCode.INTERRUPTED
    assert capsys.readouterr().err == "interrupted\n"


def test_bad_arguments_stay_argparse_s_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        run_main(_parser(), lambda args: 0, ["--n", "x"])
    assert caught.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def test_a_bug_is_still_a_traceback():
    def body(_args):
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        run_main(_parser(), body, [])


def _mains() -> dict[str, ast.FunctionDef]:
    found = {}
    for path in EXPORT.rglob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name == "main":
                found[str(path.relative_to(EXPORT))] = node
    return found


def test_every_export_command_goes_through_run_main():
    mains = _mains()
    assert {"pipeline.py", "convert/command.py", "train/rsft.py", "train/hsdpo.py"} <= set(mains)
    bypass = [
        name
        for name, node in mains.items()
        if not any(
            isinstance(call, ast.Call) and getattr(call.func, "id", None) == "run_main"
            for call in ast.walk(node)
        )
    ]
    assert not bypass, f"main() without export.cli.run_main: {bypass}"


def test_only_the_edge_catches_ctrl_c():
    catching = [
        str(path.relative_to(EXPORT))
        for path in EXPORT.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ExceptHandler)
        and isinstance(node.type, ast.Name)
        and node.type.id == "KeyboardInterrupt"
    ]
    assert catching == ["cli.py"]


def test_a_real_command_maps_its_error(tmp_path, capsys):
    from export.pipeline import main

    assert main(["--config", str(tmp_path / "missing.yaml")]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.yaml" in err and err.count("\n") == 1
