"""export.train.rsft: the ids a row trains on, cutoff accounting, and real (tiny) training runs.

The base model is a tiny random Llama whose BPE vocabulary (trained on the fixture texts with
the fixture model's 800-id budget) merges "\\n\\n" into one token: exactly the case where
encoding prompt + trace as one string differs from the runtime's prompt ids, so the boundary
test has teeth.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export import TrainError
from export.train.base import open_base
from export.train.layout import CHECKPOINTS, TRAIN_LOG
from export.train.options import config_from_sources
from export.train.rows import TrainRow, read_train_rows
from export.train.rsft import (
    IGNORE,
    PRESETS,
    RSFTConfig,
    build_parser,
    encode_row,
    encode_rows,
    train,
)
from guardcli.core.prompt import INSTRUCTION, build_input, format_pair
from guardcli.core.tokenizer import TextCodec
from testkit.pairs import FIXTURE_PAIRS, fixture_corpus

VOCAB = 800


def make_base(out: Path, *, tokenizer_adds_bos: bool = True) -> Path:
    """make_tiny_llama with the fixture model's larger vocabulary (it has the "\\n\\n" merge).

    Skips the calling test where torch is absent (the fast tier runs without the export extra)."""
    pytest.importorskip("torch", reason="a tiny training base needs torch (the export extra)")
    from transformers import AutoModelForCausalLM

    from testkit.tiny import make_tiny_llama, make_tiny_tokenizer

    make_tiny_llama(out, vocab_text=fixture_corpus(), tokenizer_adds_bos=tokenizer_adds_bos)
    vocab = make_tiny_tokenizer(
        out, vocab_text=fixture_corpus(), vocab_size=VOCAB, tokenizer_adds_bos=tokenizer_adds_bos
    )
    model = AutoModelForCausalLM.from_pretrained(out)
    model.resize_token_embeddings(vocab)
    model.save_pretrained(out, safe_serialization=True)
    return out


def write_train_jsonl(path: Path, pairs=FIXTURE_PAIRS) -> Path:  # noqa: ANN001
    with path.open("w", encoding="utf-8") as out:
        for pair in pairs:
            row = {
                "instruction": INSTRUCTION,
                "input": format_pair(pair.prompt, pair.response),
                "output": pair.trace,
            }
            out.write(json.dumps(row) + "\n")
    return path


def weights(directory: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return make_base(tmp_path_factory.mktemp("rsft-base") / "base")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_train_jsonl(tmp_path_factory.mktemp("rsft-data") / "train.jsonl")


def config(base: Path, data: Path, output: Path, **overrides) -> RSFTConfig:  # noqa: ANN003
    values = dict(
        model=str(base),
        data=[data],
        output=output,
        lr=3e-3,
        max_steps=30,
        batch_size=3,
        grad_accum=1,
        device="cpu",
        save_steps=1000,
        seed=0,
    )
    values.update(overrides)
    return RSFTConfig(**values)


# ------------------------------------------------------------------------------ ids


def test_row_ids_are_the_runtime_prompt_then_the_separately_encoded_trace(base, tmp_path):
    from tokenizers import Tokenizer

    opened = open_base(str(base), tmp_path)
    tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
    bos, eos = tokenizer.token_to_id("<|begin_of_text|>"), tokenizer.token_to_id("<|end_of_text|>")
    runtime = TextCodec(base / "tokenizer.json", bos_token_id=bos, add_bos=True)
    boundary_differs = 0
    for pair in FIXTURE_PAIRS:
        text = build_input(pair.prompt, pair.response)
        row = encode_row(opened, TrainRow(text, pair.trace, "test"))
        prompt = runtime.encode(text)  # exactly what guardcli feeds the converted bundle
        trace = tokenizer.encode(pair.trace, add_special_tokens=False).ids
        assert prompt[0] == bos
        assert row["input_ids"] == prompt + trace + [eos]
        assert row["labels"] == [IGNORE] * len(prompt) + trace + [eos]
        joint = runtime.encode(text + pair.trace)
        boundary_differs += joint != row["input_ids"][:-1]
    # "\n\n" + "##" tokenizes differently as one string: the reason prompt and trace are
    # encoded separately. Every fixture input ends in "\n\n" and every trace starts with "##".
    assert boundary_differs == len(FIXTURE_PAIRS)


def test_a_tokenizer_without_bos_trains_without_bos(tmp_path):
    base = make_base(tmp_path / "nobos", tokenizer_adds_bos=False)
    opened = open_base(str(base), tmp_path / "work")
    assert not opened.add_bos
    pair = FIXTURE_PAIRS[0]
    text = build_input(pair.prompt, pair.response)
    row = encode_row(opened, TrainRow(text, pair.trace, "test"))
    assert row["input_ids"][0] != opened.codec.bos_token_id
    assert row["input_ids"][: len(opened.codec.encode(text))] == opened.codec.encode(text)


def test_cutoff_drops_long_rows_and_counts_them(base, data, tmp_path):
    opened = open_base(str(base), tmp_path)
    rows = read_train_rows([data])
    sizes = sorted(len(encode_row(opened, r)["input_ids"]) for r in rows)
    cutoff = sizes[-2]  # only the longest row is over
    encoded = encode_rows(opened, rows, cutoff)
    assert encoded.dropped == sum(s > cutoff for s in sizes) >= 1
    assert len(encoded.rows) == len(rows) - encoded.dropped
    assert encoded.longest <= cutoff


def test_rows_with_another_instruction_are_refused(tmp_path):
    path = tmp_path / "bad.jsonl"
    row = {"instruction": "Classify this.", "input": format_pair("hi", None), "output": "x"}
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(TrainError, match=r"bad.jsonl:1: the instruction differs"):
        read_train_rows([path])


# ------------------------------------------------------------------------------ config and CLI


def test_config_precedence_is_defaults_preset_yaml_flags(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("preset: guardreasoner-1b\ngrad-accum: 12\nlr: 1.0e-4\ndata: [a.jsonl]\n")
    cfg = config_from_sources(
        RSFTConfig, {"config": recipe, "lr": 2e-4, "model": "m", "output": tmp_path}, PRESETS
    )
    assert cfg.lr == 2e-4  # flag beats YAML
    assert cfg.grad_accum == 12  # YAML beats preset
    assert cfg.batch_size == PRESETS["guardreasoner-1b"]["batch_size"]  # preset beats default
    assert cfg.epochs == 3.0 and cfg.cutoff == 2048 and cfg.scheduler == "cosine"
    assert cfg.data == [Path("a.jsonl")]
    recipe.write_text("learning_rate: 1\n")
    with pytest.raises(TrainError, match="unknown key"):
        config_from_sources(RSFTConfig, {"config": recipe}, PRESETS)


def test_preset_is_the_papers_effective_batch():
    preset = PRESETS["guardreasoner-1b"]
    assert preset["batch_size"] * preset["grad_accum"] == 384
    assert (preset["lr"], preset["epochs"], preset["cutoff"]) == (5e-5, 3.0, 2048)


def test_help_explains_every_option():
    parser = build_parser()
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
    text = parser.format_help()
    for flag in ("--lora-r", "--target-modules", "--resume", "--save-steps", "--cutoff", "--bf16"):
        assert flag in text


# ------------------------------------------------------------------------------ training


@pytest.mark.slow
def test_full_finetune_lowers_the_loss_and_writes_a_convertible_checkpoint(base, data, tmp_path):
    from export.convert.encoding import checkpoint_codec

    opened = open_base(str(base), tmp_path / "work")
    rows = read_train_rows([data])
    sizes = sorted(len(encode_row(opened, r)["input_ids"]) for r in rows)
    out = tmp_path / "rsft"
    log = train(config(base, data, out, cutoff=sizes[-2]))

    assert log["rows_read"] == len(FIXTURE_PAIRS)
    assert log["rows_dropped_over_cutoff"] == 1
    assert log["rows_used"] == len(FIXTURE_PAIRS) - 1
    assert log["global_step"] == 30
    losses = [point["loss"] for point in log["loss_curve"]]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert log["tokens"] > 0 and log["tokens_per_s"] > 0 and log["wall_s"] > 0
    assert json.loads((out / TRAIN_LOG).read_text())["final_loss"] == losses[-1]

    before, after = weights(base), weights(out)
    assert before.keys() == after.keys()
    assert all(not before[k].equal(after[k]) for k in after if "layers.0.self_attn" in k)
    assert not (out / CHECKPOINTS).exists()  # deleted after success
    # the saved checkpoint encodes exactly like its base (BOS rule pinned)
    pinned = json.loads((out / "tokenizer_config.json").read_text())
    assert pinned["add_bos_token"] is True
    text = build_input(FIXTURE_PAIRS[0].prompt, FIXTURE_PAIRS[0].response)
    assert checkpoint_codec(out).encode(text) == opened.prompt_ids(text)


@pytest.mark.slow
def test_lora_trains_and_merges_into_a_full_checkpoint(base, data, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora"
    log = train(
        config(
            base,
            data,
            out,
            lora=True,
            lora_r=4,
            target_modules="q_proj,v_proj",
            lr=1e-2,
            max_steps=6,
        )
    )
    assert log["global_step"] == 6
    assert not (out / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(out)  # a plain model: no peft needed
    assert type(model).__name__ == "LlamaForCausalLM"
    before, after = weights(base), weights(out)
    assert set(after) == set(before)  # no lora_A/lora_B keys left
    assert not before["model.layers.0.self_attn.q_proj.weight"].equal(
        after["model.layers.0.self_attn.q_proj.weight"]
    )
    assert before["model.layers.0.self_attn.k_proj.weight"].equal(
        after["model.layers.0.self_attn.k_proj.weight"]
    )  # not adapted
    # The adapter alone is kept beside the merged weights (guardcli ships nano that way), and
    # merging it into the base with guardcli.bundles.nano's numpy arithmetic gives the same weights.
    from guardcli.bundles.nano import apply_adapter

    adapter = out / "adapter" / "adapter_model.safetensors"
    scale = json.loads((out / "adapter" / "adapter_config.json").read_text())["lora_alpha"] / 4
    numpy_weights = {k: v.numpy() for k, v in before.items()}
    assert apply_adapter(numpy_weights, adapter, scale) == 2 * len(
        [k for k in before if k.endswith("q_proj.weight")]
    )
    for name in (
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.v_proj.weight",
    ):
        assert abs(numpy_weights[name] - after[name].numpy()).max() < 1e-5


@pytest.mark.slow
def test_resume_continues_from_the_latest_checkpoint(base, data, tmp_path):
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        """Interrupt like Ctrl-C, after step 5 (the checkpoint of step 4 is on disk)."""

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
            if state.global_step == 5:
                raise KeyboardInterrupt

    out = tmp_path / "resumed"
    cfg = config(base, data, out, max_steps=8, save_steps=2, keep_checkpoints=True)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[Kill()])
    assert (out / CHECKPOINTS / "checkpoint-4").is_dir()
    assert not (out / TRAIN_LOG).exists()
    with pytest.raises(TrainError, match="--resume"):
        train(cfg)  # an unfinished run is never silently restarted

    cfg.resume = True
    log = train(cfg)
    assert log["resumed_from"].endswith("checkpoint-4")
    assert log["global_step"] == 8
    # the curve of the whole run: steps 1-4 come back with the checkpoint's trainer state
    assert [point["step"] for point in log["loss_curve"]] == list(range(1, 9))

    # same seed, same data order: the resumed run ends where an uninterrupted one does
    straight = tmp_path / "straight"
    train(config(base, data, straight, max_steps=8, save_steps=2))
    a, b = weights(out), weights(straight)
    assert all((a[k] - b[k]).abs().max() < 1e-5 for k in a)


@pytest.mark.slow
def test_a_gguf_base_trains_with_the_bos_rule_conversion_would_use(base, data, tmp_path):
    from export.convert.encoding import checkpoint_codec
    from export.convert.sources import resolve_source
    from testkit.tiny import make_tiny_gguf

    gguf = make_tiny_gguf(base, tmp_path / "tiny.gguf", add_bos=True)
    source = resolve_source(str(gguf), revision=None, workdir=tmp_path / "resolve")
    expected = checkpoint_codec(source.checkpoint, source.hints).add_bos
    out = tmp_path / "from-gguf"
    log = train(config(str(gguf), data, out, max_steps=2))
    assert log["base"]["source"]["kind"] == "gguf"
    assert log["base"]["add_bos"] is expected
    assert checkpoint_codec(out).add_bos is expected  # pinned: the GGUF metadata is gone


def test_missing_options_are_a_usage_error(capsys):
    from export.train.rsft import main

    assert main(["--model", "x"]) == 2
    assert "needs --model, --data and --output" in capsys.readouterr().err
