"""Where a fast trainer's run stands, on disk: ``OUTPUT/state`` holds the adapter, the
optimizer and ``progress.json`` (step and log), written whole or not at all, so a killed run
resumes from its last save; ``publish_state`` makes the small copy a session commits (fp16
adapter and progress, no optimizer) and ``--resume-from`` continues from it elsewhere."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from export.train.sft_model import LoraLM

STATE = "state"  # OUTPUT/state: adapter/, progress.json (step, log), trainer.pt (optimizer)
PROGRESS = "progress.json"
ADAPTER_FILE = "adapter_model.safetensors"


def save_state(directory: Path, model: LoraLM, optim: Any, step: int, log: dict) -> None:
    import torch

    partial = directory.with_name(directory.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    model.peft.save_pretrained(partial / "adapter", safe_serialization=True)
    torch.save({"optim": optim.state_dict()}, partial / "trainer.pt")
    (partial / PROGRESS).write_text(json.dumps({"step": step, "log": log}), encoding="utf-8")
    if directory.exists():
        shutil.rmtree(directory)
    partial.rename(directory)


def load_state(directory: Path, model: LoraLM, optim: Any) -> tuple[int, dict]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(directory / "adapter" / ADAPTER_FILE))
    set_peft_model_state_dict(model.peft, {k: v.float() for k, v in weights.items()})
    if (directory / "trainer.pt").is_file():
        optim.load_state_dict(torch.load(directory / "trainer.pt", weights_only=True)["optim"])
    else:  # a committed state (export.nano_state): the adapter alone; Adam's moments restart
        say("no optimizer state: resuming with a fresh AdamW")
    progress = json.loads((directory / PROGRESS).read_text(encoding="utf-8"))
    return int(progress["step"]), progress["log"]


def publish_state(state: Path, dest: Path) -> dict[str, Any]:
    """The run's position in a form small enough to commit: the adapter in float16 and
    progress.json (no optimizer: 2x the adapter in float32). ``--resume-from DEST`` continues
    from it on a fresh checkout, with a fresh AdamW."""
    from safetensors.torch import load_file, save_file

    progress = json.loads((state / PROGRESS).read_text(encoding="utf-8"))
    (dest / "adapter").mkdir(parents=True, exist_ok=True)
    weights = load_file(str(state / "adapter" / "adapter_model.safetensors"))
    # a committed stage's adapter may be a link to the shipped one (models/nano/train-state):
    # replace the link, never write through it
    (dest / "adapter" / ADAPTER_FILE).unlink(missing_ok=True)
    save_file({k: v.half() for k, v in weights.items()}, str(dest / "adapter" / ADAPTER_FILE))
    shutil.copyfile(
        state / "adapter" / "adapter_config.json", dest / "adapter" / "adapter_config.json"
    )
    (dest / PROGRESS).write_text(json.dumps(progress, indent=1) + "\n", encoding="utf-8")
    say(f"state of step {progress['step']} published to {dest}")
    return progress["log"]


def say(message: str) -> None:
    print(f"fast_sft: {message}", file=sys.stderr, flush=True)
