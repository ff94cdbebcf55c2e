"""The typed records that flow through guardcli: Sample (or Skip) in, Verdict and Result out."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Label(str, Enum):
    """One task's answer. NONE is the model saying there is no response to judge;
    UNKNOWN is us failing to read an answer at all (never a model output)."""

    HARMFUL = "harmful"
    UNHARMFUL = "unharmful"
    REFUSAL = "refusal"
    COMPLIANCE = "compliance"
    NONE = "none"
    UNKNOWN = "unknown"

    def __str__(self) -> str:  # so f-strings and CSV cells read "harmful", not "Label.HARMFUL"
        return self.value


class ParseStatus(str, Enum):
    OK = "ok"  # all three answers read from the final Answers block
    PARTIAL = "partial"  # some answers read, some missing
    FAILED = "failed"  # no answer could be read

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Sample:
    """One (prompt, response) pair to judge. ``source`` is where it came from (file:line)."""

    id: str
    prompt: str
    response: str | None = None
    source: str = ""
    encoding: str = ""  # the text encoding it was read in, when not UTF-8 (guardcli.io.walk)


@dataclass(frozen=True)
class Skip:
    """An input that could not become a Sample: reported on stderr and counted, never silently
    dropped."""

    source: str  # "path:line", "path#item" or "path"
    reason: str  # one line: what is wrong AND what to do


@dataclass(frozen=True)
class TaskReasoning:
    task: int
    steps: tuple[str, ...] = ()
    conclusion: str | None = None


@dataclass(frozen=True)
class Scores:
    """The model's own probability of the flagging label of each task, read from the label
    tokens of its Answers block (guardcli.core.triage): P(harmful request), P(refusal),
    P(harmful response). None where a task was not scored (no response to judge)."""

    request: float | None = None
    refusal: float | None = None
    response: float | None = None

    def values(self) -> tuple[float, ...]:
        return tuple(v for v in (self.request, self.refusal, self.response) if v is not None)


@dataclass(frozen=True)
class Verdict:
    request: Label = Label.UNKNOWN
    completion: Label = Label.UNKNOWN
    response: Label = Label.UNKNOWN
    status: ParseStatus = ParseStatus.FAILED
    reasoning: tuple[TaskReasoning, ...] = ()
    raw: str = ""
    scores: Scores | None = None  # set when fast triage ran (--mode fast or cascade)

    @property
    def parsed(self) -> bool:
        """True when the model produced a readable Answers block (possibly partial)."""
        return self.status is not ParseStatus.FAILED

    @property
    def request_harmful(self) -> bool:
        return self.request is Label.HARMFUL

    @property
    def response_harmful(self) -> bool:
        return self.response is Label.HARMFUL


# Why a generation ended, the one vocabulary of the record's ``finish`` field: the model's
# end-of-sequence token; the Answers block complete (guardcli stops there); a cycle of
# repeated tokens (guardcli.core.loops: stopped, never silently, the verdict from what was
# written); the token budget spent. Fast triage writes no text and reports "answers".
FINISHES = ("eos", "answers", "loop", "length")


@dataclass(frozen=True)
class Generation:
    """What the engine reports for one sample: token counts, timings, why it stopped."""

    text: str
    prompt_tokens: int
    output_tokens: int
    latency_s: float
    finish: str  # one of FINISHES
    truncated_input: bool = False
    prefill_s: float = 0.0  # the batch's prefill, shared by its rows (benchmarks split on it)
    mode: str = "reason"  # "reason": the model wrote its reasoning; "fast": label tokens only


@dataclass(frozen=True)
class Window:
    """One window of a long input judged in pieces (``--long chunk``, guardcli.core.windows):
    which of how many, and the [start, end) characters of the prompt and response it held."""

    index: int  # 1-based
    count: int
    prompt: tuple[int, int]
    response: tuple[int, int] | None = None


@dataclass(frozen=True)
class Result:
    sample: Sample
    verdict: Verdict
    generation: Generation | None = None
    extra: dict[str, object] = field(default_factory=dict)
    windows: int = 1  # how many windows the input was judged in (1: it fit the context)
    window: Window | None = None  # the first window that flagged, for a windowed input
    # Kinds of template marker the sample carried (guardcli.core.injection.KINDS); () when none.
    injection: tuple[str, ...] = ()
