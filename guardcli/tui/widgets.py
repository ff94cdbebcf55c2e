"""The console's building blocks: verdict badges, the streaming reasoning pane, the status bar.

Every string that came from a user or from the model reaches the screen through ``literal``:
cleaned of escape and control sequences and wrapped in a ``rich.text.Text``, which Textual
renders as-is. A plain ``str`` would be read as Textual markup, so a prompt containing
``[red]`` could restyle or hide what the moderator reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from guardcli.core.records import Generation, Label, Verdict
from guardcli.core.tasks import FIELDS
from guardcli.io.sanitize import clean_terminal
from guardcli.tui.live import sections


def literal(text: str, style: str = "") -> Text:
    """Untrusted text as a renderable that shows exactly its characters, minus controls."""
    return Text(clean_terminal(text), style=style)


# label -> CSS class: the colour says the verdict before the word is read
BADGE_CLASS = {
    Label.HARMFUL: "harmful",
    Label.UNHARMFUL: "unharmful",
    Label.REFUSAL: "refusal",
    Label.COMPLIANCE: "compliance",
    Label.NONE: "none",
    Label.UNKNOWN: "unknown",
}
BADGE_STATES = (*BADGE_CLASS.values(), "pending")
TASKS = FIELDS  # request, completion, response: one badge each


def stats_text(generation: Generation | None, *, timings: bool = True) -> str:
    """Tokens, time and speed of one generation. ``timings=False`` keeps only what is
    deterministic (snapshot tests, the README screenshot)."""
    if generation is None:
        return ""
    tokens = f"{generation.output_tokens} tokens"
    if not timings:
        return tokens
    seconds = generation.latency_s
    speed = generation.output_tokens / seconds if seconds > 0 else 0.0
    return f"{tokens} · {seconds:.1f} s · {speed:.{1 if speed < 100 else 0}f} tokens/s"


@dataclass(frozen=True)
class ModelInfo:
    """What the status bar says about the model."""

    name: str
    precision: str
    device: str  # "cpu, 4 threads" | "cuda"

    def line(self) -> str:
        return f"{self.name} · {self.precision} · {self.device}"


class VerdictBadges(Horizontal):
    """Three badges, one per GuardReasoner task, dim until the Answers block lands."""

    def compose(self) -> ComposeResult:
        for task in TASKS:
            yield Static(f"{task} ·", id=f"badge-{task}", classes="badge pending")

    def reset(self) -> None:
        for task in TASKS:
            self._set(task, None)

    def show(self, verdict: Verdict) -> None:
        for task in TASKS:
            self._set(task, getattr(verdict, task))

    def state(self, task: str) -> str:
        """The badge's current state (a label value or "pending"): what tests assert."""
        badge = self.query_one(f"#badge-{task}", Static)
        return next(name for name in BADGE_STATES if badge.has_class(name))

    def _set(self, task: str, label: Label | None) -> None:
        badge = self.query_one(f"#badge-{task}", Static)
        badge.remove_class(*BADGE_STATES)
        if label is None:
            badge.add_class("pending")
            badge.update(Text(f"{task} ·"))
        else:
            badge.add_class(BADGE_CLASS[label])
            word = "?" if label is Label.UNKNOWN else label.value
            badge.update(Text(f"{task} {word}"))


def _body(text: str) -> Text:
    """One section's lines, conclusions in bold; styles go on our Text, never into markup."""
    out = Text()
    for i, line in enumerate(clean_terminal(text).splitlines()):
        if i:
            out.append("\n")
        bold = line.lstrip().lower().startswith("## conclusion")
        out.append(line, style="bold" if bold else "")
    return out


class ReasoningView(VerticalScroll):
    """The model's reasoning, one bordered block per task, updated piece by piece; the
    generation's numbers sit on its bottom border.

    ``show`` is given the whole text so far each time: sections are recomputed from it, so a
    header that arrives split across pieces, or a restored history entry, ends up grouped the
    same way as a text that streamed in one go.
    """

    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self._blocks: dict[str, Static] = {}
        self.text = ""
        self.stats = ""

    def compose(self) -> ComposeResult:
        yield Static(
            Text("The reasoning streams here, grouped by task. Type a prompt and press F5."),
            id="reasoning-empty",
        )

    def clear(self) -> None:
        self.text = ""
        self.set_stats("")
        for block in self._blocks.values():
            block.remove()
        self._blocks = {}
        self.query_one("#reasoning-empty").display = True

    def show(self, text: str, *, follow: bool = False) -> None:
        self.text = text
        wanted = sections(text)
        keys = {section.key for section in wanted}
        for key in [key for key in self._blocks if key not in keys]:
            self._blocks.pop(key).remove()
        for section in wanted:
            block = self._blocks.get(section.key)
            if block is None:
                block = Static(classes="section")
                block.border_title = section.title
                if section.key == "answers":
                    block.add_class("answers")
                self._blocks[section.key] = block
                self.mount(block)
            block.update(_body(section.body))
        self.query_one("#reasoning-empty").display = not wanted
        if follow:
            self.call_after_refresh(self.scroll_end, animate=False)

    def set_stats(self, text: str) -> None:
        """Tokens, time, speed or the job's state, on the pane's bottom border: the badge row
        has no room to spare on a narrow terminal."""
        self.stats = text
        self.border_subtitle = Text(text) if text else None

    def section_texts(self) -> dict[str, str]:
        """What each block shows, by section key, as plain text."""
        return {key: str(block.content) for key, block in self._blocks.items()}


class StatusBar(Horizontal):
    """The model on the left (name, precision, device), what is happening on the right."""

    def __init__(self, model: str, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self._model = model

    def compose(self) -> ComposeResult:
        yield Static(literal(self._model), id="status-model")
        yield Static(Text("ready"), id="status-state")

    def set_state(self, text: str) -> None:
        self.query_one("#status-state", Static).update(literal(text))

    @property
    def state(self) -> str:
        return str(self.query_one("#status-state", Static).content)
