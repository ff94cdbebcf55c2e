"""How a trainer is configured: defaults < ``--preset`` < ``--config`` YAML < flags, the
options every trainer shares (TrainingOptions) and their command-line flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export import TrainError, positive_int
from export.train.layout import CHECKPOINTS

SAVE_DTYPES = ("float32", "bfloat16", "float16")
LORA_ALL = "all-linear"


def config_from_sources(
    cls: type,
    flags: dict[str, Any],
    presets: dict[str, dict[str, Any]],
) -> Any:
    """Build ``cls`` from defaults < preset < YAML (``flags["config"]``) < explicit flags.

    ``flags`` holds only what the user typed (argparse defaults are None). YAML keys may be
    spelled like the flags (``grad-accum``) or like the fields (``grad_accum``); an unknown key is
    an error, so a typo in a recipe never silently trains with a default.
    """
    flags = {k: v for k, v in flags.items() if v is not None}
    config_path = flags.pop("config", None)
    from_yaml = load_yaml(config_path) if config_path is not None else {}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(from_yaml) - names)
    if unknown:
        raise TrainError(
            f"--config: unknown key(s) {', '.join(unknown)}",
            hint=f"valid keys: {', '.join(sorted(names))}",
        )
    preset_name = flags.get("preset", from_yaml.get("preset"))
    values: dict[str, Any] = {}
    if preset_name is not None:
        if preset_name not in presets:
            raise TrainError(
                f"unknown preset {preset_name!r}", hint=f"choose one of {', '.join(presets)}"
            )
        values.update(presets[preset_name])
    values.update(from_yaml)
    values.update(flags)
    if config_path is not None and "config" in names:
        values["config"] = config_path
    hints = typing.get_type_hints(cls)
    coerced = {name: _coerce(name, value, hints[name]) for name, value in values.items()}
    try:
        return cls(**coerced)
    except TypeError as exc:  # a required field missing from flags and YAML
        raise TrainError(f"incomplete configuration: {exc}") from exc


def load_yaml(path: Path | str) -> dict[str, Any]:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise TrainError(f"--config {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise TrainError(f"--config {path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise TrainError(f"--config {path}: expected a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """YAML gives strings where the dataclass wants paths, and scalars where it wants lists."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(name, value, options[0]) if len(options) == 1 else value
    if origin is list:
        (item,) = typing.get_args(hint)
        items = value if isinstance(value, (list, tuple)) else [value]
        return [_coerce(name, v, item) for v in items]
    try:
        if hint is Path:
            return Path(value).expanduser()
        if hint is bool:
            if isinstance(value, str):
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if hint in (int, float, str):
            return hint(value)
    except (TypeError, ValueError) as exc:
        raise TrainError(f"{name}: {value!r} is not a valid {hint.__name__}") from exc
    return value


def flags_of(args: argparse.Namespace) -> dict[str, Any]:
    """The options the user actually gave (argparse leaves the others at None)."""
    return {k: v for k, v in vars(args).items() if v is not None and k != "command"}


def add_common_training_options(parser: argparse.ArgumentParser, defaults: Any) -> None:
    """The options R-SFT and HS-DPO training share; help shows the (non-preset) defaults."""
    d = defaults
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--lr", type=float, help=f"peak learning rate (default {d.lr:g})")
    opt.add_argument("--epochs", type=float, help=f"passes over the data (default {d.epochs:g})")
    opt.add_argument(
        "--max-steps",
        type=positive_int,
        metavar="N",
        help="stop after N optimiser steps (overrides --epochs; default: run all epochs)",
    )
    opt.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help=f"rows per forward pass on the device (default {d.batch_size})",
    )
    opt.add_argument(
        "--grad-accum",
        type=positive_int,
        metavar="N",
        help=f"forward passes per optimiser step; effective batch = batch-size x grad-accum "
        f"(default {d.grad_accum})",
    )
    opt.add_argument(
        "--cutoff",
        type=positive_int,
        metavar="TOKENS",
        help=f"drop (and count) rows longer than this many tokens, prompt + completion "
        f"(default {d.cutoff}); rows are never truncated",
    )
    opt.add_argument(
        "--scheduler",
        choices=("cosine", "linear", "constant", "constant_with_warmup"),
        help=f"learning-rate schedule (default {d.scheduler})",
    )
    opt.add_argument(
        "--warmup-ratio",
        type=float,
        metavar="R",
        help=f"fraction of the steps warming up linearly, in [0, 1) (default {d.warmup_ratio:g})",
    )
    opt.add_argument(
        "--max-grad-norm", type=float, help=f"gradient clipping norm (default {d.max_grad_norm:g})"
    )
    opt.add_argument(
        "--seed", type=int, help=f"seed for weights, dropout, shuffling (default {d.seed})"
    )
    lora = parser.add_argument_group("LoRA (default: full fine-tuning)")
    lora.add_argument(
        "--lora",
        action="store_true",
        default=None,
        help="train LoRA adapters (peft) instead of all weights; they are merged into a full "
        "checkpoint at the end, so export.convert reads the output like any other",
    )
    lora.add_argument("--lora-r", type=positive_int, help=f"LoRA rank (default {d.lora_r})")
    lora.add_argument("--lora-alpha", type=float, help=f"LoRA alpha (default {d.lora_alpha:g})")
    lora.add_argument(
        "--lora-dropout", type=float, help=f"LoRA dropout (default {d.lora_dropout:g})"
    )
    lora.add_argument(
        "--target-modules",
        metavar="NAMES",
        help=f"comma-separated module names to adapt, e.g. q_proj,v_proj, or {LORA_ALL} "
        f"(default {d.target_modules})",
    )
    run = parser.add_argument_group("hardware and checkpoints")
    run.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        help="where to train (default auto: cuda when torch sees a GPU, else cpu)",
    )
    run.add_argument(
        "--bf16",
        choices=("auto", "yes", "no"),
        help="bf16 mixed precision with float32 master weights (default auto: yes on a GPU that "
        "supports bf16, no on CPU)",
    )
    run.add_argument(
        "--gradient-checkpointing",
        choices=("auto", "yes", "no"),
        help="recompute activations in the backward pass to save memory (default auto: yes on "
        "cuda, no on cpu)",
    )
    run.add_argument(
        "--save-steps",
        type=positive_int,
        metavar="N",
        help=f"write a resumable checkpoint to DIR/{CHECKPOINTS}/ every N steps "
        f"(default {d.save_steps})",
    )
    run.add_argument(
        "--save-total-limit",
        type=positive_int,
        metavar="N",
        help=f"keep only the newest N checkpoints (default {d.save_total_limit})",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        default=None,
        help=f"continue from the newest checkpoint in DIR/{CHECKPOINTS}/ (same data and options)",
    )
    run.add_argument(
        "--keep-checkpoints",
        action="store_true",
        default=None,
        help=f"keep DIR/{CHECKPOINTS}/ after a successful run (default: deleted, since "
        "export.convert hashes every weight file under DIR)",
    )
    run.add_argument(
        "--save-dtype",
        choices=("auto", *SAVE_DTYPES),
        help="dtype of the saved weights (default auto: the base checkpoint's dtype)",
    )
    run.add_argument(
        "--logging-steps",
        type=positive_int,
        metavar="N",
        help=f"record the loss every N steps (default {d.logging_steps})",
    )


@dataclass
class TrainingOptions:
    """Fields every training stage has (R-SFT and HS-DPO configs inherit them)."""

    lr: float = 5e-5
    epochs: float = 3.0
    max_steps: int | None = None
    batch_size: int = 4
    grad_accum: int = 1
    cutoff: int = 2048
    scheduler: str = "cosine"
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    lora: bool = False
    lora_r: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.05
    target_modules: str = LORA_ALL
    device: str = "auto"
    bf16: str = "auto"
    gradient_checkpointing: str = "auto"
    save_steps: int = 500
    save_total_limit: int = 2
    resume: bool = False
    keep_checkpoints: bool = False
    save_dtype: str = "auto"
    logging_steps: int = 1
    preset: str | None = None
    config: Path | None = None  # the YAML it came from, for the log only
