"""Samples in, Results out: the one place where prompt, tokenizer, engine and parser meet.

Data flows one way: Sample -> prompt.build_input -> TextCodec.encode -> Engine.generate ->
parse.parse -> Result. The CLI, the TUI and evaluation all go through ``Guard`` so they
judge a sample identically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from guardcli.engine import Engine
from guardcli.errors import UsageError
from guardcli.parse import answers_complete, parse
from guardcli.prompt import build_input
from guardcli.records import Generation, Result, Sample
from guardcli.tokenizer import TextCodec

DEFAULT_MAX_NEW_TOKENS = 1024  # real traces run past 4,000 characters (~1,000 tokens)

# (row in batch, text piece) as the model writes it
TextCallback = Callable[[int, str], None]


@dataclass(frozen=True)
class GuardOptions:
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    max_input_tokens: int | None = None  # None: what fits the context beside max_new_tokens
    batch_size: int = 8
    stop_at_answers: bool = True


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    truncated: bool


# Each cut lands within a few tokens of the limit; more rounds than this means no progress.
_MAX_CUTS = 16


def encode_sample(codec: TextCodec, sample: Sample, limit: int) -> Encoded:
    """Tokenize the exact GuardReasoner input, cutting the user's text (never the template)
    when it is longer than ``limit`` tokens.

    The response is cut first (the request matters for all three tasks), then the prompt;
    the cut keeps the head of the text. A prompt-only sample keeps its literal ``None``
    response. Truncation is reported, never silent. Re-encoding the cut text can merge
    differently at the seam, so the cut repeats until the whole input fits.
    """
    ids = codec.encode(build_input(sample.prompt, sample.response))
    if len(ids) <= limit:
        return Encoded(ids, False)
    prompt, response = sample.prompt, sample.response
    for _ in range(_MAX_CUTS):
        excess = len(ids) - limit
        if excess <= 0:
            return Encoded(ids, True)
        if response:
            response = _cut(codec, response, excess)
        elif prompt:
            prompt = _cut(codec, prompt, excess)
        else:
            break
        ids = codec.encode(build_input(prompt, response))
    if len(ids) > limit:  # a cut that never converged: fall back to empty user text
        ids = codec.encode(build_input("", None if sample.response is None else ""))
    if len(ids) > limit:
        ids = ids[:limit]  # the template alone does not fit: a tiny context, still bounded
    return Encoded(ids, True)


def _cut(codec: TextCodec, text: str, excess_tokens: int) -> str:
    kept = codec.head(text, codec.count(text) - excess_tokens)
    return kept if len(kept) < len(text) else text[:-1]  # always progress


def input_limit(context_length: int, options: GuardOptions) -> int:
    """Tokens an input may take: ``max_input_tokens`` when given, but never more than what
    leaves ``max_new_tokens`` free in the context, since the verdict comes at the very end of
    the generation. A budget that fills the whole context is refused: every input would be
    cut to nothing and every verdict would be noise.
    """
    room = context_length - options.max_new_tokens
    if room < 1:
        raise UsageError(
            f"--max-new-tokens {options.max_new_tokens} leaves no room for the input in this "
            f"model's {context_length}-token context",
            hint=f"lower --max-new-tokens (e.g. to {max(1, context_length // 2)})",
        )
    if options.max_input_tokens is None:
        return room
    return max(1, min(options.max_input_tokens, room))


class Guard:
    def __init__(self, engine: Engine, codec: TextCodec, options: GuardOptions | None = None):
        self.engine = engine
        self.codec = codec
        self.options = options or GuardOptions()
        # Refuse an impossible budget now, before a scan reads its first sample.
        input_limit(engine.backend.context_length, self.options)

    @property
    def input_limit(self) -> int:
        return input_limit(self.engine.backend.context_length, self.options)

    def encode(self, sample: Sample) -> Encoded:
        return encode_sample(self.codec, sample, self.input_limit)

    def classify_batch(
        self,
        samples: Sequence[Sample],
        *,
        on_text: TextCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[Result]:
        if not samples:
            return []
        encoded = [self.encode(s) for s in samples]
        streams = [self.codec.stream() for _ in samples]

        def on_token(row: int, token: int) -> None:
            piece = streams[row].push(token)
            if piece and on_text is not None:
                on_text(row, piece)

        def should_stop(row: int, _tokens: Sequence[int]) -> bool:
            return self.options.stop_at_answers and answers_complete(streams[row].text)

        completions = self.engine.generate(
            [e.ids for e in encoded],
            max_new_tokens=self.options.max_new_tokens,
            should_stop=should_stop,
            on_token=on_token,
            cancelled=cancelled,
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

    def run(
        self,
        samples: Iterable[Sample],
        *,
        cancelled: Callable[[], bool] | None = None,
    ) -> Iterator[Result]:
        """Results in input order, one batch at a time, so callers can write as they go."""
        batch: list[Sample] = []
        for sample in samples:
            batch.append(sample)
            if len(batch) >= self.options.batch_size:
                yield from self.classify_batch(batch, cancelled=cancelled)
                batch = []
        if batch:
            yield from self.classify_batch(batch, cancelled=cancelled)
