"""The Python API: what an application embedding a guard calls, and what the command line, the
TUI and evaluation call too, so a verdict from Python is the verdict ``guardcli`` gives.

    import guardcli

    guard = guardcli.load(mode="fast")          # same resolution and checks as the CLI
    verdict = guard.classify("How do I pick a lock?")
    if verdict.request_harmful: ...
    for result in guard.classify_many([("hi", "hello!"), "rm -rf / please"]):
        print(result.sample.id, result.verdict.request.value)

Every failure a caller can act on is a ``guardcli.GuardError`` (``ModelError`` for no model or
a broken bundle, ``UsageError`` for bad options, ``InputError`` for a sample that is not one);
anything else is a bug. Opening a model is the only heavy step: this module imports the
runtime (onnxruntime-genai, numpy) inside ``load``, never when ``guardcli`` is imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from guardcli.core.records import Result, Sample, Verdict
from guardcli.errors import InputError, UsageError

if TYPE_CHECKING:  # loaded with the model, not with ``import guardcli``
    from guardcli.bundles.manifest import Manifest
    from guardcli.core.guard import Guard, GuardOptions

# What classify_many takes: a Sample (its id and source kept), a (prompt, response) pair, or a
# bare prompt.
SampleLike = Sample | tuple[str, str | None] | str


@dataclass(frozen=True)
class GuardModel:
    """A verified, opened guard model. Make it with ``guardcli.load``."""

    guard: Guard  # the judging pipeline (guardcli.core.guard), for callers that stream text
    manifest: Manifest  # the bundle's guardcli.json: name, precision, source, calibration
    path: Path  # the bundle directory
    origin: str  # why this bundle: "--model" | "$GUARDCLI_MODEL" | "config" | "embedded default"
    device: str  # "cpu" or "cuda"

    @property
    def options(self) -> GuardOptions:
        return self.guard.options

    @property
    def threads(self) -> int | None:
        """CPU threads the runtime uses (None on CUDA)."""
        return getattr(self.guard.engine.backend, "threads", None) if self.device == "cpu" else None

    @property
    def low_memory(self) -> bool:
        """Whether the weights stay memory-mapped (``low_memory=True`` on a float bundle on CPU)."""
        return bool(getattr(self.guard.engine.backend, "mapped_weights", False))

    def classify(self, prompt: str, response: str | None = None) -> Verdict:
        """Judge one user prompt (and the AI's response to it, if any)."""
        return self.classify_one(prompt, response).verdict

    def classify_one(self, prompt: str, response: str | None = None) -> Result:
        """``classify``, with the sample, token counts and timing beside the verdict."""
        [sample] = samples_from([(prompt, response)])
        return self.guard.classify_batch([sample])[0]

    def classify_many(self, samples: Iterable[SampleLike]) -> Iterator[Result]:
        """Results in input order, a batch at a time (``batch_size`` samples generated
        together, as ``guardcli scan`` does), each yielded as soon as its batch is done; the
        input is read lazily, so it may be endless (a queue, a log being written)."""
        return self.guard.run(samples_from(samples))


def samples_from(items: Iterable[SampleLike]) -> Iterator[Sample]:
    """Samples from what callers have at hand; pairs and prompts get ids "1", "2", ..."""
    for number, item in enumerate(items, 1):
        if isinstance(item, Sample):
            yield item
            continue
        prompt, response = (item, None) if isinstance(item, str) else _pair(item, number)
        if not isinstance(prompt, str) or not (response is None or isinstance(response, str)):
            raise InputError(
                f"sample {number}: prompt and response must be str (response may be None), "
                f"got {type(prompt).__name__} and {type(response).__name__}",
                hint="pass a Sample, a (prompt, response) pair or a prompt string",
            )
        yield Sample(id=str(number), prompt=prompt, response=response, source="python")


def _pair(item: object, number: int) -> tuple[object, object]:
    try:
        prompt, response = item  # type: ignore[misc]
    except (TypeError, ValueError):
        raise InputError(
            f"sample {number}: {type(item).__name__} is not a sample",
            hint="pass a Sample, a (prompt, response) pair or a prompt string",
        ) from None
    return prompt, response


def load(
    model: str | Path | None = None,
    *,
    mode: str = "reason",
    device: str = "auto",
    threads: int | None = None,
    verify: bool = True,
    batch_size: int | None = None,
    max_new_tokens: int | None = None,
    max_input_tokens: int | None = None,
    band: tuple[float, float] | None = None,
    explain_flagged: bool = False,
    long: str | None = None,
    batch_tokens: int | None = None,
    low_memory: bool = False,
) -> GuardModel:
    """Find, verify and open a guard model, as ``guardcli`` does.

    ``model``: a bundle directory or an installed model's name; None resolves as the CLI
    does (``$GUARDCLI_MODEL``, then ``guardcli models default``, then the embedded nano).
    ``verify=False`` skips the sha256 check of the bundle's files (``--no-verify``).
    ``mode``, ``band``, ``explain_flagged``, ``long`` (chunk|truncate) and ``batch_tokens``:
    see ``guardcli scan --help``. The defaults
    are the command line's. ``low_memory``: ``--low-memory`` (float weights stay memory-mapped:
    less private memory, shared between processes, slower decoding; ``GuardModel.low_memory``
    says whether it applied).
    """
    from guardcli.bundles.resolve import open_guard, resolve_model

    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise UsageError(f"threads={threads!r}", hint="threads is a whole number >= 1, or None")
    options = guard_options(  # bad options fail here, before anything is read from disk
        mode=mode,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        max_input_tokens=max_input_tokens,
        band=band,
        explain_flagged=explain_flagged,
        long=long,
        batch_tokens=batch_tokens,
    )
    resolved = resolve_model(None if model is None else str(model))
    guard, manifest, chosen = open_guard(
        resolved,
        device=device,
        threads=threads,
        verify_hashes=verify,
        options=options,
        low_memory=low_memory,
    )
    return GuardModel(guard, manifest, resolved.path, resolved.origin, chosen)


def guard_options(
    *,
    mode: str = "reason",
    batch_size: int | None = None,
    max_new_tokens: int | None = None,
    max_input_tokens: int | None = None,
    band: tuple[float, float] | None = None,
    explain_flagged: bool = False,
    long: str | None = None,
    batch_tokens: int | None = None,
) -> GuardOptions:
    """How a guard judges, with the command line's defaults, checked once: load() opens a
    model with them, and guardcli batch ships them to every Ray actor."""
    from guardcli.core.batching import DEFAULT_BATCH_TOKENS
    from guardcli.core.guard import (
        DEFAULT_BAND,
        DEFAULT_BATCH,
        DEFAULT_MAX_NEW_TOKENS,
        GuardOptions,
    )
    from guardcli.core.windows import DEFAULT_LONG

    counts = {
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "batch_tokens": batch_tokens,
    }
    for name, value in {**counts, "max_input_tokens": max_input_tokens}.items():
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UsageError(f"{name}={value!r}", hint=f"{name} is a whole number >= 1, or None")
    return GuardOptions(
        max_new_tokens=DEFAULT_MAX_NEW_TOKENS if max_new_tokens is None else max_new_tokens,
        max_input_tokens=max_input_tokens,
        batch_size=DEFAULT_BATCH if batch_size is None else batch_size,
        mode=mode,
        band=DEFAULT_BAND if band is None else band,
        explain_flagged=explain_flagged,
        long=DEFAULT_LONG if long is None else long,
        batch_tokens=DEFAULT_BATCH_TOKENS if batch_tokens is None else batch_tokens,
    )
