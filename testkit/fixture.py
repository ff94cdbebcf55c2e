"""A tiny guard model that emits real GuardReasoner outputs, for end-to-end tests.

``build_fixture_model`` trains (overfits) a toy Llama so that, for each pair in
``FIXTURE_PAIRS``, greedy decoding from the exact GuardReasoner input
(``guardcli.core.prompt.build_input`` with BOS prepended, as the runtime encodes it) reproduces a
handwritten reasoning trace ending in a complete ``Answers`` block, then EOS. Tests can then
assert actual labels, streaming and batching through the real ONNX runtime path instead of
only "some text came out".

Training stops when every trace position is predicted with a logit margin of at least
``margin`` under teacher forcing (which implies greedy decoding reproduces the trace), then
confirms with transformers ``generate(do_sample=False)``. The margin keeps greedy decoding
stable across numerically different runtimes (ONNX Runtime, KV cache, padded batches).

``build_fixture_bundle`` converts that checkpoint with ``export.convert`` to an fp32 bundle,
validated token for token against transformers on the fixture inputs.

The traces are our own, written in the GuardReasoner output format; no GuardReasoner data is
copied here. ``python -m testkit.fixture DIR`` builds a bundle by hand.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from testkit.pairs import FIXTURE_PAIRS, check_pairs, fixture_corpus

VOCAB_SIZE = 800
CONTEXT = 1024  # max_position_embeddings: the ~200-token input plus a trace, with room to spare
DEFAULT_STEPS = 1500
DEFAULT_MARGIN = 3.0
TRAINING_REPORT = "fixture_training.json"


ROOT = Path(__file__).resolve().parents[1]
# What decides the bundle's bytes: this kit, the prompt it trains on, and the conversion it runs
# (a file or a package).
BUILD_SOURCES = ("testkit", "guardcli/core/prompt.py", "export/convert")


def build_sources() -> list[Path]:
    found: list[Path] = []
    for entry in BUILD_SOURCES:
        path = ROOT / entry
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path] * path.is_file()
    return found


def source_fingerprint() -> str:
    """Changes whenever the fixture's definition or its build code changes, and only then.

    Guards the committed bundle (testkit/committed.py), which must stay valid on a machine
    without torch, so installed versions are left out: hashing is all it needs."""
    return _source_digest().hexdigest()[:16]


def _source_digest():  # noqa: ANN202 - hashlib's private _Hash type
    digest = hashlib.sha256()
    for path in build_sources():
        name = path.relative_to(ROOT).as_posix()
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest


def fingerprint() -> str:
    """The build sources plus the versions that train and convert (the test cache's key)."""
    from importlib import metadata

    digest = _source_digest()
    for dist in ("torch", "transformers", "tokenizers", "onnxruntime-genai"):
        try:
            digest.update(f"{dist}={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            pass
    return digest.hexdigest()[:16]


def build_fixture_model(
    out_dir: Path | str,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    lr: float = 5e-3,
    margin: float = DEFAULT_MARGIN,
    log=None,  # noqa: ANN001 - Callable[[str], None]; default: print to stderr
) -> Path:
    """Train the fixture checkpoint into ``out_dir`` (HF format) and return ``out_dir``.

    Raises RuntimeError when greedy decoding does not reproduce every trace within ``steps``.
    Writes ``fixture_training.json`` (steps, seconds, loss, margin) beside the weights.
    """
    import torch

    from testkit.tiny import EOS, make_tiny_tokenizer

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    check_pairs()
    out = Path(out_dir)
    started = time.perf_counter()
    make_tiny_tokenizer(out, vocab_text=fixture_corpus(), vocab_size=VOCAB_SIZE)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    bos, eos = tokenizer.token_to_id("<|begin_of_text|>"), tokenizer.token_to_id(EOS)
    prompts, targets = [], []
    for pair in FIXTURE_PAIRS:
        # exactly what guardcli feeds the model (TextCodec: no special tokens, BOS prepended)
        prompts.append([bos, *tokenizer.encode(pair.model_input(), add_special_tokens=False).ids])
        targets.append([*tokenizer.encode(pair.trace, add_special_tokens=False).ids, eos])
        if tokenizer.decode(targets[-1], skip_special_tokens=True) != pair.trace:
            raise AssertionError(f"fixture pair {pair.id}: the trace does not round-trip")

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(min(2, threads))
    torch.use_deterministic_algorithms(True)
    try:
        model, stats = _train(
            prompts,
            targets,
            vocab=tokenizer.get_vocab_size(),
            bos=bos,
            eos=eos,
            steps=steps,
            seed=seed,
            hidden=hidden,
            layers=layers,
            lr=lr,
            margin=margin,
            say=say,
        )
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)

    from transformers import GenerationConfig

    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(bos_token_id=bos, eos_token_id=eos, do_sample=False).save_pretrained(out)
    stats["seconds"] = round(time.perf_counter() - started, 2)
    (out / TRAINING_REPORT).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    say(
        f"fixture model: {stats['steps']} steps, loss {stats['loss']:.4f}, "
        f"min margin {stats['min_margin']:.2f}, {stats['seconds']:.1f} s"
    )
    return out


def _train(prompts, targets, *, vocab, bos, eos, steps, seed, hidden, layers, lr, margin, say):  # noqa: ANN001, ANN202
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    heads = max(2, hidden // 16)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        head_dim=hidden // heads,
        max_position_embeddings=CONTEXT,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=bos,
        eos_token_id=eos,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)

    # One full batch, right-padded with EOS (masked); loss on trace tokens + EOS only.
    rows = [p + t for p, t in zip(prompts, targets, strict=True)]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), eos, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (p, t) in enumerate(zip(prompts, targets, strict=True)):
        ids[i, : len(p) + len(t)] = torch.tensor(p + t)
        mask[i, : len(p) + len(t)] = 1
        labels[i, len(p) : len(p) + len(t)] = torch.tensor(t)
    shifted = labels[:, 1:]
    scored = shifted != -100

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    warmup = 20
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    model.train()
    loss_value, min_margin = float("inf"), float("-inf")
    for step in range(steps + 1):
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        with torch.no_grad():
            target_logit = logits.gather(-1, shifted.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            others = logits.scatter(-1, shifted.clamp(min=0).unsqueeze(-1), float("-inf"))
            gaps = (target_logit - others.max(-1).values)[scored]
            min_margin = gaps.min().item()
        loss = torch.nn.functional.cross_entropy(logits[scored], shifted[scored])
        loss_value = loss.item()
        if min_margin >= margin:
            model.eval()
            bad = _greedy_mismatches(model, prompts, targets, eos)
            model.train()
            if not bad:
                break
            say(f"step {step}: margin {min_margin:.2f} but greedy differs on rows {bad}")
        if step == steps:
            raise RuntimeError(
                f"the fixture model did not learn its traces in {steps} steps "
                f"(loss {loss_value:.4f}, min margin {min_margin:.2f} < {margin})"
            )
        if step % 100 == 0:
            say(f"step {step}: loss {loss_value:.4f}, min margin {min_margin:.2f}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    model.eval()
    stats = {
        "steps": step,
        "loss": loss_value,
        "min_margin": min_margin,
        "seed": seed,
        "hidden": hidden,
        "layers": layers,
        "vocab": vocab,
        "prompt_tokens": [len(p) for p in prompts],
        "trace_tokens": [len(t) for t in targets],
    }
    return model, stats


def _greedy_mismatches(model, prompts, targets, eos) -> list[int]:  # noqa: ANN001
    """Rows whose transformers greedy output (one at a time, no padding) is not the trace."""
    import torch

    bad = []
    with torch.inference_mode():
        for row, (p, t) in enumerate(zip(prompts, targets, strict=True)):
            tensor = torch.tensor([p])
            out = model.generate(
                tensor,
                attention_mask=torch.ones_like(tensor),
                do_sample=False,
                max_new_tokens=len(t) + 4,
                eos_token_id=eos,
                pad_token_id=eos,
            )
            if out[0, len(p) :].tolist() != t:
                bad.append(row)
    return bad


def build_fixture_bundle(out_dir: Path | str, *, steps: int = DEFAULT_STEPS, seed: int = 0) -> Path:
    """Train the fixture model into ``out_dir/checkpoint`` and convert it to a validated fp32
    bundle in ``out_dir/bundle`` (returned). Validation compares full traces on the fixture
    inputs; anything short of an exact match raises RuntimeError."""
    from export.convert.command import Options, convert

    out = Path(out_dir)
    checkpoint = build_fixture_model(out / "checkpoint", steps=steps, seed=seed)
    trace_tokens = json.loads((checkpoint / TRAINING_REPORT).read_text())["trace_tokens"]
    inputs = out / "validation.jsonl"
    inputs.write_text(
        "".join(json.dumps({"prompt": p.model_input()}) + "\n" for p in FIXTURE_PAIRS),
        encoding="utf-8",
    )
    outcome = convert(
        Options(
            model=str(checkpoint),
            output=out / "bundle",
            precision="fp32",
            target="cpu",
            name="guardcli-fixture",
            validate=len(FIXTURE_PAIRS),
            validation_file=inputs,
            max_new_tokens=max(trace_tokens) + 8,
        )
    )
    validation = outcome.manifest.validation
    if validation.get("passed") is not True:
        raise RuntimeError(f"the fixture bundle failed validation: {validation}")
    return out / "bundle"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m testkit.fixture",
        description="Train the fixture guard model and convert it to a validated fp32 bundle.",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="checkpoint/ and bundle/")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    bundle = build_fixture_bundle(args.out_dir)
    print(f"fixture bundle: {bundle} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
