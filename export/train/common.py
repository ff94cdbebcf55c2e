"""What the training stages share (export.train.rsft, export.train.hsdpo); not a command itself.

* the base model: ``--model`` is a hub id, a checkpoint directory or a ``.gguf`` file, resolved
  by ``export.convert.sources`` to a Hugging Face checkpoint, exactly as ``export.convert``
  resolves it;
* the token ids of a training row, by the one rule of ``export.convert.encoding``: the prompt is
  ``build_input`` text encoded the way guardcli encodes it (BOS per the checkpoint's rule, then
  the tokenizer ids with ``add_special_tokens=False``), the completion is encoded *separately*
  and ends with EOS. Encoding prompt + completion as one string can merge tokens across the
  boundary (``"\\n\\n" + "##"`` becomes ``"\\n" "\\n##"`` in byte-level BPE), and then the model
  is trained on a prompt it never sees at run time;
* device and bf16 choice, seeding, configuration (defaults < ``--preset`` < ``--config`` YAML <
  flags), saving a full checkpoint (LoRA merged, tokenizer copied verbatim, the BOS rule pinned
  with ``pin_add_bos``) that ``python -m export.convert --model DIR`` reads as is;
* ``train_log.json``: the loss curve, tokens/s, wall time, rows used and dropped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from export import positive_int
from export.convert.encoding import checkpoint_codec, json_or_empty, pin_add_bos
from export.convert.sources import TOKENIZER_FILES as SOURCE_TOKENIZER_FILES
from guardcli.core.prompt import INSTRUCTION, split_input
from guardcli.core.tokenizer import TextCodec
from guardcli.errors import ExitCode, GuardError

TRAIN_LOG = "train_log.json"
CHECKPOINTS = "checkpoints"  # the trainer's resumable checkpoints, inside the output directory
# What save_checkpoint copies from the base: export.convert.sources' tokenizer files but the slow
# BPE vocabulary (vocab.json, merges.txt), which it has never copied (tokenizer.json encodes alone).
TOKENIZER_FILES = tuple(n for n in SOURCE_TOKENIZER_FILES if n not in {"vocab.json", "merges.txt"})
SAVE_DTYPES = ("float32", "bfloat16", "float16")
LORA_ALL = "all-linear"
ADAPTER = "adapter"  # DIR/adapter/: the LoRA adapter of a --lora run, unmerged


class TrainError(GuardError):
    """A training failure the user can act on: printed as one line, exit status 1."""

    exit_code = ExitCode.FLAGGED


# ------------------------------------------------------------------------------ configuration


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


# ------------------------------------------------------------------------------ base model


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


# ------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class TrainRow:
    """One GuardReasonerTrain row: the full model input text and the reasoning trace."""

    text: str  # instruction + "\n" + input == guardcli.core.prompt.build_input(prompt, response)
    output: str
    where: str  # file:line, for messages


def read_train_rows(paths: Sequence[Path]) -> list[TrainRow]:
    """Rows of GuardReasonerTrain-format files: JSONL, or a JSON list, of instruction/input/output.

    The instruction must be guardcli's, byte for byte, and the input in the GuardReasoner
    format: anything else would train on inputs the runtime never builds.
    """
    rows: list[TrainRow] = []
    for path in paths:
        for where, item in _json_items(Path(path)):
            rows.append(_train_row(item, where))
    if not rows:
        raise TrainError("no training rows in " + ", ".join(str(p) for p in paths))
    return rows


def _train_row(item: Any, where: str) -> TrainRow:
    if not isinstance(item, dict) or not all(
        isinstance(item.get(k), str) for k in ("instruction", "input", "output")
    ):
        raise TrainError(f"{where}: expected an object with string instruction, input, output")
    if item["instruction"] != INSTRUCTION:
        raise TrainError(
            f"{where}: the instruction differs from guardcli.core.prompt.INSTRUCTION",
            hint="regenerate the data with export.distill (the runtime only builds that prompt)",
        )
    text = item["instruction"] + "\n" + item["input"]
    if split_input(text) is None:
        raise TrainError(
            f"{where}: input is not 'Human user:\\n...\\n\\nAI assistant:\\n...\\n\\n'",
            hint="build it with guardcli.core.prompt.format_pair",
        )
    return TrainRow(text=text, output=item["output"], where=where)


def _json_items(path: Path) -> Iterator[tuple[str, Any]]:
    """(file:line, object) for a JSONL file or a JSON list."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrainError(f"{path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise TrainError(f"{path}: not UTF-8 text") from exc
    if raw.lstrip().startswith("["):
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise TrainError(f"{path}: invalid JSON ({exc})") from exc
        for index, item in enumerate(data):
            yield f"{path}[{index}]", item
        return
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{number}", json.loads(line)
        except ValueError as exc:
            raise TrainError(f"{path}:{number}: invalid JSON ({exc.args[0]})") from exc


# ------------------------------------------------------------------------------ hardware


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


# ------------------------------------------------------------------------------ output


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
