"""HS-DPO's weighted DPO: TRL's DPOTrainer with a weight per pair, and the pairs' encoding.

Importing this module needs no torch/TRL; the trainer class is built on first use. The loss is
described in export.train.hsdpo's module docstring (step 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export import TrainError
from export.train.base import Base, load_model, load_processing_class
from export.train.mining import Pair
from export.train.setup import lora_config, seed_everything, trainer_arguments

if TYPE_CHECKING:
    from export.train.hsdpo_config import HSDPOConfig


def _weighted_trainer_class() -> type:
    """WeightedDPOTrainer, built on first use so importing this module needs no torch/TRL."""
    import torch
    import torch.nn.functional as F
    from trl import DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    class WeightedPreferenceCollator(DataCollatorForPreference):
        """TRL's preference collator plus each pair's weight (``weight``, float32)."""

        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            batch = super().torch_call(examples)
            batch["weight"] = torch.tensor(
                [float(e.get("weight", 1.0)) for e in examples], dtype=torch.float32
            )
            return batch

    class WeightedDPOTrainer(DPOTrainer):
        """DPOTrainer whose sigmoid and SFT terms weigh each pair by its ``weight`` column.

        Rows arrive tokenized (prompt_ids, chosen_ids, rejected_ids, weight): TRL's own
        preparation would re-tokenize prompt + completion as one string. Supports what HS-DPO
        uses: loss_type sigmoid and/or sft, reverse-KL, no ld_alpha / WPO weighting.
        """

        SUPPORTED = {"sigmoid", "sft"}

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            unsupported = set(self.loss_types) - self.SUPPORTED
            if (
                unsupported
                or self.f_divergence_type != "reverse_kl"
                or self.ld_alpha is not None
                or self.use_weighting
                or self.aux_loss_enabled
            ):
                raise TrainError(
                    "WeightedDPOTrainer supports loss_type sigmoid/sft with reverse_kl only",
                    hint=f"drop {sorted(unsupported) or 'ld_alpha/use_weighting'}",
                )
            self.data_collator = WeightedPreferenceCollator(
                pad_token_id=self._tokenizer.pad_token_id,
                max_length=self.args.max_length,
                pad_to_multiple_of=self.args.pad_to_multiple_of,
            )

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):  # noqa: ANN001, ANN202
            return dataset  # already tokenized by the runtime's rule (see the class docstring)

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            if "weight" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "weight"]

        def _compute_loss(self, model, inputs, return_outputs):  # noqa: ANN001, ANN202
            inputs = dict(inputs)
            weight = inputs.pop("weight", None)
            mask = inputs["completion_mask"]
            shift_mask = mask[..., 1:]
            labels = inputs["input_ids"].masked_fill(mask == 0, -100)
            forward = {
                "input_ids": inputs["input_ids"],
                "attention_mask": inputs["attention_mask"],
                "use_cache": False,
            }
            outputs = model(**forward, labels=labels, fused_lm_head=True)
            per_token = outputs.log_probs[:, -shift_mask.size(1) :]
            chosen_logps, rejected_logps = per_token.sum(dim=1).chunk(2, dim=0)
            if "ref_chosen_logps" in inputs:
                ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
            else:
                reference = self.ref_model if self.ref_model is not None else self.model
                ref_chosen, ref_rejected = self.compute_ref_log_probs(reference, inputs)
            if weight is None:
                weight = torch.ones_like(chosen_logps)
            weight = weight.to(device=chosen_logps.device, dtype=chosen_logps.dtype)
            chosen_ratio = chosen_logps - ref_chosen
            rejected_ratio = rejected_logps - ref_rejected
            terms = {
                "sigmoid": (
                    weight * -F.logsigmoid(self.beta * (chosen_ratio - rejected_ratio))
                ).mean(),
                "sft": self._weighted_sft(per_token, shift_mask, weight),
            }
            loss = sum(
                terms[t] * w for t, w in zip(self.loss_types, self.loss_weights, strict=True)
            )
            self._record(
                inputs, terms, chosen_ratio, rejected_ratio, chosen_logps, rejected_logps, weight
            )
            return (loss, None) if return_outputs else loss

        @staticmethod
        def _weighted_sft(per_token, shift_mask, weight):  # noqa: ANN001, ANN205
            """TRL's SFT term (mean NLL over the batch's chosen tokens), each pair times w_i."""
            chosen_mask = shift_mask.chunk(2, dim=0)[0].to(per_token.dtype)
            chosen_tokens = per_token.chunk(2, dim=0)[0]
            per_pair = -(chosen_tokens * chosen_mask).sum(dim=1)
            return (weight * per_pair).sum() / chosen_mask.sum().clamp(min=1)

        def _record(
            self, inputs, terms, chosen_ratio, rejected_ratio, chosen_logps, rejected_logps, weight
        ):  # noqa: ANN001, ANN202
            mode = "train" if self.model.training else "eval"
            gather = self.accelerator.gather_for_metrics
            metrics = self._metrics[mode]
            chosen_rewards = self.beta * chosen_ratio.detach()
            rejected_rewards = self.beta * rejected_ratio.detach()
            margins = gather(chosen_rewards - rejected_rewards)
            metrics["rewards/chosen"].append(gather(chosen_rewards).mean().item())
            metrics["rewards/rejected"].append(gather(rejected_rewards).mean().item())
            metrics["rewards/margins"].append(margins.mean().item())
            metrics["rewards/accuracies"].append((margins > 0).float().mean().item())
            metrics["logps/chosen"].append(gather(chosen_logps.detach()).mean().item())
            metrics["logps/rejected"].append(gather(rejected_logps.detach()).mean().item())
            metrics["weight"].append(gather(weight).mean().item())
            for name, value in terms.items():
                metrics[f"loss/{name}"].append(value.detach().item())
            if mode == "train":
                tokens = gather(inputs["attention_mask"].sum()).sum().item()
                self._total_train_tokens += tokens // self._tp_size
            metrics["num_tokens"] = [self._total_train_tokens]

    return WeightedDPOTrainer


_TRAINER: type | None = None


def weighted_dpo_trainer() -> type:
    """The WeightedDPOTrainer class (a DPOTrainer subclass)."""
    global _TRAINER
    if _TRAINER is None:
        _TRAINER = _weighted_trainer_class()
    return _TRAINER


@dataclass
class EncodedPairs:
    rows: list[dict[str, Any]]
    dropped: int
    scale: float  # applied to the kept pairs' weights so they average 1 again


def encode_pair(base: Base, pair: Pair) -> dict[str, Any]:
    """prompt_ids as guardcli encodes the input; each completion separately, + EOS."""
    return {
        "prompt_ids": base.prompt_ids(pair.prompt),
        "chosen_ids": base.completion_ids(pair.chosen),
        "rejected_ids": base.completion_ids(pair.rejected),
        "weight": float(pair.weight),
    }


def encode_pairs(base: Base, pairs: Sequence[Pair], cutoff: int) -> EncodedPairs:
    kept, dropped = [], 0
    for pair in pairs:
        row = encode_pair(base, pair)
        longest = len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"]))
        if longest > cutoff:
            dropped += 1
            continue
        kept.append(row)
    total = sum(r["weight"] for r in kept)
    scale = len(kept) / total if total > 0 else 1.0
    for row in kept:
        row["weight"] *= scale
    return EncodedPairs(kept, dropped, scale)


def build_trainer(
    cfg: HSDPOConfig,
    base: Base,
    rows: list[dict[str, Any]],
    output: Path,
    device: str,
    callbacks: Sequence[Any] = (),
) -> Any:
    """A WeightedDPOTrainer on ``rows``; the reference is a second copy of ``base`` (or, with
    LoRA, the base itself with the adapter disabled)."""
    from datasets import Dataset
    from trl import DPOConfig

    seed_everything(cfg.seed)
    args = DPOConfig(
        **trainer_arguments(cfg, output, device),
        beta=cfg.beta,
        loss_type=["sigmoid", "sft"],
        loss_weights=[1.0, cfg.sft_weight],
    )
    peft = lora_config(cfg)
    return weighted_dpo_trainer()(
        model=load_model(base.checkpoint),
        ref_model=None if peft is not None else load_model(base.checkpoint),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=load_processing_class(base.checkpoint),
        peft_config=peft,
        callbacks=list(callbacks),
    )
