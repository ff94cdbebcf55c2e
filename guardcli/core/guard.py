"""Samples in, Results out: the one place where prompt, tokenizer, engine and parser meet.

Data flows one way: Sample -> prompt.build_input -> TextCodec.encode -> Engine.generate ->
parse.parse -> Result. The CLI, the TUI and evaluation all go through ``Guard`` so they
judge a sample identically.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from guardcli.core.batching import DEFAULT_BATCH_TOKENS, plan_generations
from guardcli.core.engine import Engine
from guardcli.core.fitting import Encoded, encode_sample, input_limit
from guardcli.core.injection import screen, worst
from guardcli.core.loops import DEFAULT_LOOP_RULE, LoopRule
from guardcli.core.parse import answers_complete, parse
from guardcli.core.records import Generation, Label, Result, Sample
from guardcli.core.tasks import FIELDS
from guardcli.core.tokenizer import TextCodec
from guardcli.core.triage import Thresholds, Triage, uncertain
from guardcli.core.windows import (
    DEFAULT_LONG,
    Span,
    check_long,
    finished,
    sample_windows,
    window_samples,
)
from guardcli.errors import UsageError, one_of

DEFAULT_MAX_NEW_TOKENS = 1024  # real traces run past 4,000 characters (~1,000 tokens)
MODES = ("reason", "fast", "cascade")
DEFAULT_BAND = (0.2, 0.8)
DEFAULT_BATCH = 8  # samples generated together
DEFAULT_LOOKAHEAD = 4  # batches' worth of inputs read ahead and grouped by length

# (row in batch, text piece) as the model writes it
TextCallback = Callable[[int, str], None]


@dataclass(frozen=True)
class GuardOptions:
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    max_input_tokens: int | None = None  # None: what fits the context beside max_new_tokens
    batch_size: int = DEFAULT_BATCH
    stop_at_answers: bool = True
    # reason: full reasoning for every sample. fast: label-token scores only (guardcli.core.triage).
    # cascade: fast for all, reasoning for those with a harm score inside ``band`` (and for
    # every flagged one when ``explain_flagged``).
    mode: str = "reason"
    band: tuple[float, float] = DEFAULT_BAND
    explain_flagged: bool = False
    # An input longer than the context: judged in windows (chunk) or cut (truncate);
    # guardcli.core.windows says why chunk is the default.
    long: str = DEFAULT_LONG
    # Padded tokens per generated batch (guardcli.core.batching): bounds memory.
    batch_tokens: int = DEFAULT_BATCH_TOKENS
    # A row whose tokens cycle stops there (finish "loop"; guardcli.core.loops); None: never.
    loops: LoopRule | None = DEFAULT_LOOP_RULE
    # Inputs read ahead, in batches' worth, and grouped into batches of similar length
    # (guardcli.core.batching.group_batches); results still come out in input order. 1: each
    # batch is the next inputs in order. Batch size 1 and fast mode never read ahead.
    lookahead: int = DEFAULT_LOOKAHEAD

    def __post_init__(self) -> None:
        """Refuse a bad mode or band when the options are made, before any model loads."""
        if self.mode not in MODES:
            raise UsageError(f"unknown mode {self.mode!r}", hint="use " + one_of(MODES))
        check_long(self.long)
        if self.batch_tokens < 1:
            raise UsageError("--batch-tokens must be at least 1")
        if self.lookahead < 1:
            raise UsageError("the look-ahead must be at least 1 batch")
        low, high = self.band
        if not 0.0 <= low <= high <= 1.0:
            raise UsageError(
                f"band {low:g},{high:g} needs 0 <= LOW <= HIGH <= 1",
                hint="e.g. --band 0.2,0.8 (scores from 0.2 to 0.8 get full reasoning)",
            )


class Guard:
    def __init__(
        self,
        engine: Engine,
        codec: TextCodec,
        options: GuardOptions | None = None,
        thresholds: Thresholds | None = None,
    ):
        self.engine = engine
        self.codec = codec
        self.options = options or GuardOptions()
        self.thresholds = thresholds or Thresholds()  # the bundle's calibrated fast-mode cuts
        # Refuse an impossible budget now, before a scan reads its first sample.
        _ = self.input_limit
        self._triage = None

    @property
    def _grouping(self) -> bool:
        """Whether batches are grouped by length: not at batch size 1 (nothing to group),
        nor in fast mode (triage reads one input at a time, with no padding)."""
        options = self.options
        return options.lookahead > 1 and options.batch_size > 1 and options.mode != "fast"

    @property
    def _window(self) -> int:
        """Inputs (windows of long ones) read before judging: ``lookahead`` batches' worth
        when grouping, else one batch."""
        return self.options.batch_size * (self.options.lookahead if self._grouping else 1)

    @property
    def input_limit(self) -> int:
        options = self.options
        return input_limit(
            self.engine.backend.context_length, options.max_new_tokens, options.max_input_tokens
        )

    def encode(self, sample: Sample) -> Encoded:
        return encode_sample(self.codec, sample, self.input_limit)

    def classify_batch(
        self,
        samples: Sequence[Sample],
        *,
        on_text: TextCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[Result]:
        """Judge ``samples`` in the configured mode; results in input order.

        A sample carrying template markers (guardcli.core.injection) is judged twice: as the
        model reads it neutralised, and with the recognised spans stripped; the more flagged
        verdict stands, so planted text can add flags but not remove them. Only the first
        judgement streams to ``on_text``.
        """
        screens = [screen(sample) for sample in samples]
        extra = [row for row, s in enumerate(screens) if s.stripped is not None]
        variants = [s.model for s in screens] + [screens[row].stripped for row in extra]
        careful = [bool(s.kinds) for s in screens] + [False] * len(extra)
        count = len(samples)

        def primary_text(row: int, piece: str) -> None:
            if on_text is not None and row < count:
                on_text(row, piece)

        judged = self._judge(variants, careful, on_text=primary_text, cancelled=cancelled)
        results = []
        for row, (sample, screened) in enumerate(zip(samples, screens, strict=True)):
            result = judged[row]
            if screened.stripped is not None:
                result = worst(result, judged[count + extra.index(row)])
            results.append(replace(result, sample=sample, injection=screened.kinds))
        return results

    def _judge(
        self,
        samples: Sequence[Sample],
        careful: Sequence[bool],
        *,
        on_text: TextCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[Result]:
        """``classify_batch`` for samples already screened; ``careful`` rows never stop at
        an Answers block, only at the end of the model's output."""
        mode = self.options.mode
        if mode == "reason" or not samples:
            return self.reason_batch(samples, on_text=on_text, cancelled=cancelled, careful=careful)
        fast = [self.triage(sample, cancelled=cancelled) for sample in samples]
        if mode == "fast":
            return fast
        todo = [row for row, result in enumerate(fast) if self._needs_reasoning(result)]
        if not todo:
            return fast

        def on_subset_text(row: int, piece: str) -> None:
            if on_text is not None:
                on_text(todo[row], piece)

        reasoned = self.reason_batch(
            [samples[row] for row in todo],
            on_text=on_subset_text,
            cancelled=cancelled,
            careful=[careful[row] for row in todo],
        )
        results = list(fast)
        for row, deep in zip(todo, reasoned, strict=True):
            results[row] = _combine(fast[row], deep)
        return results

    def _needs_reasoning(self, result: Result) -> bool:
        verdict = result.verdict
        if self.options.explain_flagged and (verdict.request_harmful or verdict.response_harmful):
            return True
        return uncertain(verdict.scores, self.options.band)

    def triage(self, sample: Sample, *, cancelled: Callable[[], bool] | None = None) -> Result:
        """One sample by fast triage: label-token probabilities, no reasoning."""
        if cancelled is not None and cancelled():
            raise KeyboardInterrupt
        if self._triage is None:
            self._triage = Triage(self.codec, self.thresholds)
        has_response = sample.response is not None
        enc = self.encode(sample)
        chosen = self.engine.choose(enc.ids, self._triage.choices(has_response))
        generation = Generation(
            text="",
            prompt_tokens=len(enc.ids),
            output_tokens=0,
            latency_s=chosen.latency_s,
            finish="answers",
            truncated_input=enc.truncated,
            prefill_s=chosen.latency_s,
            mode="fast",
        )
        verdict = self._triage.verdict(chosen, has_response)
        return Result(sample=sample, verdict=verdict, generation=generation)

    def reason_batch(
        self,
        samples: Sequence[Sample],
        *,
        on_text: TextCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
        careful: Sequence[bool] | None = None,
    ) -> list[Result]:
        """Full reasoning, results in input order, in batches of similar length within the row
        and token budgets (guardcli.core.batching). A ``careful`` row (its input quoted template
        markers) runs to the model's end: a quoted block must not end it (parse reads the last)."""
        if not samples:
            return []
        stops = [not c for c in careful] if careful is not None else [True] * len(samples)
        encoded = [self.encode(s) for s in samples]
        placed: dict[int, Result] = {}
        for rows, pooled in self._plan([len(e.ids) for e in encoded]):

            def on_row_text(row: int, piece: str, rows: list[int] = rows) -> None:
                if on_text is not None:
                    on_text(rows[row], piece)

            batch = self._generate(
                [samples[row] for row in rows],
                [encoded[row] for row in rows],
                [stops[row] for row in rows],
                on_text=on_row_text if on_text is not None else None,
                cancelled=cancelled,
                slots=self.options.batch_size if pooled else None,
            )
            placed.update(zip(rows, batch, strict=True))
        return [placed[row] for row in range(len(samples))]

    def _plan(self, lengths: Sequence[int]) -> list[tuple[list[int], bool]]:
        """The generations of these inputs, each with whether it runs through the engine's
        slot pool (guardcli.core.batching.plan_generations)."""
        return plan_generations(
            lengths,
            max_rows=self.options.batch_size,
            max_tokens=self.options.batch_tokens,
            pooling=self.engine.pooling,
            grouping=self._grouping,
        )

    def _generate(
        self,
        samples: Sequence[Sample],
        encoded: Sequence[Encoded],
        stops: Sequence[bool],
        *,
        on_text: TextCallback | None,
        cancelled: Callable[[], bool] | None,
        slots: int | None = None,
    ) -> list[Result]:
        """One generation (a batch, or with ``slots`` the engine's pool); a row may stop at
        its Answers block where ``stops`` says so."""
        streams = [self.codec.stream() for _ in samples]

        def on_token(row: int, token: int) -> None:
            piece = streams[row].push(token)
            if piece and on_text is not None:
                on_text(row, piece)

        def should_stop(row: int, _tokens: Sequence[int]) -> bool:
            return (
                self.options.stop_at_answers and stops[row] and answers_complete(streams[row].text)
            )

        completions = self.engine.generate(
            [e.ids for e in encoded],
            max_new_tokens=self.options.max_new_tokens,
            should_stop=should_stop,
            on_token=on_token,
            cancelled=cancelled,
            loops=self.options.loops,
            slots=slots,
        )
        results = []
        for row, (sample, enc, completion) in enumerate(
            zip(samples, encoded, completions, strict=True)
        ):
            rest = streams[row].flush()
            if rest and on_text is not None:
                on_text(row, rest)
            text = self.codec.decode(completion.tokens)
            generation = Generation(
                text=text,
                prompt_tokens=completion.prompt_tokens,
                output_tokens=len(completion.tokens),
                latency_s=completion.latency_s,
                finish="answers" if completion.finish == "stop" else completion.finish,
                truncated_input=enc.truncated,
                prefill_s=completion.prefill_s,
            )
            results.append(Result(sample=sample, verdict=parse(text), generation=generation))
        return results

    def classify(self, prompt: str, response: str | None = None) -> Result:
        return self.classify_batch([Sample(id="1", prompt=prompt, response=response)])[0]

    def windows(self, sample: Sample) -> list[tuple[Span, Span | None]]:
        """The (prompt, response) character spans ``sample`` is judged in."""
        return sample_windows(self.codec, sample, self.input_limit, self.options.long)

    def run(
        self,
        samples: Iterable[Sample],
        *,
        cancelled: Callable[[], bool] | None = None,
    ) -> Iterator[Result]:
        """Results in input order, as soon as each sample's batch is done, so callers can write
        as they go. ``samples`` is read lazily: ``lookahead`` batches' worth at a time (one
        sample at batch size 1, so a live stream is judged as it arrives), never all of it.
        An input longer than the context is judged in windows under ``--long chunk``."""
        pending: deque[tuple[Sample, list]] = deque()  # samples whose windows are in flight
        judged: list[Result] = []  # window results not yet combined, in order
        batch: list[Sample] = []
        for sample in samples:
            plan = self.windows(sample)
            pending.append((sample, plan))
            batch += window_samples(sample, plan) if len(plan) > 1 else [sample]
            if len(batch) >= self._window:
                yield from self._judge_windows(batch, pending, judged, cancelled)
                batch = []
        if batch:
            yield from self._judge_windows(batch, pending, judged, cancelled)

    def _judge_windows(
        self,
        batch: list[Sample],
        pending: deque,
        judged: list[Result],
        cancelled: Callable[[], bool] | None,
    ) -> Iterator[Result]:
        """Judge ``batch`` in the budget's sub-batches (grouped by length, see ``_plan``),
        yielding each finished sample as soon as it and every sample before it are done (a
        long input does not hold back the short ones before it)."""
        lengths = [len(self.encode(sample).ids) for sample in batch]
        done: dict[int, Result] = {}
        emitted = 0
        for rows, _pooled in self._plan(lengths):
            chunk = self.classify_batch([batch[row] for row in rows], cancelled=cancelled)
            done.update(zip(rows, chunk, strict=True))
            while emitted in done:  # the complete prefix, in input order
                judged.append(done.pop(emitted))
                emitted += 1
            yield from finished(pending, judged)


def _combine(fast: Result, deep: Result) -> Result:
    """A cascaded sample: the reasoning's verdict with the fast scores kept beside it, and
    the time of both. Reasoning that gives no readable Answers leaves the fast verdict (its
    tokens still counted); a task the reasoning left unanswered keeps the fast label."""
    assert fast.generation is not None and deep.generation is not None
    took = fast.generation.latency_s + deep.generation.latency_s
    if not deep.verdict.parsed:
        spent = replace(
            fast.generation, latency_s=took, output_tokens=deep.generation.output_tokens
        )
        return replace(fast, generation=spent)
    labels = {
        task: getattr(deep.verdict, task)
        if getattr(deep.verdict, task) is not Label.UNKNOWN
        else getattr(fast.verdict, task)
        for task in FIELDS
    }
    return replace(
        deep,
        verdict=replace(deep.verdict, scores=fast.verdict.scores, **labels),
        generation=replace(deep.generation, latency_s=took),
    )
