"""The terminal table: the one output written for people, so its layout serves the verdict.

The three labels and the status are what a reader came for, so they are never cut. Ids and
sources are cut in the middle (``chat-0…-017``: both the prefix that groups them and the tail
that tells them apart survive). When even that does not fit, whole columns go, least useful
first: source, then latency, then tokens; then the score header folds onto two lines; then
status (its news, a label the model did not give, also shows as ``unknown`` in the labels).

On a terminal the table fits its width; written to a pipe or a file it has no width to fit
(unless ``COLUMNS`` says one), so nothing is cut beyond the caps. Every cell drawn from input
is untrusted and goes through guardcli.io.sanitize.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from guardcli.core.records import Result
from guardcli.core.tasks import FIELDS as TASK_FIELDS
from guardcli.io.outputs import Writer
from guardcli.io.sanitize import ELLIPSIS, for_terminal, one_line

ID_CAP, SOURCE_CAP = 32, 40  # even when there is room: the table summarises, the JSONL records
ID_MIN, SOURCE_MIN = 6, 10  # narrower than this, a cut value no longer tells rows apart
SCORES, SCORES_FOLDED = "p(harm) req/resp", "p(harm)\nreq/resp"
FOLD = "fold scores"  # a step of DROP_ORDER that drops nothing: the score header takes 2 lines
# Optional columns, dropped in this order when the terminal is too narrow.
DROP_ORDER = ("source", "latency", "tokens", FOLD, "status")
_STYLES = {"harmful": "bold red", "unknown": "yellow", "failed": "yellow", "partial": "yellow"}


def middle_cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, the middle replaced by ``…`` if cut."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    head = width // 2
    tail = width - 1 - head
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


@dataclass(frozen=True)
class Layout:
    """Which columns are shown and how wide the id and source columns are."""

    columns: tuple[str, ...]
    sizes: tuple[int, ...]  # each column's width, in the order of ``columns``
    scores_header: str = SCORES

    def width(self, name: str) -> int:
        return self.sizes[self.columns.index(name)]

    @property
    def total(self) -> int:
        """Characters the table takes, borders and padding included."""
        return sum(self.sizes) + 3 * len(self.sizes) + 1


def plan(widths: dict[str, int], id_full: int, source_full: int, available: int | None) -> Layout:
    """The widest layout that fits ``available`` characters (None: no limit).

    ``widths`` are the natural widths of the columns that are never cut (labels, status,
    tokens, latency and, when scored, ``scores`` with ``scores folded`` its two-line width),
    in display order; ``id_full``/``source_full`` what the id and source columns would take
    uncut (capped). A rich table with its default box spends three characters a column (two
    padding, one rule) plus one for the left edge.
    """
    id_min, source_min = min(id_full, ID_MIN), min(source_full, SOURCE_MIN)
    stages = [(), *(DROP_ORDER[: n + 1] for n in range(len(DROP_ORDER)))]
    for stage in stages:
        dropped = set(stage)
        fixed = {k: v for k, v in widths.items() if k not in dropped and k != "scores folded"}
        if FOLD in dropped and "scores" in fixed:
            fixed["scores"] = widths["scores folded"]
        header = SCORES_FOLDED if FOLD in dropped else SCORES
        with_source = "source" not in dropped
        cut = ("id", "source") if with_source else ("id",)
        borders = 3 * (len(cut) + len(fixed)) + 1
        room = 10**6 if available is None else available - borders - sum(fixed.values())
        if with_source and room >= id_min + source_min:
            # Half each, and what one does not need to the other.
            id_width = min(id_full, room - source_min, max(room // 2, room - source_full))
            sizes = (id_width, min(source_full, room - id_width))
        elif not with_source and (room >= id_min or stage == stages[-1]):
            sizes = (max(1, min(id_full, room)),)
        else:
            continue
        return Layout((*cut, *fixed), (*sizes, *fixed.values()), header)
    raise AssertionError("unreachable: the last stage always returns")


class TableWriter(Writer):
    """A rich table printed at close, then each sample's reasoning when ``--reasoning``.

    ``fit``: fit the console's width (a terminal, or ``COLUMNS`` set); else take the width the
    table needs, since a pipe or file has none to keep to."""

    def __init__(self, console: Any, *, fit: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.console = console
        self.fit = fit
        self.rows: list[dict[str, Any]] = []

    def write(self, result: Result) -> None:
        self.rows.append(self.record(result))

    def close(self, *, complete: bool = True) -> None:
        if not self.closed and self.rows:  # what finished is worth showing even when cut short
            table, width = self.table()
            if width is not None:  # rich never prints wider than its console
                self.console.width = max(width, self.console.width)
            self.console.print(table)
            if self.reasoning:
                self._print_reasoning()
        super().close()

    def table(self) -> tuple[Any, int | None]:
        """The table and the width to print it at (None: the console's)."""
        from rich.table import Table
        from rich.text import Text

        cells = [_cells(record) for record in self.rows]
        scored = any(record["request_score"] is not None for record in self.rows)
        injected = any(record["injection"] for record in self.rows)
        names = [
            *TASK_FIELDS,
            *(["injection"] if injected else []),  # a verdict on the input: never cut
            "status",
            "tokens",
            "latency",
            *(["scores"] if scored else []),
        ]
        headers = {"scores": SCORES}
        widths = {
            name: max(len(headers.get(name, name)), *(len(c[name]) for c in cells))
            for name in names
        }
        if scored:
            folded = max(len(line) for line in SCORES_FOLDED.splitlines())
            widths["scores folded"] = max(folded, *(len(c["scores"]) for c in cells))
        id_full = max(2, *(len(c["id"]) for c in cells))
        source_full = max(6, *(len(c["source"]) for c in cells))
        layout = plan(widths, id_full, source_full, self.console.width if self.fit else None)

        table = Table(expand=False, highlight=False)
        for name in layout.columns:
            header = layout.scores_header if name == "scores" else name
            right = name in ("tokens", "latency", "scores")
            table.add_column(
                header,
                justify="right" if right else "left",
                no_wrap=True,
                overflow="ellipsis",
                min_width=layout.width(name),
                max_width=layout.width(name) if name in ("id", "source") else None,
            )
        for cell in cells:
            row = []
            for name in layout.columns:
                if name == "id":
                    row.append(Text(middle_cut(cell["id"], layout.width("id"))))
                elif name == "source":
                    row.append(Text(middle_cut(cell["source"], layout.width("source"))))
                elif name in (*TASK_FIELDS, "status"):
                    row.append(_label(cell[name]))
                elif name == "injection":
                    row.append(_injection(cell[name]))
                else:
                    row.append(cell[name])
            table.add_row(*row)
        return table, None if self.fit else layout.total

    def _print_reasoning(self) -> None:
        """Each reasoned sample's raw text under its id; fast-mode samples have none."""
        from rich.rule import Rule
        from rich.text import Text

        for record in self.rows:
            text = record.get("reasoning", {}).get("text") or ""
            if not text:
                continue
            title = Text(one_line(str(record["id"]), ID_CAP))  # untrusted: never markup
            self.console.print(Rule(title, align="left"))
            self.console.print(for_terminal(text), highlight=False)


def _cells(record: dict[str, Any]) -> dict[str, str]:
    """Plain text of every cell; id and source cleaned and capped (cut later to fit)."""
    return {
        "id": middle_cut(one_line(str(record["id"]), 10**6), ID_CAP),
        "source": middle_cut(one_line(str(record["source"]), 10**6), SOURCE_CAP),
        **{name: str(record[name]) for name in (*TASK_FIELDS, "status")},
        "tokens": _tokens(record),
        "latency": "-" if record["latency_ms"] is None else f"{record['latency_ms'] / 1000:.1f}s",
        "scores": _harm_scores(record),
        "injection": ", ".join(record["injection"]) or "-",
    }


def _label(value: str) -> str:
    """Labels and statuses are our own enum values, so styling them is safe."""
    style = _STYLES.get(value)
    return f"[{style}]{value}[/]" if style else value


def _injection(kinds: str) -> str:
    """Our own vocabulary (guardcli.core.injection.KINDS), so styling it is safe."""
    return "-" if kinds == "-" else f"[bold red]{kinds}[/]"


def _harm_scores(record: dict[str, Any]) -> str:
    return "/".join(
        "-" if record[key] is None else f"{record[key]:.2f}"
        for key in ("request_score", "response_score")
    )


def _tokens(record: dict[str, Any]) -> str:
    if record["prompt_tokens"] is None:
        return "-"
    return f"{record['prompt_tokens']}+{record['output_tokens']}"


def fits_terminal(console: Any) -> bool:
    """Whether a table on ``console`` should keep to its width: a terminal has one, and so
    does a pipe when the user set ``COLUMNS``."""
    return bool(console.is_terminal or os.environ.get("COLUMNS"))
