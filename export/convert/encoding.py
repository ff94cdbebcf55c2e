"""One rule for how a checkpoint's model inputs are tokenized, shared by every stage.

guardcli encodes ``build_input`` text with ``add_special_tokens=False`` and prepends BOS itself
when the bundle manifest says ``add_bos``. Training (R-SFT, HS-DPO), sampling and validation
must feed the model exactly those ids, or the converted bundle sees inputs it was never trained
on. So the decision is made here once, from the checkpoint's files, and training stages write it
into the checkpoints they save (``pin_add_bos``): a derived checkpoint keeps its base's rule
even after the GGUF metadata that decided it is gone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from guardcli.core.tokenizer import TextCodec


def decide_add_bos(
    tokenizer_dir: Path,
    checkpoint: Path,
    bos: int | None,
    mode: str = "auto",
    hints: dict[str, Any] | None = None,
) -> tuple[bool, str]:
    """Whether BOS is prepended, and why.

    In order: ``mode`` (--add-bos yes|no); ``tokenizer_dir``'s tokenizer.json adding BOS
    itself; an explicit add_bos_token in the checkpoint's tokenizer_config.json (transformers
    drops the flag when the builder re-saves it, so the checkpoint's copy is read first) or
    ``tokenizer_dir``'s; the GGUF metadata (``hints``); finally a named bos_token means yes
    (Llama 3 tokenizer.json files that lost their BOS post-processor, like the npm copy,
    still need it).
    """
    if mode != "auto":
        return mode == "yes", "--add-bos"
    if bos is None:
        return False, "the model has no bos_token_id"
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json")).encode("x").ids
    if ids and ids[0] == bos:
        return True, "tokenizer.json adds BOS itself"
    configs = [
        json_or_empty(checkpoint / "tokenizer_config.json"),
        json_or_empty(tokenizer_dir / "tokenizer_config.json"),
    ]
    for tok_cfg in configs:
        if isinstance(tok_cfg.get("add_bos_token"), bool):
            return tok_cfg["add_bos_token"], "tokenizer_config.json add_bos_token"
    hints = hints or {}
    if "gguf_add_bos_token" in hints:
        return hints["gguf_add_bos_token"], "GGUF tokenizer.ggml.add_bos_token"
    if any(tok_cfg.get("bos_token") for tok_cfg in configs):
        return True, "tokenizer_config.json names a bos_token (Llama convention)"
    return False, "nothing asks for BOS"


def bos_token_id(checkpoint: Path, extra: dict[str, Any] | None = None) -> int | None:
    """BOS from config.json, then generation_config.json, then ``extra`` (the builder's)."""
    for source in (
        json_or_empty(checkpoint / "config.json"),
        json_or_empty(checkpoint / "generation_config.json"),
        extra or {},
    ):
        value = source.get("bos_token_id")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def checkpoint_codec(checkpoint: Path, hints: dict[str, Any] | None = None) -> TextCodec:
    """A TextCodec that encodes for ``checkpoint`` exactly as guardcli will after conversion."""
    checkpoint = Path(checkpoint)
    bos = bos_token_id(checkpoint)
    add_bos, _why = decide_add_bos(checkpoint, checkpoint, bos, "auto", hints)
    return TextCodec(checkpoint / "tokenizer.json", bos_token_id=bos, add_bos=add_bos)


def pin_add_bos(checkpoint: Path, add_bos: bool) -> None:
    """Record the BOS rule in a saved checkpoint's tokenizer_config.json (read first above)."""
    path = Path(checkpoint) / "tokenizer_config.json"
    config = json_or_empty(path)
    config["add_bos_token"] = bool(add_bos)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def json_or_empty(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON file as a dict: {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
