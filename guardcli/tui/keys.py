"""Every key binding of the console, in one table: the app's BINDINGS and the ``?`` help
screen are both read from this list (and a test checks the README against it), so they
cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Key:
    keys: str  # Textual key names, comma-separated
    shown: str  # how people write them
    label: str  # the footer's word for it
    description: str
    action: str = ""  # empty: handled by a widget (listed for the help screen only)
    where: str = "anywhere"
    footer: bool = False
    priority: bool = False


KEYS: tuple[Key, ...] = (
    # Priority: they must work while the cursor is in a text field, which would otherwise
    # take ctrl+enter as a newline.
    Key(
        "f5,ctrl+enter",
        "F5 / ctrl+enter",
        "Run",
        "classify the prompt (and response)",
        "run",
        footer=True,
        priority=True,
    ),
    Key(
        "escape",
        "escape",
        "Cancel",
        "cancel the running classification or batch",
        "cancel",
        footer=True,
    ),
    Key(
        "ctrl+o",
        "ctrl+o",
        "Open",
        "open a file or folder and classify it as a batch",
        "open_batch",
        footer=True,
    ),
    Key(
        "ctrl+s",
        "ctrl+s",
        "Export",
        "export to JSONL: the history (Console tab) or the shown rows (Batch tab)",
        "export",
        footer=True,
    ),
    Key("ctrl+n", "ctrl+n", "New", "clear the prompt, response and reasoning", "new"),
    Key("f2", "F2", "Console", "show the Console tab", "show_tab('console')"),
    Key("f3", "F3", "Batch", "show the Batch tab", "show_tab('batch')"),
    Key("question_mark,f1", "? / F1", "Keys", "show every key binding", "help", footer=True),
    Key(
        "ctrl+q",
        "ctrl+q",
        "Quit",
        "quit (a running batch stops; finished results stay in --output)",
        "quit",
        footer=True,
        priority=True,
    ),
    Key("tab", "tab / shift+tab", "", "move between the fields, the history and the table"),
    Key(
        "enter",
        "enter",
        "",
        "restore an entry: its inputs, reasoning and verdicts",
        where="History",
    ),
    Key("enter", "enter", "", "open a row: its inputs, reasoning and verdicts", where="Batch"),
    Key(
        "f",
        "f",
        "Flagged",
        "show only flagged rows / all rows",
        "toggle_flagged",
        where="Batch",
        footer=True,
    ),
    Key("escape", "escape", "", "close a dialog", where="dialogs"),
)


def app_bindings() -> list[Binding]:
    """The app-level keys (those with an action) as Textual Bindings."""
    return [
        Binding(
            key.keys,
            key.action,
            key.label,
            show=key.footer,
            priority=key.priority,
            key_display=key.shown.split(" / ")[0],
        )
        for key in KEYS
        if key.action
    ]


# Console actions that make no sense while a dialog is open over the console.
NOT_IN_DIALOGS = {"run", "open_batch", "export", "new", "toggle_flagged", "help", "show_tab"}
