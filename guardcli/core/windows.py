"""The long-input policy: what happens to an input longer than the model's context.

``chunk`` (the default) judges the input in overlapping windows that each fit the context and
flags the sample if any window is flagged, reporting the window that did; ``truncate`` keeps
the head of the input and counts the cut. The default is ``chunk`` because truncation keeps
only the head: a harmful paragraph at the end of a long document (or a harmful answer after a
long harmless preamble, the classic way to slip past a filter) would never be seen, and a
guard's failure mode must be a slower scan, not a silent pass.

Windows are planned over token offsets (pure functions, tested without a model). With a
response, each window holds a piece of the prompt and a piece of the response: the prompt's
windows are judged beside the head of the response, the response's beside the head of the
prompt (where the request usually is), so every token of both is inside at least one window.
Consecutive windows overlap by an eighth, so a sentence cut at one window's edge is whole in
the next.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import replace

from guardcli.core.prompt import build_input
from guardcli.core.records import Label, ParseStatus, Result, Sample, Scores, Window
from guardcli.core.tokenizer import TextCodec
from guardcli.errors import UsageError, one_of

LONG_POLICIES = ("chunk", "truncate")
DEFAULT_LONG = "chunk"

Span = tuple[int, int]  # [start, end) characters of the prompt or the response
# Tokens a window leaves free of its budget: re-encoding the user text inside the template
# can merge a token or two differently at the seams.
SEAM_SLACK = 8
# Fewer tokens of user text than this per window (a tiny --max-input-tokens, or a context the
# template nearly fills) cannot hold a sentence: such inputs are truncated instead, and counted.
MIN_WINDOW = 64


def check_long(policy: str) -> str:
    if policy not in LONG_POLICIES:
        raise UsageError(f"--long {policy!r}", hint="use " + one_of(LONG_POLICIES))
    return policy


def overlap(size: int) -> int:
    return size // 8


def spans(offsets: Sequence[Span], length: int, size: int) -> list[Span]:
    """Character spans of consecutive windows of at most ``size`` tokens of a text whose
    tokens start and end at ``offsets``; the text between tokens goes with the next window."""
    n = len(offsets)
    if n <= size:
        return [(0, length)]
    stride = max(1, size - overlap(size))
    out: list[Span] = []
    start = 0
    while True:
        end = min(n, start + size)
        out.append(
            (0 if start == 0 else offsets[start][0], length if end == n else offsets[end][0])
        )
        if end == n:
            return out
        start += stride


def plan_windows(
    prompt: Sequence[Span],
    prompt_length: int,
    response: Sequence[Span] | None,
    response_length: int,
    budget: int,
) -> list[tuple[Span, Span | None]]:
    """(prompt span, response span) of each window, for ``budget`` tokens of user text."""
    budget = max(2, budget)
    if response is None:
        return [(span, None) for span in spans(prompt, prompt_length, budget)]
    p, r = len(prompt), len(response)
    if p + r <= budget:
        return [((0, prompt_length), (0, response_length))]
    half = budget // 2
    if p <= half:
        p_size, r_size = p, budget - p
    elif r <= half:
        p_size, r_size = budget - r, r
    else:
        p_size, r_size = half, budget - half
    prompts = spans(prompt, prompt_length, max(1, p_size))
    responses = spans(response, response_length, max(1, r_size))
    return [(span, responses[0]) for span in prompts] + [(prompts[0], s) for s in responses[1:]]


def sample_windows(
    codec: TextCodec, sample: Sample, limit: int, policy: str
) -> list[tuple[Span, Span | None]]:
    """The windows ``sample`` is judged in: one holding everything when its model input fits
    ``limit`` tokens, the policy is truncate, or a window could not hold MIN_WINDOW tokens
    of text (the cut is then encode_sample's, reported as truncation)."""
    whole = (0, len(sample.prompt)), None if sample.response is None else (0, len(sample.response))
    if policy != "chunk" or len(codec.encode(build_input(sample.prompt, sample.response))) <= limit:
        return [whole]
    empty = None if sample.response is None else ""
    budget = limit - len(codec.encode(build_input("", empty))) - SEAM_SLACK
    if budget < MIN_WINDOW:
        return [whole]
    response = None if sample.response is None else codec.offsets(sample.response)
    prompt = codec.offsets(sample.prompt)
    return plan_windows(prompt, len(sample.prompt), response, len(sample.response or ""), budget)


def finished(pending: deque, judged: list[Result]) -> Iterator[Result]:
    """The samples of ``pending`` (sample, windows) whose every window has a result in
    ``judged`` (window results in order), each combined into one Result; both are consumed."""
    while pending and len(judged) >= len(pending[0][1]):
        sample, plan = pending.popleft()
        yield combine(sample, judged[: len(plan)], plan)
        del judged[: len(plan)]


def window_samples(sample: Sample, plan: Sequence[tuple[Span, Span | None]]) -> list[Sample]:
    """The text of each window as a Sample (same id and source as the sample it is part of)."""
    out = []
    for (pa, pb), rspan in plan:
        response = (
            None if rspan is None or sample.response is None else sample.response[slice(*rspan)]
        )
        out.append(replace(sample, prompt=sample.prompt[pa:pb], response=response))
    return out


def _harm(labels: Sequence[Label]) -> Label:
    """Harmful if any window says so; unknown if a window could not be read and none flagged
    (an unreadable window cannot vouch for its text); else what the windows agree on."""
    if Label.HARMFUL in labels:
        return Label.HARMFUL
    if Label.UNKNOWN in labels:
        return Label.UNKNOWN
    return Label.NONE if all(label is Label.NONE for label in labels) else Label.UNHARMFUL


def _max(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def combine(
    sample: Sample, results: Sequence[Result], plan: Sequence[tuple[Span, Span | None]]
) -> Result:
    """One verdict for a sample judged in windows.

    Request and response: harmful if any window is (the highest window score is kept);
    completion (refusal or compliance): the first window's, which holds the head of the
    response, where a refusal is. The reasoning, timings and ``window`` are those of the first
    flagging window (else the first unreadable one, else the first); tokens and time add up.
    """
    if len(results) == 1:
        return replace(results[0], sample=sample)
    verdicts = [r.verdict for r in results]
    request = _harm([v.request for v in verdicts])
    response = _harm([v.response for v in verdicts])
    flagging = [i for i, v in enumerate(verdicts) if v.request_harmful or v.response_harmful]
    statuses = {v.status for v in verdicts}
    if len(statuses) == 1:
        status = statuses.pop()
    elif ParseStatus.FAILED in statuses and not flagging:
        # Text no window could judge was not judged: the sample counts as unparsed, so the
        # gate fails closed, rather than passing on the windows that could be read.
        status = ParseStatus.FAILED
    else:
        status = ParseStatus.PARTIAL
    unread = [i for i, v in enumerate(verdicts) if v.status is not ParseStatus.OK]
    decisive = (flagging or unread or [0])[0]
    scores = None
    if any(v.scores is not None for v in verdicts):
        each = [v.scores or Scores() for v in verdicts]
        scores = Scores(
            request=_max([s.request for s in each]),
            refusal=each[0].refusal,
            response=_max([s.response for s in each]),
        )
    chosen = results[decisive]
    verdict = replace(
        chosen.verdict,
        request=request,
        completion=verdicts[0].completion,
        response=response,
        status=status,
        scores=scores,
    )
    generation = chosen.generation
    if generation is not None:
        gens = [r.generation for r in results if r.generation is not None]
        generation = replace(
            generation,
            prompt_tokens=sum(g.prompt_tokens for g in gens),
            output_tokens=sum(g.output_tokens for g in gens),
            latency_s=sum(g.latency_s for g in gens),
            truncated_input=any(g.truncated_input for g in gens),
        )
    prompt_span, response_span = plan[decisive]
    window = Window(decisive + 1, len(plan), prompt_span, response_span) if flagging else None
    return Result(
        sample=sample,
        verdict=verdict,
        generation=generation,
        extra=chosen.extra,
        windows=len(plan),
        window=window,
    )
