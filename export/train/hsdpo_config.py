"""HS-DPO's options (HSDPOConfig: the three steps' and the trainer's), the paper's preset, and
the files of its output directory. The steps and the file formats: export.train.hsdpo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.train.options import TrainingOptions

SAMPLES = "samples.jsonl"
PAIRS = "pairs.jsonl"
FOCUS = "focus.json"  # the inputs --focus chose, so a resumed run does not score again
MODEL = "model"
STEPS = ("sample", "mine", "train")
PRESETS: dict[str, dict[str, Any]] = {
    "guardreasoner-1b": {
        "lr": 5e-6,
        "epochs": 2.0,
        "beta": 0.01,
        "sft_weight": 2.0,
        "batch_size": 4,
        "grad_accum": 64,  # 4 x 64 = 256, the paper's effective batch
        "cutoff": 2048,
        "scheduler": "cosine",
        "warmup_ratio": 0.0,
        "max_grad_norm": 1.0,
        "bf16": "auto",
        "k": 4,
        "temperature": 0.7,
        "top_p": 0.95,
    },
}


@dataclass
class HSDPOConfig(TrainingOptions):
    output: Path = Path()
    model: str = ""  # the R-SFT checkpoint: sampled from, trained, and the DPO reference
    data: list[Path] = field(default_factory=list)
    samples: Path | None = None  # default DIR/samples.jsonl
    pairs: Path | None = None  # default DIR/pairs.jsonl
    # sample
    sample_model: str = ""  # what samples the R-SFT policy (default: model); e.g. its bundle
    extra_models: list[str] = field(default_factory=list)
    extra_traces: list[Path] = field(default_factory=list)
    k: int = 4
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 1024
    sample_batch_size: int = 8
    chunk: int = 256
    limit: int | None = None
    holdout_split: Path | None = None  # validation.lines of export.data.splits: never sampled
    focus: int | None = None  # sample only the N inputs nearest the cut (export.train.hsdpo_focus)
    focus_model: str = ""  # the bundle that scores them in fast mode (default: sample_model)
    # mine
    pairs_per_input: int = 1
    gamma: float = 1.0
    # train
    trainer: str = "trl"  # or "fast": export.train.fast_dpo, the same loss without TRL's overheads
    lr: float = 5e-6
    epochs: float = 2.0
    batch_size: int = 2
    beta: float = 0.01
    sft_weight: float = 2.0

    @property
    def samples_path(self) -> Path:
        return self.samples or Path(self.output) / SAMPLES

    @property
    def focus_path(self) -> Path:
        return self.samples_path.parent / FOCUS  # beside the samples it chose: committed together

    @property
    def pairs_path(self) -> Path:
        return self.pairs or Path(self.output) / PAIRS

    @property
    def model_dir(self) -> Path:
        return Path(self.output) / MODEL
