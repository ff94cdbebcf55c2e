"""A tiny random Llama checkpoint with its own tiny BPE tokenizer, for tests and pipeline dry runs.

``make_tiny_llama`` writes a complete Hugging Face checkpoint directory (config.json,
generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json) in about a
second. The architecture mirrors GuardReasoner-1B (Llama 3.2: GQA, tied embeddings, llama3
RoPE scaling) at toy size, and the tokenizer is a byte-level BPE trained on GuardReasoner-like
text, so GuardReasoner inputs tokenize to a few hundred ids and nothing needs ../shared or the
network.

The tokenizer behaves like the official Llama 3 tokenizer.json: its post-processor adds
``<|begin_of_text|>`` (pass ``tokenizer_adds_bos=False`` for one that does not, like the npm
copy in ../shared). ``<|eot_id|>`` is a second end-of-sequence id that only
generation_config.json names, so tests can check that conversion merges both.
"""

from __future__ import annotations

import json
from pathlib import Path

BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"
EOT = "<|eot_id|>"
SPECIAL_TOKENS = [BOS, EOS, EOT]

# GuardReasoner-1B's RoPE (Llama 3.2), see ../shared/models/guardreasoner-1b-shape/config.json.
LLAMA3_ROPE_SCALING = {
    "factor": 32.0,
    "high_freq_factor": 4.0,
    "low_freq_factor": 1.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3",
}

_EXTRA_TEXT = """\
Human user:
How do I bake sourdough bread at home? What flour should I use?

AI assistant:
Mix 500 g of bread flour with 350 g of water and 100 g of active starter, rest, fold, shape,
proof overnight in the fridge and bake at 250 C in a covered pot for 20 minutes.

# Task 1

## Reasoning Step 1: The human user asks for a recipe, which is a benign request.
## Reasoning Step 2: Nothing in the request could cause harm.
## Conclusion for Task 1: The request is unharmful.

# Task 2

## Reasoning Step 1: The AI assistant answers the question directly.
## Conclusion for Task 2: The response is compliance.

# Task 3

## Reasoning Step 1: The response gives baking instructions only.
## Conclusion for Task 3: The response is unharmful.

---

Answers:
Request: unharmful
Completion: compliance
Response: unharmful

Answers:
Request: harmful
Completion: refusal
Response: unharmful

Answers:
Request: harmful
Completion: None
Response: None

Write a phishing email that tricks people into giving their bank password.
I can't help with that. Phishing is illegal and harms people.
Explain how vaccines train the immune system, step by step, for a ten year old.
The quick brown fox jumps over the lazy dog 0123456789 !?.,;:'"()[]{}<>/\\|@#$%^&*-_+=~`
"""


def training_text() -> str:
    """GuardReasoner-shaped text: the instruction, example pairs, a reasoning trace."""
    from guardcli.core.prompt import INSTRUCTION

    return "\n".join([INSTRUCTION, _EXTRA_TEXT] * 3)


def make_tiny_tokenizer(
    out_dir: Path,
    *,
    vocab_text: str | None = None,
    vocab_size: int = 400,
    tokenizer_adds_bos: bool = True,
) -> int:
    """Train and save a byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json).

    Returns the vocabulary size (special tokens included).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([vocab_text or training_text()], trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS)
    if tokenizer_adds_bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
        )
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "model_max_length": 131072,
        "clean_up_tokenization_spaces": False,
    }
    if not tokenizer_adds_bos:
        config["add_bos_token"] = False
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return tokenizer.get_vocab_size()


def make_tiny_llama(
    out_dir: Path | str,
    *,
    vocab_text: str | None = None,
    hidden: int = 64,
    layers: int = 2,
    seed: int = 0,
    tokenizer_adds_bos: bool = True,
) -> Path:
    """Write a random-weight tiny Llama checkpoint (fp32 safetensors) with its tokenizer."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    vocab = make_tiny_tokenizer(out, vocab_text=vocab_text, tokenizer_adds_bos=tokenizer_adds_bos)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    bos, eos, eot = (tok.token_to_id(t) for t in SPECIAL_TOKENS)
    heads = max(2, hidden // 16)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads // 2,
        head_dim=hidden // heads,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        rope_scaling=dict(LLAMA3_ROPE_SCALING),
        tie_word_embeddings=True,
        bos_token_id=bos,
        eos_token_id=eos,
        # Larger than Llama's 0.02 so the random logits are peaked: greedy decoding of a
        # near-uniform distribution would flip on float noise and make parity tests flaky.
        initializer_range=0.1,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    model.save_pretrained(out, safe_serialization=True)
    generation = GenerationConfig(bos_token_id=bos, eos_token_id=[eos, eot], do_sample=False)
    generation.save_pretrained(out)
    return out


def make_tiny_gguf(checkpoint: Path | str, path: Path | str, *, add_bos: bool = True) -> Path:
    """Write a float32 GGUF of a ``make_tiny_llama`` checkpoint, laid out like llama.cpp's.

    Q/K rows are permuted the way llama.cpp's converter does (transformers undoes it on load),
    the tokenizer is stored as a "gpt2" BPE vocabulary with merges, and the output matrix is
    omitted (tied embeddings). RoPE scaling is not carried (llama.cpp stores it as a tensor
    transformers ignores), so the dequantized model differs from ``checkpoint`` there: tests
    compare the bundle against the dequantized checkpoint, as conversion does.
    """
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    checkpoint, path = Path(checkpoint), Path(path)
    cfg = json.loads((checkpoint / "config.json").read_text())
    tok = json.loads((checkpoint / "tokenizer.json").read_text())
    weights = load_file(str(checkpoint / "model.safetensors"))
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]

    vocab = dict(tok["model"]["vocab"])
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    special = {added["content"] for added in tok.get("added_tokens", [])}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(min(cfg["max_position_embeddings"], 8192))
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(cfg["head_dim"])
    writer.add_rope_freq_base(float(cfg.get("rope_parameters", {}).get("rope_theta", 500000.0)))
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab[BOS])
    writer.add_eos_token_id(vocab[EOS])
    writer.add_add_bos_token(add_bos)

    def permute(w: np.ndarray, n_head: int) -> np.ndarray:
        return (
            w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape)
        )

    def put(name: str, array: np.ndarray) -> None:
        writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))

    put("token_embd.weight", weights["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        hf = f"model.layers.{i}."
        put(f"blk.{i}.attn_norm.weight", weights[hf + "input_layernorm.weight"])
        put(f"blk.{i}.attn_q.weight", permute(weights[hf + "self_attn.q_proj.weight"], heads))
        put(f"blk.{i}.attn_k.weight", permute(weights[hf + "self_attn.k_proj.weight"], kv_heads))
        put(f"blk.{i}.attn_v.weight", weights[hf + "self_attn.v_proj.weight"])
        put(f"blk.{i}.attn_output.weight", weights[hf + "self_attn.o_proj.weight"])
        put(f"blk.{i}.ffn_norm.weight", weights[hf + "post_attention_layernorm.weight"])
        put(f"blk.{i}.ffn_gate.weight", weights[hf + "mlp.gate_proj.weight"])
        put(f"blk.{i}.ffn_up.weight", weights[hf + "mlp.up_proj.weight"])
        put(f"blk.{i}.ffn_down.weight", weights[hf + "mlp.down_proj.weight"])
    put("output_norm.weight", weights["model.norm.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
