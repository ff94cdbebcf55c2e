"""Training: ``python -m export.train.rsft`` (TRL's SFTTrainer), ``export.train.fast_sft`` (a plain
PyTorch LoRA loop for CPUs), ``export.train.hsdpo`` (sample, mine, weighted DPO). ``common``
holds what the trainers share: options, the base model, rows, checkpoints, the run log.
"""
