"""Samples in, Results out: the one place where prompt, tokenizer, engine and parser meet.

Data flows one way: Sample -> prompt.build_input -> TextCodec.encode -> Engine.generate ->
parse.parse -> Result. The CLI, the TUI and evaluation all go through ``Guard`` so they
judge a sample identically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from guardcli.engine import Engine
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


def encode_sample(codec: TextCodec, sample: Sample, limit: int) -> Encoded:
    """Tokenize the exact GuardReasoner input, cutting the user's text (never the template)
    when it is longer than ``limit`` tokens.

    The response is cut first (the request matters for all three tasks), then the prompt;
    the cut keeps the head of the text. Truncation is reported, never silent.
    """
    ids = codec.encode(build_input(sample.prompt, sample.response))
    if len(ids) <= limit:
        return Encoded(ids, False)
    prompt, response = sample.prompt, sample.response
    for _ in range(8):
        excess = len(ids) - limit
        if excess <= 0:
            return Encoded(ids, True)
        if response:
            response = _cut(codec, response, excess)
        else:
            prompt = _cut(codec, prompt, excess)
        if not prompt and not response:
            break
        ids = codec.encode(build_input(prompt, response if sample.response is not None else None))
    if len(ids) > limit:
        ids = ids[:limit]  # the template alone does not fit: a tiny context, still bounded
    return Encoded(ids, True)


def _cut(codec: TextCodec, text: str, excess_tokens: int) -> str:
    tokens = codec.count(text)
    keep_tokens = max(0, tokens - excess_tokens - 1)
    if tokens == 0 or keep_tokens == 0:
        return ""
    return text[: max(0, int(len(text) * keep_tokens / tokens))]


class Guard:
    def __init__(self, engine: Engine, codec: TextCodec, options: GuardOptions | None = None):
        self.engine = engine
        self.codec = codec
        self.options = options or GuardOptions()

    @property
    def input_limit(self) -> int:
        room = self.engine.backend.context_length - self.options.max_new_tokens
        limit = self.options.max_input_tokens or room
        return max(1, min(limit, room)) if room > 0 else max(1, limit)

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
        for sample, enc, completion in zip(samples, encoded, completions, strict=True):
            text = self.codec.decode(completion.tokens)
            generation = Generation(
                text=text,
                prompt_tokens=completion.prompt_tokens,
                output_tokens=len(completion.tokens),
                latency_s=completion.latency_s,
                finish="answers" if completion.finish == "stop" else completion.finish,
                truncated_input=enc.truncated,
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
