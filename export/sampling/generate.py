"""k sampled outputs per model input: the teachers of distillation and the samples of HS-DPO.

Three teachers, one result shape (``list[list[str]]``, k texts per input, EOS excluded, special
tokens skipped):

* a guardcli bundle (a folder with ``guardcli.json``): onnxruntime-genai, encoded with the
  manifest's BOS rule and ``TextCodec`` exactly as ``guardcli scan`` encodes, right-padded
  batches (genai corrupts left-padded rows), ``do_sample`` with ``top_k=0`` so top-p alone
  truncates, as in transformers below;
* a Hugging Face checkpoint folder (``config.json``): transformers ``generate(do_sample=True)``,
  encoded with ``export.convert.encoding.checkpoint_codec`` (the same BOS rule), left-padded
  with an attention mask;
* an OpenAI-compatible endpoint (export.sampling.endpoint.synthesize): the paper's data
  synthesis, where GPT-4o is shown the input and its gold labels and writes the reasoning that
  leads to them.

The k copies of every input are flattened into rows and decoded ``batch_size`` rows at a time;
batch ``b`` is seeded from ``(seed, b)``, so a run is reproducible for a given seed, k and
batch size (on one device: CPU and CUDA kernels differ).

    python -c "from export.sampling.generate import sample_outputs, SamplingConfig; ..."
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardcli.bundles.manifest import MANIFEST
from guardcli.errors import ExitCode, GuardError, UsageError

Progress = Callable[[int], None]  # called with how many more inputs are done, like tqdm.update


class GenerateError(GuardError):
    """A teacher that cannot produce samples: a broken model folder, an endpoint failing."""

    exit_code = ExitCode.MODEL


@dataclass(frozen=True)
class SamplingConfig:
    k: int = 4  # outputs per input
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 1024
    seed: int = 0
    batch_size: int = 8  # rows (input copies) decoded together
    time_limit: float | None = None  # seconds: no batch starts after this; the rest unsampled

    def __post_init__(self) -> None:
        problems = [
            f"{name} {value!r}"
            for name, value, ok in (
                ("k", self.k, self.k >= 1),
                ("temperature", self.temperature, self.temperature > 0),
                ("top_p", self.top_p, 0 < self.top_p <= 1),
                ("max_new_tokens", self.max_new_tokens, self.max_new_tokens >= 1),
                ("batch_size", self.batch_size, self.batch_size >= 1),
                ("time_limit", self.time_limit, self.time_limit is None or self.time_limit >= 0),
            )
            if not ok
        ]
        if problems:
            raise UsageError(
                f"bad sampling settings: {', '.join(problems)}",
                hint="k, max_new_tokens, batch_size >= 1; temperature > 0; 0 < top_p <= 1",
            )


def model_kind(model: str | Path) -> str:
    """``bundle`` (guardcli.json) or ``checkpoint`` (config.json); anything else is refused."""
    path = Path(model).expanduser()
    if (path / MANIFEST).is_file():
        return "bundle"
    if (path / "config.json").is_file():
        return "checkpoint"
    raise GenerateError(
        f"{model} is neither a guardcli bundle (no {MANIFEST}) nor a Hugging Face checkpoint "
        "(no config.json)",
        hint="pass a folder made by export.convert or a transformers save_pretrained folder",
    )


def sample_outputs(
    model: str | Path,
    inputs: Sequence[str],
    config: SamplingConfig,
    *,
    progress: Progress | None = None,
    device: str = "cpu",
) -> list[list[str]]:
    """``config.k`` sampled outputs for every full model input (``build_input`` text).

    ``device``: cpu, cuda or auto. The backend is picked from the folder (``model_kind``).
    With ``config.time_limit``, no batch starts after that many seconds (loading included):
    the inputs not reached get fewer outputs or none, for the caller to count.
    """
    if not inputs:
        return []
    path = Path(model).expanduser()
    run = _genai_rows if model_kind(path) == "bundle" else _torch_rows
    rows = [index for index in range(len(inputs)) for _ in range(config.k)]
    texts: list[str] = []
    done = 0
    started = time.perf_counter()
    generate = run(path, config, device)
    for batch, start in enumerate(range(0, len(rows), config.batch_size)):
        if config.time_limit is not None and time.perf_counter() - started >= config.time_limit:
            break
        chunk = rows[start : start + config.batch_size]
        texts += generate([inputs[i] for i in chunk], batch_seed(config.seed, batch))
        finished = len(texts) // config.k
        if progress is not None and finished > done:
            progress(finished - done)
        done = finished
    # past a time limit the unreached inputs' lists are short or empty
    return [texts[i * config.k : (i + 1) * config.k] for i in range(len(inputs))]


def batch_seed(seed: int, batch: int) -> int:
    """Distinct seeds per batch that do not overlap between neighbouring run seeds."""
    return (seed * 1_000_003 + batch) % (2**31 - 1)


RowGenerator = Callable[[list[str], int], list[str]]


def _genai_rows(bundle: Path, config: SamplingConfig, device: str) -> RowGenerator:
    from guardcli.backends.genai import pick_device
    from guardcli.bundles.resolve import check_bundle
    from guardcli.core.engine import Engine
    from guardcli.core.tokenizer import TextCodec

    manifest = check_bundle(bundle)
    codec = TextCodec.for_bundle(bundle, manifest)
    backend = _sampling_backend(bundle, pick_device(device), config)
    engine = Engine(backend)

    def generate(texts: list[str], seed: int) -> list[str]:
        backend.seed = seed
        done = engine.generate(
            [codec.encode(t) for t in texts], max_new_tokens=config.max_new_tokens
        )
        return [codec.decode(c.tokens) for c in done]

    return generate


def _sampling_backend(bundle: Path, device: str, config: SamplingConfig):  # noqa: ANN202
    """guardcli's GenaiBackend (same loading, padding, EOS ids), sampling instead of greedy."""
    from guardcli.backends.genai import GenaiBackend

    class SamplingBackend(GenaiBackend):
        seed = 0

        def start(self, prompts, max_new_tokens):  # noqa: ANN001, ANN202
            options = {
                "do_sample": True,
                "temperature": config.temperature,
                "top_p": config.top_p,
                "top_k": 0,  # no top-k cut: nucleus sampling only, like the HF path
                "random_seed": self.seed,
            }
            return self.start_search(prompts, max_new_tokens, options, "sampling")

    return SamplingBackend(bundle, device=device)


def _torch_rows(checkpoint: Path, config: SamplingConfig, device: str) -> RowGenerator:
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from export.convert.encoding import checkpoint_codec

    hf_logging.disable_progress_bar()

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    codec = checkpoint_codec(checkpoint)
    try:
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types
        raise GenerateError(f"cannot load {checkpoint} with transformers: {exc}") from exc
    model.to(device).eval()
    eos = _eos_ids(model)
    pad = model.generation_config.pad_token_id
    pad = eos[0] if pad is None else int(pad)
    context = getattr(model.config, "max_position_embeddings", None)

    def generate(texts: list[str], seed: int) -> list[str]:
        encoded = [codec.encode(t) for t in texts]
        width = max(len(ids) for ids in encoded)
        budget = (
            config.max_new_tokens
            if context is None
            else min(config.max_new_tokens, context - width)
        )
        if budget < 1:
            raise GenerateError(
                f"an input of {width} tokens leaves no room to generate in a "
                f"{context}-token context",
                hint="drop or shorten the longest inputs",
            )
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, tokens in enumerate(encoded):  # left padding: every row ends at the same place
            ids[row, width - len(tokens) :] = torch.tensor(tokens)
            mask[row, width - len(tokens) :] = 1
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = model.generate(
                ids.to(device),
                attention_mask=mask.to(device),
                do_sample=True,
                temperature=config.temperature,
                top_p=config.top_p,
                top_k=0,
                max_new_tokens=budget,
                eos_token_id=eos,
                pad_token_id=pad,
            )
        return [codec.decode(_until_eos(row[width:].tolist(), eos)) for row in out]

    return generate


def _eos_ids(model: Any) -> list[int]:
    for source in (model.generation_config, model.config):
        value = getattr(source, "eos_token_id", None)
        if value is not None:
            return [int(v) for v in (value if isinstance(value, list) else [value])]
    raise GenerateError("the checkpoint names no eos_token_id", hint="set it in config.json")


def _until_eos(tokens: list[int], eos: list[int]) -> list[int]:
    for at, token in enumerate(tokens):
        if token in eos:
            return tokens[:at]
    return tokens
