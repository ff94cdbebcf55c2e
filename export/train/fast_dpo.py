"""HS-DPO's weighted DPO on a CPU, in plain PyTorch: ``hsdpo train --trainer fast``.

The loss is export.train.weighted_dpo's (TRL's sigmoid + SFT terms with one weight per pair)
at batch size 1; what TRL spends and this loop does not:

* the reference's log-probabilities are computed once, before the first step (the adapter
  disabled: a fresh LoRA starts at the reference), instead of a second forward pass per step;
* chosen and rejected are separate rows with no padding, and the 49k-vocabulary head runs at
  the completion's positions only (export.train.sft_model.LoraLM), in bf16 autocast.

Per pair i, weight w_i (mean 1), policy/reference sums of completion log-probs pc, pr, rc, rr,
and n_i chosen tokens::

    loss_i = w_i * -log sigmoid(beta * ((pc_i - rc_i) - (pr_i - rr_i)))
           + sft_weight * w_i * -pc_i / n_i

averaged over the ``--grad-accum`` pairs of a step. The run keeps its state in ``OUTPUT/state``
every ``--save-steps`` steps (export.train.fast_sft's format) and continues from it; at the end
OUTPUT holds the merged checkpoint, ``adapter/`` and ``train_log.json``, as TRL's path does.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.train.fast_sft import Options, lr_at, order
from export.train.fit import report_cutoff
from export.train.layout import TRAIN_LOG
from export.train.runlog import say
from export.train.sft_data import Sequence_
from export.train.sft_state import PROGRESS, STATE, load_state, save_state

if TYPE_CHECKING:
    from export.train.hsdpo_config import HSDPOConfig
    from export.train.mining import Pair


@dataclass(frozen=True)
class PairRows:
    chosen: Sequence_
    rejected: Sequence_
    weight: float


def pair_rows(rows: list[dict[str, Any]]) -> list[PairRows]:
    """export.train.weighted_dpo.encode_pairs rows as two rows each, loss on the completion."""

    def row(prompt: list[int], completion: list[int]) -> Sequence_:
        ids = tuple(prompt) + tuple(completion)
        return Sequence_(ids, tuple(range(len(prompt), len(ids))), "dpo", "")

    return [
        PairRows(
            row(r["prompt_ids"], r["chosen_ids"]),
            row(r["prompt_ids"], r["rejected_ids"]),
            r["weight"],
        )
        for r in rows
    ]


def pair_loss(
    policy: tuple[Any, Any],
    reference: tuple[float, float],
    weight: float,
    chosen_tokens: int,
    beta: float,
    sft_weight: float,
) -> Any:
    """One pair's loss (module docstring) from the summed completion log-probs."""
    import torch.nn.functional as F

    (pc, pr), (rc, rr) = policy, reference
    margin = beta * ((pc - rc) - (pr - rr))
    return weight * -F.logsigmoid(margin) + sft_weight * weight * -pc / chosen_tokens


def train_fast(cfg: HSDPOConfig, pairs: list[Pair]) -> Path:
    """Weighted DPO of ``cfg.model`` on ``pairs`` into ``cfg.model_dir``; resumes its state."""
    import torch

    from export.train.base import open_base
    from export.train.checkpoints import save_checkpoint
    from export.train.weighted_dpo import encode_pairs

    output = cfg.model_dir
    torch.manual_seed(cfg.seed)
    opts = Options(
        lr=cfg.lr,
        warmup=cfg.warmup_ratio,
        lora_layers=0,
        lora_r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        bf16=cfg.bf16 != "no",
        device="cpu" if cfg.device == "auto" else cfg.device,
        cache_lower=False,
    )
    with tempfile.TemporaryDirectory(prefix="guardcli-dpo-") as tmp:
        base = open_base(cfg.model, Path(tmp))
        encoded = encode_pairs(base, pairs, cfg.cutoff)
        report_cutoff("pairs", len(pairs), encoded.dropped, len(encoded.rows), cfg.cutoff)
        rows = pair_rows(encoded.rows)
        from export.train.sft_model import LoraLM

        model = LoraLM(base.checkpoint, opts)
        reference = reference_logps(model, rows)
        params = model.parameters()
        optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        total = cfg.max_steps or max(1, int(len(rows) * cfg.epochs) // cfg.grad_accum)
        step, log = 0, {"steps": [], "pairs": len(rows), "dropped": encoded.dropped}
        if (output / STATE / PROGRESS).is_file():
            step, log = load_state(output / STATE, model, optim)
            say(f"fast DPO: resuming at step {step} of {total}")
        started, tokens = time.perf_counter(), 0
        while step < total:
            epoch, within = divmod(step * cfg.grad_accum, len(rows))
            chosen = order(len(rows), epoch, cfg.seed)[within : within + cfg.grad_accum]
            for group in optim.param_groups:
                group["lr"] = lr_at(step, total, opts)
            optim.zero_grad(set_to_none=True)
            losses, margins = [], []
            for index in chosen:
                pair = rows[index]
                pc = model.target_logps(2 * index, pair.chosen).sum()
                pr = model.target_logps(2 * index + 1, pair.rejected).sum()
                loss = pair_loss(
                    (pc, pr),
                    reference[index],
                    pair.weight,
                    len(pair.chosen.targets),
                    cfg.beta,
                    cfg.sft_weight,
                )
                (loss / len(chosen)).backward()
                losses.append(float(loss.detach()))
                margins.append(
                    float((pc - pr).detach()) - (reference[index][0] - reference[index][1])
                )
                tokens += len(pair.chosen.ids) + len(pair.rejected.ids)
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optim.step()
            step += 1
            elapsed = time.perf_counter() - started
            log["steps"].append(
                {
                    "step": step,
                    "loss": sum(losses) / len(losses),
                    "margin": sum(margins) / len(margins),
                    "tokens_per_s": tokens / elapsed,
                }
            )
            say(
                f"fast DPO: step {step}/{total} loss {log['steps'][-1]['loss']:.4f} "
                f"log-ratio margin {log['steps'][-1]['margin']:.3f} {tokens / elapsed:.0f} tok/s"
            )
            if step % cfg.save_steps == 0 or step == total:
                save_state(output / STATE, model, optim, step, log)
        save_checkpoint(model.peft, base, output, "float32")
        log["reference"] = str(cfg.model)
        (output / TRAIN_LOG).write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    return output


def reference_logps(model: Any, rows: list[PairRows]) -> list[tuple[float, float]]:
    """Each pair's reference sums, once: the model with its adapter disabled."""
    import torch

    found = []
    with torch.no_grad(), model.peft.disable_adapter():
        for index, pair in enumerate(rows):
            found.append(
                (
                    float(model.target_logps(2 * index, pair.chosen).sum()),
                    float(model.target_logps(2 * index + 1, pair.rejected).sum()),
                )
            )
    return found
