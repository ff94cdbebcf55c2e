"""``train_log.json``: the loss curve, tokens/s, wall time, rows used and dropped, versions."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from export.train.base import Base
from export.train.layout import TRAIN_LOG
from export.train.options import TrainingOptions


@dataclass
class RunLog:
    """What train_log.json records; ``stage`` fills ``extra`` with its own counts."""

    stage: str
    base: Base
    options: TrainingOptions
    device: str
    started: float = field(default_factory=time.perf_counter)
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, output: Path, trainer: Any, resumed_from: Path | None) -> dict[str, Any]:
        wall = time.perf_counter() - self.started
        history = trainer.state.log_history
        curve = [
            {k: v for k, v in entry.items() if isinstance(v, (int, float))}
            for entry in history
            if "loss" in entry
        ]
        train_s = next((e["train_runtime"] for e in history if "train_runtime" in e), wall)
        tokens = int(getattr(trainer, "_total_train_tokens", 0))
        log = {
            "stage": self.stage,
            "base": {
                "spec": self.base.spec,
                "source": self.base.record,
                "add_bos": self.base.add_bos,
                "bos_token_id": self.base.codec.bos_token_id,
                "eos_token_id": self.base.eos_id,
            },
            "options": _jsonable(dataclasses.asdict(self.options)),
            "device": self.device,
            "bf16": bool(trainer.args.bf16),
            "global_step": trainer.state.global_step,
            "epochs_done": trainer.state.epoch,
            "resumed_from": str(resumed_from) if resumed_from else None,
            "wall_s": round(wall, 2),
            "train_s": round(float(train_s), 2),
            "tokens": tokens,
            "tokens_per_s": round(tokens / train_s, 1) if train_s else None,
            "final_loss": curve[-1]["loss"] if curve else None,
            "loss_curve": curve,
            **self.extra,
            "versions": versions(),
        }
        (output / TRAIN_LOG).write_text(json.dumps(log, indent=2) + "\n", encoding="utf-8")
        return log


def versions() -> dict[str, str]:
    found = {}
    for dist in ("guardcli", "torch", "transformers", "trl", "peft", "tokenizers"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "absent"
    return found


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def say(message: str) -> None:
    """Progress for the person at the terminal: stdout, flushed (trainers log there too)."""
    print(message, flush=True)
