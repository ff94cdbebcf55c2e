"""What a TRL trainer is built with: the device, bf16, seeding, the trainer arguments every
trainer shares, and the LoRA configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from export import TrainError
from export.train.layout import CHECKPOINTS
from export.train.options import LORA_ALL, TrainingOptions


def pick_device(choice: str) -> str:
    import torch

    if choice == "cpu":
        return "cpu"
    available = torch.cuda.is_available()
    if choice == "cuda" and not available:
        raise TrainError(
            "--device cuda: torch sees no CUDA GPU",
            hint="install a CUDA build of torch or use --device cpu",
        )
    return "cuda" if available else "cpu"


def pick_bf16(choice: str, device: str) -> bool:
    import torch

    supported = device == "cuda" and torch.cuda.is_bf16_supported()
    if choice == "yes" and device == "cuda" and not supported:
        raise TrainError("--bf16 yes: this GPU has no bf16 support", hint="use --bf16 no")
    if choice == "auto":
        return supported
    return choice == "yes"


def seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def trainer_arguments(opts: TrainingOptions, output: Path, device: str) -> dict[str, Any]:
    """TrainingArguments fields shared by SFTConfig and DPOConfig."""
    checkpointing = opts.gradient_checkpointing
    return dict(
        output_dir=str(output / CHECKPOINTS),
        learning_rate=opts.lr,
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps if opts.max_steps is not None else -1,
        per_device_train_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        lr_scheduler_type=opts.scheduler,
        warmup_steps=opts.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
        max_grad_norm=opts.max_grad_norm,
        seed=opts.seed,
        data_seed=opts.seed,
        bf16=pick_bf16(opts.bf16, device),
        fp16=False,
        use_cpu=device == "cpu",
        activation_checkpointing=checkpointing == "yes"
        or (checkpointing == "auto" and device == "cuda"),
        save_strategy="steps",
        save_steps=opts.save_steps,
        save_total_limit=opts.save_total_limit,
        logging_steps=opts.logging_steps,
        report_to="none",
        dataloader_num_workers=0,
        max_length=None,  # rows over --cutoff are dropped beforehand, never truncated
    )


def lora_config(opts: TrainingOptions) -> Any:
    if not opts.lora:
        return None
    from peft import LoraConfig

    modules: str | list[str] = opts.target_modules
    if modules != LORA_ALL:
        modules = [m.strip() for m in modules.split(",") if m.strip()]
    return LoraConfig(
        r=opts.lora_r,
        lora_alpha=opts.lora_alpha,
        lora_dropout=opts.lora_dropout,
        target_modules=modules,
        task_type="CAUSAL_LM",
    )
