"""A trainer's output directory: refuse to mix runs, resume from its checkpoints, and save a
full checkpoint (LoRA merged, tokenizer copied verbatim, the BOS rule pinned with
``pin_add_bos``) that ``python -m export.convert --model DIR`` reads as is, with the LoRA
adapter kept beside it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from export import TrainError
from export.convert.encoding import checkpoint_codec, pin_add_bos
from export.convert.sources import TOKENIZER_FILES as SOURCE_TOKENIZER_FILES
from export.train.base import Base
from export.train.layout import ADAPTER, CHECKPOINTS, TRAIN_LOG

# What save_checkpoint copies from the base: export.convert.sources' tokenizer files but the slow
# BPE vocabulary (vocab.json, merges.txt), which it has never copied (tokenizer.json encodes alone).
TOKENIZER_FILES = tuple(n for n in SOURCE_TOKENIZER_FILES if n not in {"vocab.json", "merges.txt"})


def check_output(output: Path, *, resume: bool) -> Path | None:
    """Refuse to mix runs in one directory; return the checkpoint to resume from, if any."""
    checkpoints = latest_checkpoint(output / CHECKPOINTS)
    if resume:
        if checkpoints is None:
            raise TrainError(
                f"--resume: no checkpoint in {output / CHECKPOINTS}",
                hint="run without --resume to start from the base model",
            )
        return checkpoints
    if (output / TRAIN_LOG).exists():
        raise TrainError(
            f"{output} already holds a trained model ({TRAIN_LOG})",
            hint="choose another --output, or delete it",
        )
    if checkpoints is not None:
        raise TrainError(
            f"{output} holds checkpoints of an unfinished run ({checkpoints.name})",
            hint="pass --resume to continue it, or choose another --output",
        )
    return None


def latest_checkpoint(directory: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not directory.is_dir():
        return None
    found = get_last_checkpoint(str(directory))
    return Path(found) if found else None


def save_checkpoint(model: Any, base: Base, output: Path, save_dtype: str = "auto") -> Path:
    """A full Hugging Face checkpoint guardcli's converter reads: LoRA merged, the base's
    tokenizer files verbatim, the BOS rule pinned (a derived model keeps its base's rule)."""
    import torch

    save_adapter(model, output / ADAPTER)
    model = merge_lora(model)
    dtype = base.dtype if save_dtype == "auto" else save_dtype
    model = model.to(getattr(torch, dtype))
    model.config.use_cache = True  # training turns the KV cache off; generation wants it back
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (base.checkpoint / name).is_file():
            shutil.copyfile(base.checkpoint / name, output / name)
    pin_add_bos(output, base.add_bos)
    saved = checkpoint_codec(output)
    probe = "Human user:\nhi\n\nAI assistant:\nNone\n\n"
    if saved.add_bos != base.add_bos or saved.encode(probe) != base.codec.encode(probe):
        raise TrainError(f"{output}: the saved tokenizer encodes differently from the base's")
    return output


def save_adapter(model: Any, directory: Path) -> Path | None:
    """The LoRA adapter alone (peft's adapter_model.safetensors + adapter_config.json), kept
    beside the merged checkpoint: a few MB that rebuild the model from its base, which is
    how guardcli ships its default model (guardcli/bundles/nano.py) instead of the full weights."""
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is part of the export extra
        return None
    if not isinstance(model, PeftModel):
        return None
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def merge_lora(model: Any) -> Any:
    """A plain transformers model: LoRA adapters folded into the weights they adapt."""
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is part of the export extra
        return model
    if isinstance(model, PeftModel):
        return model.merge_and_unload()
    return model


def finish_checkpoints(output: Path, keep: bool) -> None:
    if not keep:
        shutil.rmtree(output / CHECKPOINTS, ignore_errors=True)
