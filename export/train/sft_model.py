"""The model export.train.fast_sft trains: a causal LM split into frozen lower layers and
LoRA-adapted upper ones, with the frozen part's output cached per row (it cannot change during
training).

It runs the transformers Llama layers itself (embeddings, rotary tables, each decoder layer,
the final norm) so that the frozen layers can be skipped for a cached row and the LM head can
be applied at the loss positions only; the arithmetic is the model's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from export.train.prefix import Recorder, SharedPrefix, cache_keyword, shared_length
from export.train.sft_data import Sequence_

# every linear layer of a Llama block (peft's "all-linear"; a list, so layers can be chosen)
LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraLM:
    """A causal LM split at ``split``: frozen layers below, LoRA-adapted layers above."""

    def __init__(self, checkpoint: Path, opts: Any) -> None:  # fast_sft.Options
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        attention = opts.attention
        if attention == "compiled":
            from export.train.attention import register

            attention = register()
        model = AutoModelForCausalLM.from_pretrained(
            checkpoint, dtype=torch.float32, attn_implementation=attention
        )
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
        self._cache_arg = cache_keyword(self.inner.layers[0])
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

    def _run(
        self,
        hidden: Any,
        start: int,
        stop: int,
        position_ids: Any,
        rope: Any,
        cache: Any = None,
        past: int = 0,
    ) -> Any:
        extra = {self._cache_arg: cache} if cache is not None else {}
        mask = self._mask(hidden.shape[1], past)
        for layer in self.inner.layers[start:stop]:
            hidden = layer(
                hidden,
                attention_mask=mask,
                position_ids=position_ids,
                position_embeddings=rope,
                **extra,
            )
        return hidden

    def _mask(self, rows: int, past: int) -> Any:
        """Which keys each of ``rows`` new positions may attend to: the ``past`` ones before
        them, then their own causally. None where SDPA's own causal flag says the same (no
        past: with one, its triangle would be aligned top-left); eager attention adds it."""
        import torch

        if self.opts.attention == "sdpa" and not past:
            return None
        shape = (rows, past + rows)
        allowed = torch.ones(shape, dtype=torch.bool, device=self.device).tril(past)[None, None]
        if self.opts.attention == "sdpa":
            return allowed
        blocked = torch.zeros(allowed.shape, device=self.device)
        return blocked.masked_fill(~allowed, float("-inf"))

    def open_prefix(self, rows: list[Sequence_]) -> SharedPrefix | None:
        """The tokens a step's rows share, run once (``export.train.prefix``); None when they
        share none or the lower layers are frozen (their cache already holds whole rows)."""
        import torch

        length = shared_length(rows)
        if self.split or length < 1:
            return None
        ids = torch.tensor([rows[0].ids[:length]], device=self.device)
        position_ids, rope = self._positions(length)
        record = Recorder()
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.opts.bf16):
            hidden = self.inner.embed_tokens(ids)
            self._run(hidden, 0, len(self.inner.layers), position_ids, rope, cache=record)
        return SharedPrefix.of(record, length)

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

    def _target_logits(
        self, index: int, row: Sequence_, prefix: SharedPrefix | None = None
    ) -> tuple[Any, Any, Any]:
        """(ids, targets, logits at each target): the forward pass row_loss and target_logps
        share, the frozen part read from the cache and the head run at the targets only; with
        ``prefix``, only the row's own tokens after it."""
        import torch

        ids = torch.tensor([row.ids], device=self.device)
        position_ids, rope = self._positions(len(row.ids))
        skip = prefix.length if prefix else 0
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.opts.bf16):
            if prefix:
                position_ids, rope = position_ids[:, skip:], tuple(t[:, skip:] for t in rope)
                hidden = self.inner.embed_tokens(ids[:, skip:])
                hidden = self._run(
                    hidden,
                    0,
                    len(self.inner.layers),
                    position_ids,
                    rope,
                    cache=prefix.cache(),
                    past=skip,
                )
            else:
                hidden = self.lower(index, ids, position_ids, rope)
                hidden = self._run(hidden, self.split, len(self.inner.layers), position_ids, rope)
            hidden = self.inner.norm(hidden)[0]
            targets = torch.tensor(row.targets, device=self.device)
            at = targets - 1 - skip  # the hidden state that predicts each target
            logits = self.head(hidden[at]) if self.opts.head_at_targets else self.head(hidden)[at]
        return ids, targets, logits

    def row_loss(self, index: int, row: Sequence_, prefix: SharedPrefix | None = None) -> Any:
        import torch.nn.functional as F

        ids, targets, logits = self._target_logits(index, row, prefix)
        return F.cross_entropy(logits.float(), ids[0, targets])

    def backward_rows(self, indices: list[int], rows: list[Sequence_], share: bool) -> list[float]:
        """One optimizer step's gradient: each row's mean-target loss, over ``len(rows)``,
        back into the adapter (the shared prefix's pass once, when ``share``); returns the
        rows' losses. The caller zeroes gradients and steps the optimizer."""
        prefix = self.open_prefix(rows) if share else None
        losses = []
        for index, row in zip(indices, rows, strict=True):
            loss = self.row_loss(index, row, prefix) / len(rows)
            loss.backward()
            losses.append(float(loss.detach()) * len(rows))
        if prefix:
            prefix.backward()
        return losses

    def backward_batch(self, rows: list[Sequence_]) -> list[float]:
        """backward_rows' gradient from one right-padded pass over all the step's rows. On a GPU
        a 135M model's per-row step is bound by kernel launches, so one large pass is the fast
        path; on two cores the per-row loop wins (no padding, a shared prefix). Every layer
        runs (the lower-layer cache holds single rows), and layers without LoRA build no graph."""
        import torch
        import torch.nn.functional as F

        lengths = [len(row.ids) for row in rows]
        ids = torch.zeros(len(rows), max(lengths), dtype=torch.long, device=self.device)
        for number, row in enumerate(rows):
            ids[number, : len(row.ids)] = torch.tensor(row.ids, device=self.device)
        owner = [n for n, row in enumerate(rows) for _ in row.targets]
        targets = [t for row in rows for t in row.targets]
        which = torch.tensor(owner, device=self.device)
        at = torch.tensor(targets, device=self.device)
        # each row's loss is the mean over its own targets, the step's the mean over rows
        weights = torch.tensor(
            [1 / (len(rows[n].targets) * len(rows)) for n in owner], device=self.device
        )
        position_ids, rope = self._positions(max(lengths))
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.opts.bf16):
            hidden = self.inner.embed_tokens(ids)
            # the plain causal mask: with the pads on the right, no real position reaches them
            hidden = self._run(hidden, 0, len(self.inner.layers), position_ids, rope)
            logits = self.head(self.inner.norm(hidden)[which, at - 1])
        per_target = F.cross_entropy(logits.float(), ids[which, at], reduction="none")
        (per_target * weights).sum().backward()
        per_row = torch.zeros(len(rows), device=self.device).index_add_(
            0, which, per_target.detach() * weights * len(rows)
        )
        return [float(v) for v in per_row]

    def target_logps(self, index: int, row: Sequence_) -> Any:
        """log P(ids[t] | ids[:t]) at each of the row's targets, in float32: the terms of a
        DPO log-ratio."""
        import torch

        ids, targets, logits = self._target_logits(index, row)
        return torch.log_softmax(logits.float(), dim=-1).gather(1, ids[0, targets, None])[:, 0]

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
