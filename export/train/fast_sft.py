"""LoRA SFT for a small guard on a CPU, in plain PyTorch: ``python -m export.train.fast_sft``.

    python -m export.train.fast_sft --model CKPT --traces runs/nano/distill/train.jsonl \\
        --prompts ../shared/data/extra/guardreasoner_train_prompts.jsonl --output runs/nano2/sft \\
        --epochs 3 --lora-layers 8 [--resume]

export.train.rsft (TRL's SFTTrainer) trained nano at 146 tokens/s on two cores. This loop does the
same job (the same ids, loss on the same positions) without the work that does not change the
result:

* **LoRA on the top ``--lora-layers`` layers only**: backward stops there, and the frozen lower
  layers' output for a row never changes, so it is computed once and kept (bf16, in memory:
  ``--cache-lower``); later epochs run only the top layers;
* **the LM head only at loss positions** (a 49k-vocabulary projection of every prompt position
  is most of the head's cost and none of the loss);
* **the instruction prefix once per step** (``export.train.prefix``): the rows of a step share
  one forward and backward pass of the 115 tokens they all open with, a sixth of a trace row
  and most of a label-only row;
* **attention as matmuls and a softmax** (``--attention eager``, the default): on two cores
  SDPA's CPU kernel was the slowest part of a step; ``--attention compiled`` fuses its
  memory-bound steps with torch.compile (``export.train.attention``; needs a C++ compiler);
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
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from export.cli import run_main
from export.eval.calibrate import at
from export.train.rft import add_replay_arguments, check_replay
from export.train.sft_data import Data, Sequence_, build_data
from export.train.sft_model import LoraLM
from export.train.sft_state import PROGRESS, STATE, load_state, publish_state, save_state, say
from guardcli.eval.metrics import roc_auc


@dataclass
class Options:
    model: str = ""
    output: Path = Path()
    traces: list[Path] = field(default_factory=list)
    replay: list[Path] = field(default_factory=list)  # earlier trace files to draw pairs from
    replay_count: int = 0  # seeded (prompt, response) rows of --replay appended to --traces
    prompts: Path | None = None
    split_lines: Path | None = None  # the validation split (default: export.data.splits.LINES)
    label_from_traces: bool = True
    prompt_labels: bool = True  # False: --prompts gives the split (guard, checks), no label rows
    balance_traces: bool = False  # repeat the rarer request label's prompt-only traces (sft_data)
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
    share_prefix: bool = True  # a step's rows share one pass of their common opening tokens
    batch_rows: bool = False  # one right-padded pass per step (a GPU's fast path; same gradient)
    attention: str = "eager"  # "compiled" (fastest here), "sdpa" (slowest): models/nano/README.md
    cutoff: int = 1024
    save_every: int = 50
    eval_every: int = 100
    eval_limit: int = 200
    probe_rows: int = 32
    max_steps: int | None = None
    stop_at: int | None = None  # end this invocation after step N (state saved; --resume goes on)
    time_limit: float | None = None  # seconds from the start, loading included: then the run
    # ends where it is, its merged checkpoint written (a share of a GPU lease)
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"  # "cuda": the same loop on a GPU; "auto": cuda when there is one
    resume: bool = False
    snapshot: Path | None = None  # write the saved state's merged checkpoint here, train nothing
    publish_state: Path | None = None  # copy the saved state (fp16 adapter, progress) here for git
    resume_from: Path | None = None  # a published state to continue from when OUTPUT has none
    cache_dir: Path | None = None  # default ~/.cache/guardcli-train/<data and split fingerprint>


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
    half = at(pos, neg, 0.5)
    return result | {"auc": roc_auc(pos, neg), "f1_at_0.5": 100 * half.f1, "fpr_at_0.5": half.fpr}


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

    from export.train.base import open_base
    from export.train.checkpoints import save_checkpoint

    entered = time.perf_counter()  # --time-limit counts loading too: a lease's share is wall time
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if opts.device == "auto":
        opts = replace(opts, device="cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(opts.seed)
    output = Path(opts.output)
    if opts.publish_state:
        return publish_state(output / STATE, Path(opts.publish_state))
    output.mkdir(parents=True, exist_ok=True)
    if opts.resume_from and not (output / STATE / PROGRESS).is_file():
        shutil.copytree(opts.resume_from, output / STATE, dirs_exist_ok=True)
        opts = replace(opts, resume=True)
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
        if opts.resume and (output / STATE / PROGRESS).is_file():
            step, log = load_state(output / STATE, model, optim)
            say(f"resuming at step {step} of {total}")
            if log.get("ended_at") is not None:  # --time-limit ended it: the run is over
                total = step
        started, tokens = time.perf_counter(), 0
        end = min(total, opts.stop_at) if opts.stop_at else total
        while step < end:
            if opts.time_limit is not None and time.perf_counter() - entered >= opts.time_limit:
                say(f"time limit ({opts.time_limit:.0f} s): the run ends at step {step} of {total}")
                log["ended_at"] = {"step": step, "of": total, "reason": "time limit"}
                total = end = step
                save_state(output / STATE, model, optim, step, log)
                break
            epoch, within = divmod(step * opts.grad_accum, max(1, len(data.train)))
            indices = order(len(data.train), epoch, opts.seed)[within : within + opts.grad_accum]
            for group in optim.param_groups:
                group["lr"] = lr_at(step, total, opts)
            optim.zero_grad(set_to_none=True)
            rows = [data.train[i] for i in indices]
            if opts.batch_rows:
                losses = model.backward_batch(rows)
            else:
                losses = model.backward_rows(indices, rows, opts.share_prefix)
            tokens += sum(len(row.ids) for row in rows)
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
                save_state(output / STATE, model, optim, step, log)
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

    from export.train.checkpoints import save_checkpoint

    optim = torch.optim.AdamW(model.parameters(), lr=opts.lr)
    step, log = load_state(output / STATE, model, optim)
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


def _jsonable(opts: Options) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()} | {
        "traces": [str(p) for p in opts.traces]
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.train.fast_sft",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="base checkpoint dir, hub id or .gguf")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--traces", type=Path, nargs="*", default=[], help="distilled JSONL")
    parser.add_argument("--prompts", type=Path, help="labelled prompts (the split's train part)")
    parser.add_argument(
        "--split-lines", type=Path, help="validation line numbers (export.data.splits)"
    )
    parser.add_argument("--no-label-from-traces", dest="label_from_traces", action="store_false")
    parser.add_argument(
        "--no-prompt-labels",
        dest="prompt_labels",
        action="store_false",
        help="read --prompts for its validation split only (the held-out guard and the fast "
        "check), not as label-only rows: a short extra phase on traces alone",
    )
    parser.add_argument(
        "--balance-traces",
        action="store_true",
        help="repeat prompt-only traces of the rarer request label until both labels have as "
        "many (counted as balance_repeats)",
    )
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
        ("time-limit", float),
        ("seed", int),
        ("threads", int),
    ):
        parser.add_argument(
            f"--{name}", type=kind, default=getattr(Options, name.replace("-", "_"))
        )
    add_replay_arguments(
        parser,
        "rows of (prompt, response) pairs drawn from --replay (seeded by --seed) and added "
        "to --traces, so a stage trained on prompt-only traces keeps the response tasks",
    )
    parser.add_argument("--no-cache-lower", dest="cache_lower", action="store_false")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false")
    parser.add_argument("--full-head", dest="head_at_targets", action="store_false")
    parser.add_argument(
        "--no-share-prefix",
        dest="share_prefix",
        action="store_false",
        help="run every row whole (the instruction prefix once per row, not once per step)",
    )
    parser.add_argument(
        "--batch-rows",
        action="store_true",
        help="one right-padded forward and backward per step instead of one per row: the same "
        "gradient, faster on a GPU (kernel launches), slower on two cores (padding)",
    )
    parser.add_argument(
        "--attention",
        choices=("compiled", "eager", "sdpa"),
        default=Options.attention,
        help="compiled: eager's arithmetic through torch.compile (export.train.attention); "
        "eager: matmuls and a softmax; sdpa: torch's fused kernel",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default="cpu",
        help="auto: cuda when torch sees a GPU, else cpu",
    )
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--snapshot", type=Path, help="merge the saved state into DIR and stop")
    parser.add_argument("--cache-dir", type=Path, help="where the lower-layer cache persists")
    parser.add_argument("--publish-state", type=Path, help="copy the state (fp16) to DIR and stop")
    parser.add_argument("--resume-from", type=Path, help="a published state to continue from")
    return parser


INTERRUPTED = "interrupted: the last saved state is kept; rerun with --resume to continue"


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), _run, argv, interrupted=INTERRUPTED)


def _run(args: argparse.Namespace) -> int:
    check_replay(args)
    train(Options(**vars(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
