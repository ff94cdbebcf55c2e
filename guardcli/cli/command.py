"""The Typer command class every guardcli command is registered with (guardcli.cli.app).

Typer writes its help and usage errors in its own words: ``Usage: guardcli scan [OPTIONS]
{paths}...``, placeholders such as ``<str>`` and ``<list[str]>``, and pydantic's ``Value error,
'fsat' is not one of …``. This class makes them read like the rest of guardcli: usage names
arguments by their metavar (``PATH...``), every option shows a placeholder a person can read
(its own metavar, else TEXT, N, PATH or the list of choices), and a bad command line is one
``guardcli: error: …`` line on stderr naming the valid values, exit 2, like every other
usage error. Only public click/Typer hooks are overridden; what an older Typer lacks is left
as that Typer writes it.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

from guardcli.cli.console import flat, say
from guardcli.errors import ExitCode

_ClickUsageError: type[Exception] = typer.BadParameter.__mro__[1]  # click's UsageError
_PLACEHOLDERS = {"str": "TEXT", "int": "N", "int range": "N", "float": "NUMBER", "path": "PATH"}
_NOT_ONE_OF = re.compile(r"(?:Value error, )?(?P<value>.+?) is not one of (?P<choices>.+?)\.?")


class _Argument(TyperArgument):
    """An argument whose metavar says everything (no ``<list[str]>`` type beside it)."""

    def display_type_rich(self, ctx: Any) -> str | None:  # noqa: ARG002 - Typer's signature
        return None


def placeholder(option: TyperOption) -> str | None:
    """What an option without a metavar of its own shows for its value: the choices as
    ``[a|b|c]``, else a plain word for its type; None to leave Typer's."""
    display = getattr(option, "display_type", None)
    if display is None or option.is_flag:
        return None
    label = display(None).strip("<>")
    inner = label[5:-1] if label.startswith("list[") else label
    if inner in _PLACEHOLDERS:
        return _PLACEHOLDERS[inner]
    if inner.lower() in ("path", "file", "directory"):
        return "PATH"
    return f"[{inner}]" if "|" in inner else None


def _bare_usage(param: Any) -> str:
    name = param.metavar or (param.name or "").upper()
    return name + "..." if param.nargs != 1 and not name.endswith("...") else name


def argument_usage(param: Any) -> str:
    """``PATH...`` for a required list argument, ``[MODEL]`` for an optional one."""
    name = _bare_usage(param)
    return name if param.required else f"[{name}]"


class GuardCommand(TyperCommand):
    """``app.command(cls=GuardCommand)``: Typer builds the parameters, this fills in what they
    show. Typer offers no class hook for arguments, so each is re-classed to ``_Argument``
    (a subclass that only changes its help row: same state, same parsing)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.metavar = _bare_usage(param)
                param.__class__ = _Argument
            elif isinstance(param, TyperOption) and param.metavar is None:
                param.metavar = placeholder(param)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                pieces.append(argument_usage(param))
        return pieces

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _ClickUsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise
            command = info_name if parent is None else f"{parent.command_path} {info_name}"
            raise OneLineUsageError(usage_message(exc), f"'{command} --help'") from None


def usage_message(exc: Any) -> str:
    """click's message for a bad command line, in guardcli's words."""
    param = getattr(exc, "param", None)
    if not isinstance(exc, typer.BadParameter) or param is None or not exc.message:
        return exc.format_message()  # no such option, a missing argument: click says it well
    if isinstance(param, TyperOption):
        where = max(param.opts, key=len) if param.opts else param.name
    else:
        where = param.metavar or param.name
    text = str(exc.message).removeprefix("Value error, ")
    found = _NOT_ONE_OF.fullmatch(text)
    if found is None:
        return f"{where}: {text[:1].lower()}{text[1:]}"
    choices = re.findall(r"'([^']*)'", found["choices"]) or [found["choices"]]
    value = found["value"].strip("'")
    message = f"{where} {value!r} is not one of {', '.join(choices)}"
    close = difflib.get_close_matches(value, choices, n=1)
    return message + (f" (did you mean {where} {close[0]}?)" if close else "")


class OneLineUsageError(_ClickUsageError):  # type: ignore[misc, valid-type]
    """A bad command line, shown as every guardcli error is: one line, the fix after a dash."""

    exit_code = int(ExitCode.USAGE)

    def __init__(self, message: str, help_command: str) -> None:
        super().__init__(message)
        self.help_command = help_command

    def show(self, file: Any = None) -> None:  # noqa: ARG002 - always stderr
        say(f"guardcli: error: {flat(self.message).rstrip('.')} - see {self.help_command}")
