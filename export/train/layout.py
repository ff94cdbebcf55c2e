"""The names inside a trainer's output directory, which the pipeline, export.nano and the
trainers all read: what a trainer writes last, its resumable checkpoints, its LoRA adapter."""

TRAIN_LOG = "train_log.json"  # written last: its presence means the run finished
CHECKPOINTS = "checkpoints"  # the trainer's resumable checkpoints, inside the output directory
ADAPTER = "adapter"  # DIR/adapter/: the LoRA adapter of a --lora run, unmerged
