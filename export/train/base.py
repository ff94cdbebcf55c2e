"""The base model a trainer starts from: ``--model`` is a hub id, a checkpoint directory or a
``.gguf`` file, resolved by export.convert.sources exactly as ``export.convert`` resolves it,
and its token ids by the one rule of export.convert.encoding: the prompt is ``build_input``
text encoded the way guardcli encodes it (BOS per the checkpoint's rule, then the ids with
``add_special_tokens=False``), the completion encoded *separately* and ended with EOS.
Encoding prompt + completion as one string can merge tokens across the boundary
(``"\\n\\n" + "##"`` becomes ``"\\n" "\\n##"`` in byte-level BPE), and then the model is
trained on a prompt it never sees at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export import TrainError
from export.convert.encoding import checkpoint_codec, json_or_empty
from export.train.options import SAVE_DTYPES
from guardcli.core.tokenizer import TextCodec


@dataclass
class Base:
    """A resolved model to train from, with the ids rule guardcli will apply to it."""

    spec: str
    checkpoint: Path
    record: dict[str, Any]
    codec: TextCodec  # encodes prompts exactly like the converted bundle will
    tokenizer: Any  # tokenizers.Tokenizer of the checkpoint
    eos_id: int
    dtype: str = "float32"

    @property
    def add_bos(self) -> bool:
        return self.codec.add_bos

    def prompt_ids(self, text: str) -> list[int]:
        """The ids guardcli feeds the converted model for this input text."""
        return self.codec.encode(text)

    def completion_ids(self, text: str) -> list[int]:
        """What the model should generate after the prompt: the text's ids, then EOS."""
        return [*self.tokenizer.encode(text, add_special_tokens=False).ids, self.eos_id]


def open_base(spec: str, workdir: Path) -> Base:
    """Resolve ``--model`` (hub id, directory, .gguf) to a checkpoint and its encoding rule.

    ``workdir`` must outlive the Base: a .gguf is dequantized into it.
    """
    from tokenizers import Tokenizer

    from export.convert.sources import resolve_source

    source = resolve_source(spec, revision=None, workdir=workdir)
    checkpoint = source.checkpoint
    if not (checkpoint / "tokenizer.json").is_file():
        raise TrainError(
            f"{checkpoint} has no tokenizer.json",
            hint="save the model's fast tokenizer there (AutoTokenizer.save_pretrained)",
        )
    codec = checkpoint_codec(checkpoint, source.hints)
    tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    return Base(
        spec=spec,
        checkpoint=checkpoint,
        record=source.record,
        codec=codec,
        tokenizer=tokenizer,
        eos_id=pick_eos(checkpoint, tokenizer),
        dtype=checkpoint_dtype(checkpoint),
    )


def pick_eos(checkpoint: Path, tokenizer: Any) -> int:
    """The EOS id that ends every training completion.

    The tokenizer's eos_token, as long as the runtime stops on it (guardcli stops on every EOS
    id of config.json and generation_config.json); else the first of those.
    """
    runtime: list[int] = []
    for name in ("config.json", "generation_config.json"):
        value = json_or_empty(checkpoint / name).get("eos_token_id")
        for token in value if isinstance(value, list) else [value]:
            if isinstance(token, int) and not isinstance(token, bool) and token not in runtime:
                runtime.append(token)
    eos = json_or_empty(checkpoint / "tokenizer_config.json").get("eos_token")
    if isinstance(eos, dict):
        eos = eos.get("content")
    tok_eos = tokenizer.token_to_id(eos) if isinstance(eos, str) else None
    if tok_eos is not None and (not runtime or tok_eos in runtime):
        return tok_eos
    if runtime:
        return runtime[0]
    raise TrainError(
        f"{checkpoint}: no EOS token in config.json, generation_config.json or the tokenizer",
        hint="set eos_token_id in config.json",
    )


def checkpoint_dtype(checkpoint: Path) -> str:
    config = json_or_empty(checkpoint / "config.json")
    dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
    return dtype if dtype in SAVE_DTYPES else "float32"


def load_model(checkpoint: Path) -> Any:
    """The model in float32: the master weights (bf16 is autocast, never the stored copy)."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise TrainError(f"cannot load {checkpoint} with transformers: {exc}") from exc


def load_processing_class(checkpoint: Path) -> Any:
    """The transformers tokenizer TRL wants (it only reads pad/eos from it: rows come tokenized)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(checkpoint)
    except (OSError, ValueError) as exc:
        raise TrainError(f"cannot load the tokenizer of {checkpoint}: {exc}") from exc
