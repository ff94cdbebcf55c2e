"""LoRA SFT for a small guard on a CPU, in plain PyTorch: ``python -m export.fast_sft``.

    python -m export.fast_sft --model CKPT --traces runs/nano/distill/train.jsonl \\
        --prompts ../shared/data/extra/guardreasoner_train_prompts.jsonl --output runs/nano2/sft \\
        --epochs 3 --lora-layers 8 [--resume]

export.rsft (TRL's SFTTrainer) trained nano at 146 tokens/s on two cores. This loop does the same
job (the same ids, loss on the same positions) without the work that does not change the result:

* **LoRA on the top ``--lora-layers`` layers only**: backward stops there, and the frozen lower
  layers' output for a row never changes, so it is computed once and kept (bf16, in memory:
  ``--cache-lower``); later epochs run only the top layers;
* **the LM head only at loss positions** (a 49k-vocabulary projection of every prompt position
  is most of the head's cost and none of the loss);
* bf16 autocast, batch 1 with no padding, a row's loss averaged over its own targets so a
  label-only row (1-3 target tokens) weighs as much as a 300-token trace.

``scripts/train_speed.py`` measures each of these against the TRL recipe (models/nano/README.md
has the table). Every ``--save-every`` steps the adapter, optimizer and position are written to
``OUTPUT/state``; ``--resume`` continues from there after a kill. At the end OUTPUT holds a
merged checkpoint and ``adapter/``, the layout export.nano packages.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from export.sft_data import (
    Sequence_,
    drop_held_out,
    label_examples_from_prompts,
    label_examples_from_traces,
    label_sequence,
    trace_sequence,
)
from guardcli.eval.metrics import roc_auc

STATE = "state"
# every linear layer of a Llama block (peft's "all-linear"; a list, so layers can be chosen)
LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class Options:
    model: str = ""
    output: Path = Path()
    traces: list[Path] = field(default_factory=list)
    prompts: Path | None = None
    split_lines: Path | None = None  # the validation split (default: export.splits.LINES)
    label_from_traces: bool = True
    epochs: float = 1.0
    lr: float = 3e-4
    warmup: float = 0.03
    grad_accum: int = 8
    lora_r: int = 16
    lora_alpha: int = 32
    lora_layers: int = 0  # 0: every layer
    cache_lower: bool = True
    bf16: bool = True
    head_at_targets: bool = True
    cutoff: int = 1024
    save_every: int = 50
    eval_every: int = 100
    eval_limit: int = 200
    probe_rows: int = 32
    max_steps: int | None = None
    stop_at: int | None = None  # end this invocation after step N (state saved; --resume goes on)
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"  # or "cuda": the same loop on a GPU (the cache then lives there too)
    resume: bool = False
    snapshot: Path | None = None  # write the saved state's merged checkpoint here, train nothing
    cache_dir: Path | None = None  # default ~/.cache/guardcli-train/<data and split fingerprint>


# ---------------------------------------------------------------------------------- the model


class LoraLM:
    """A causal LM split at ``split``: frozen layers below, LoRA-adapted layers above."""

    def __init__(self, checkpoint: Path, opts: Options) -> None:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
        self.device = opts.device
        model.to(self.device)
        layers = model.config.num_hidden_layers
        top = opts.lora_layers or layers
        self.split = layers - top
        config = LoraConfig(
            r=opts.lora_r,
            lora_alpha=opts.lora_alpha,
            lora_dropout=0.0,
            target_modules=list(LINEAR),
            layers_to_transform=list(range(self.split, layers)),
            task_type="CAUSAL_LM",
        )
        self.peft = get_peft_model(model, config)
        self.inner = self.peft.base_model.model.model  # LlamaModel
        self.head = self.peft.base_model.model.lm_head
        self.opts = opts
        self._cache: dict[int, Any] = {}
        self._stored: set[int] = set()  # keys already in a shard on disk
        # the request label's two first tokens (harmful, unharmful): what evaluate() compares
        self.option_pair: tuple[int, int] = (0, 0)

    def parameters(self) -> list[Any]:
        return [p for p in self.peft.parameters() if p.requires_grad]

    def _positions(self, n: int) -> tuple[Any, Any]:
        import torch

        position_ids = torch.arange(n, device=self.device).unsqueeze(0)
        hidden = torch.zeros(1, n, self.inner.config.hidden_size, device=self.device)
        return position_ids, self.inner.rotary_emb(hidden, position_ids=position_ids)

    def _run(self, hidden: Any, start: int, stop: int, position_ids: Any, rope: Any) -> Any:
        for layer in self.inner.layers[start:stop]:
            hidden = layer(
                hidden, attention_mask=None, position_ids=position_ids, position_embeddings=rope
            )
        return hidden

    def lower(self, index: int, ids: Any, position_ids: Any, rope: Any) -> Any:
        """Hidden states entering the first adapted layer: constant in training, so cached."""
        import torch

        if index in self._cache:
            return self._cache[index].float()
        with torch.no_grad():
            hidden = self.inner.embed_tokens(ids)
            hidden = self._run(hidden, 0, self.split, position_ids, rope)
        if self.opts.cache_lower and self.split > 0:
            self._cache[index] = hidden.to(torch.bfloat16)
        return hidden

    def load_cache(self, directory: Path) -> int:
        """Cached lower-layer states of an earlier run on the same data (``store_cache``)."""
        import torch

        for shard in sorted(directory.glob("shard-*.pt")):
            part = torch.load(shard, weights_only=True)
            self._cache.update({k: v.to(self.device) for k, v in part.items()})
            self._stored.update(part)
        return len(self._cache)

    def store_cache(self, directory: Path) -> None:
        """New cache entries to a new shard: a resumed run (or the next session, on the same
        machine) skips the frozen layers' forward pass for every row it has seen."""
        import torch

        new = {k: v.cpu() for k, v in self._cache.items() if k not in self._stored}
        if not new:
            return
        directory.mkdir(parents=True, exist_ok=True)
        shard = directory / f"shard-{len(list(directory.glob('shard-*.pt'))):05d}.pt"
        torch.save(new, shard.with_suffix(".partial"))
        shard.with_suffix(".partial").rename(shard)
        self._stored.update(new)

    def row_loss(self, index: int, row: Sequence_) -> Any:
        import torch
        import torch.nn.functional as F

        ids = torch.tensor([row.ids], device=self.device)
        position_ids, rope = self._positions(len(row.ids))
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.opts.bf16):
            hidden = self.lower(index, ids, position_ids, rope)
            hidden = self._run(hidden, self.split, len(self.inner.layers), position_ids, rope)
            hidden = self.inner.norm(hidden)[0]
            targets = torch.tensor(row.targets, device=self.device)
            if self.opts.head_at_targets:
                logits = self.head(hidden[targets - 1])
            else:
                logits = self.head(hidden)[targets - 1]
        return F.cross_entropy(logits.float(), ids[0, targets])

    def label_scores(self, rows: list[Sequence_]) -> list[float]:
        """P(first option) at each label row's first target: what fast triage reads."""
        import torch

        scores = []
        with (
            torch.no_grad(),
            torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.opts.bf16),
        ):
            for number, row in enumerate(rows):
                ids = torch.tensor([row.ids], device=self.device)
                position_ids, rope = self._positions(len(row.ids))
                hidden = self.lower(-100_000 - number, ids, position_ids, rope)
                hidden = self._run(hidden, self.split, len(self.inner.layers), position_ids, rope)
                at = row.targets[0] - 1
                logits = self.head(self.inner.norm(hidden)[0, at]).float()
                scores.append(logits)
        return scores


# ---------------------------------------------------------------------------------- data


@dataclass
class Data:
    train: list[Sequence_]
    validation: list[Sequence_]  # label-only rows of the validation split (harmful, unharmful)
    probe: list[Sequence_]  # trace rows kept out of training: a held-out loss
    counts: dict[str, int]


def build_data(opts: Options, base) -> Data:  # noqa: ANN001 - train_common.Base
    from export import splits
    from export.train_common import read_train_rows
    from guardcli.core.triage import Triage

    triage = Triage(base.codec)
    lines = opts.split_lines or splits.LINES
    split = splits.load(opts.prompts, lines) if opts.prompts else None
    held = {splits._key(r.prompt) for r in split.validation} if split else set()  # noqa: SLF001
    trace_rows = read_train_rows(opts.traces) if opts.traces else []
    seqs = [trace_sequence(base, r.text, r.output) for r in trace_rows]
    examples = label_examples_from_traces(trace_rows) if opts.label_from_traces else []
    if split:
        examples += label_examples_from_prompts(split.train)
    seqs += [label_sequence(base, triage, e) for e in examples]
    too_long = [s for s in seqs if len(s.ids) > opts.cutoff]
    seqs = [s for s in seqs if len(s.ids) <= opts.cutoff]
    seqs, overlap = drop_held_out(seqs, held)
    traces = [i for i, s in enumerate(seqs) if s.kind == "trace"]
    probe_at = set(random.Random(opts.seed).sample(traces, min(opts.probe_rows, len(traces))))
    probe = [seqs[i] for i in sorted(probe_at)]
    seqs = [s for i, s in enumerate(seqs) if i not in probe_at]
    validation = []
    if split:
        validation = [
            label_sequence(base, triage, e) for e in label_examples_from_prompts(split.validation)
        ]
        validation = [v for v in validation if len(v.ids) <= opts.cutoff]
        random.Random(opts.seed).shuffle(validation)  # any prefix (--eval-limit) is a fair sample
    counts = {
        "trace_rows": sum(s.kind == "trace" for s in seqs),
        "label_rows": sum(s.kind == "label" for s in seqs),
        "dropped_over_cutoff": len(too_long),
        "dropped_validation_overlap": overlap,
        "validation_rows": len(validation),
        "probe_rows": len(probe),
        "train_tokens": sum(len(s.ids) for s in seqs),
        "target_tokens": sum(len(s.targets) for s in seqs),
    }
    return Data(seqs, validation, probe, counts)


def probe_loss(model: LoraLM, rows: list[Sequence_]) -> float:
    import torch

    with torch.no_grad():
        return sum(float(model.row_loss(-1 - i, r)) for i, r in enumerate(rows)) / max(1, len(rows))


def evaluate(model: LoraLM, rows: list[Sequence_], probe: list[Sequence_]) -> dict[str, float]:
    """Fast-mode ROC AUC and F1/FPR at 0.5 of the request label on validation rows, and the
    mean loss of the held-out probe traces."""
    import torch

    result = {"probe_loss": probe_loss(model, probe)} if probe else {}
    if not rows:
        return result
    logits = model.label_scores(rows)
    pos, neg = [], []
    for row, logit in zip(rows, logits, strict=True):
        harmful_first = row.ids[row.targets[0]]
        # Both options' first tokens: the row's own gold token and the other one.
        pair = model.option_pair
        probs = torch.softmax(logit[list(pair)], dim=0)
        score = float(probs[0])
        (pos if harmful_first == pair[0] else neg).append(score)
    tp = sum(s >= 0.5 for s in pos)
    fp = sum(s >= 0.5 for s in neg)
    f1 = 2 * tp / max(1, 2 * tp + fp + (len(pos) - tp))
    return result | {
        "auc": roc_auc(pos, neg),
        "f1_at_0.5": 100 * f1,
        "fpr_at_0.5": fp / max(1, len(neg)),
    }


# ---------------------------------------------------------------------------------- training


def lr_at(step: int, total: int, opts: Options) -> float:
    warm = max(1, int(opts.warmup * total))
    if step < warm:
        return opts.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return opts.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def order(n: int, epoch: int, seed: int) -> list[int]:
    indices = list(range(n))
    random.Random(seed * 1000 + epoch).shuffle(indices)
    return indices


def train(opts: Options) -> dict[str, Any]:
    import tempfile

    import torch

    from export.train_common import open_base, save_checkpoint

    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    output = Path(opts.output)
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="guardcli-sft-") as tmp:
        base = open_base(opts.model, Path(tmp))
        data = build_data(opts, base)
        say(f"data: {json.dumps(data.counts)}")
        model = LoraLM(base.checkpoint, opts)
        model.option_pair = _request_pair(base)
        if opts.snapshot:
            return _snapshot(opts, model, base, output)
        cache = opts.cache_dir or _cache_dir(data, opts, model.split)
        if opts.cache_lower and model.split:
            say(f"lower-layer cache {cache}: {model.load_cache(cache)} rows loaded")
        params = model.parameters()
        optim = torch.optim.AdamW(params, lr=opts.lr, weight_decay=0.0)
        per_epoch = len(data.train) // opts.grad_accum
        total = opts.max_steps or max(1, int(per_epoch * opts.epochs))
        step, log = 0, {"steps": [], "evals": [], "counts": data.counts, "options": _jsonable(opts)}
        if opts.resume and (output / STATE / "trainer.pt").is_file():
            step, log = _load_state(output / STATE, model, optim)
            say(f"resuming at step {step} of {total}")
        started, tokens = time.perf_counter(), 0
        end = min(total, opts.stop_at) if opts.stop_at else total
        while step < end:
            epoch, within = divmod(step * opts.grad_accum, max(1, len(data.train)))
            indices = order(len(data.train), epoch, opts.seed)[within : within + opts.grad_accum]
            for group in optim.param_groups:
                group["lr"] = lr_at(step, total, opts)
            optim.zero_grad(set_to_none=True)
            losses = []
            for index in indices:
                row = data.train[index]
                loss = model.row_loss(index, row) / len(indices)
                loss.backward()
                losses.append(float(loss.detach()) * len(indices))
                tokens += len(row.ids)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optim.step()
            step += 1
            elapsed = time.perf_counter() - started
            log["steps"].append(
                {"step": step, "loss": sum(losses) / len(losses), "tokens_per_s": tokens / elapsed}
            )
            if step % 10 == 0:
                say(
                    f"step {step}/{total} epoch {epoch} loss {log['steps'][-1]['loss']:.4f} "
                    f"{tokens / elapsed:.0f} tok/s"
                )
            if opts.eval_every and (step % opts.eval_every == 0 or step == total):
                result = evaluate(model, data.validation[: opts.eval_limit], data.probe)
                log["evals"].append({"step": step, **result})
                say(f"validation at step {step}: {json.dumps(result)}")
            if step % opts.save_every == 0 or step == end:
                _save_state(output / STATE, model, optim, step, log)
                if opts.cache_lower and model.split:
                    model.store_cache(cache)
        if step < total:
            say(f"stopped at step {step} of {total} (--stop-at); --resume continues")
            return log
        save_checkpoint(model.peft, base, output, "float32")
        (output / "train_log.json").write_text(json.dumps(log, indent=1), encoding="utf-8")
    return log


def _snapshot(opts: Options, model: LoraLM, base, output: Path) -> dict[str, Any]:  # noqa: ANN001
    """The saved state as a merged checkpoint (what export.convert reads), mid-run."""
    import torch

    from export.train_common import save_checkpoint

    optim = torch.optim.AdamW(model.parameters(), lr=opts.lr)
    step, log = _load_state(output / STATE, model, optim)
    save_checkpoint(model.peft, base, Path(opts.snapshot), "float32")
    log["snapshot_of_step"] = step
    (Path(opts.snapshot) / "train_log.json").write_text(json.dumps(log, indent=1), "utf-8")
    say(f"snapshot of step {step} in {opts.snapshot}")
    return log


def _cache_dir(data: Data, opts: Options, split: int) -> Path:
    import hashlib
    import os

    digest = hashlib.sha256(f"{opts.model}|{split}|{opts.bf16}|{opts.seed}".encode())
    for row in [*data.train, *data.validation, *data.probe]:
        digest.update(str(row.ids).encode())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "guardcli-train" / digest.hexdigest()[:16]


def _request_pair(base) -> tuple[int, int]:  # noqa: ANN001
    from guardcli.core.triage import Triage

    first = Triage(base.codec).choices(False)[0]
    return first.options[0][0], first.options[1][0]


def _save_state(directory: Path, model: LoraLM, optim: Any, step: int, log: dict) -> None:
    import torch

    partial = directory.with_name(directory.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    model.peft.save_pretrained(partial / "adapter", safe_serialization=True)
    torch.save({"optim": optim.state_dict(), "step": step, "log": log}, partial / "trainer.pt")
    if directory.exists():
        import shutil

        shutil.rmtree(directory)
    partial.rename(directory)


def _load_state(directory: Path, model: LoraLM, optim: Any) -> tuple[int, dict]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(directory / "adapter" / "adapter_model.safetensors"))
    set_peft_model_state_dict(model.peft, weights)
    state = torch.load(directory / "trainer.pt", weights_only=False)
    optim.load_state_dict(state["optim"])
    return int(state["step"]), state["log"]


def _jsonable(opts: Options) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()} | {
        "traces": [str(p) for p in opts.traces]
    }


def say(message: str) -> None:
    print(f"fast_sft: {message}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.fast_sft",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="base checkpoint dir, hub id or .gguf")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--traces", type=Path, nargs="*", default=[], help="distilled JSONL")
    parser.add_argument("--prompts", type=Path, help="labelled prompts (the split's train part)")
    parser.add_argument("--split-lines", type=Path, help="validation line numbers (export.splits)")
    parser.add_argument("--no-label-from-traces", dest="label_from_traces", action="store_false")
    for name, kind in (
        ("epochs", float),
        ("lr", float),
        ("warmup", float),
        ("grad-accum", int),
        ("lora-r", int),
        ("lora-alpha", int),
        ("lora-layers", int),
        ("cutoff", int),
        ("save-every", int),
        ("eval-every", int),
        ("eval-limit", int),
        ("probe-rows", int),
        ("max-steps", int),
        ("stop-at", int),
        ("seed", int),
        ("threads", int),
    ):
        parser.add_argument(
            f"--{name}", type=kind, default=getattr(Options, name.replace("-", "_"))
        )
    parser.add_argument("--no-cache-lower", dest="cache_lower", action="store_false")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false")
    parser.add_argument("--full-head", dest="head_at_targets", action="store_false")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--snapshot", type=Path, help="merge the saved state into DIR and stop")
    parser.add_argument("--cache-dir", type=Path, help="where the lower-layer cache persists")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    train(Options(**args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
