"""HS-DPO training (export.train.hsdpo, export.train.weighted_dpo): the weighted loss against
TRL's own, and training end to end on a tiny model (mining and files: tests/test_hsdpo.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from export.train.base import open_base
from export.train.hsdpo import main, train
from export.train.hsdpo_config import HSDPOConfig
from export.train.hsdpo_sample import sample
from export.train.layout import TRAIN_LOG
from export.train.mining import Pair, input_id, mine_pairs, read_samples
from export.train.weighted_dpo import build_trainer, encode_pair, encode_pairs
from testkit.pairs import FIXTURE_PAIRS
from tests.test_hsdpo import flip, write_traces
from tests.test_rsft import make_base, write_train_jsonl

# ------------------------------------------------------------------------------ the weighted loss


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return make_base(tmp_path_factory.mktemp("hsdpo-base") / "base")


def fixture_pairs(weights=None) -> list[Pair]:  # noqa: ANN001
    weights = weights or [1.0] * len(FIXTURE_PAIRS)
    return [
        Pair(p.model_input(), p.trace, flip(p.trace), w, input_id(p.model_input()), 1, 1)
        for p, w in zip(FIXTURE_PAIRS, weights, strict=True)
    ]


def dpo_config(base: Path, output: Path, **overrides) -> HSDPOConfig:  # noqa: ANN003
    values = dict(
        model=str(base),
        output=output,
        device="cpu",
        beta=0.1,
        lr=2e-3,
        batch_size=2,
        max_steps=8,
        save_steps=1000,
        seed=0,
    )
    values.update(overrides)
    return HSDPOConfig(**values)


@pytest.fixture(scope="module")
def loss_setup(base, tmp_path_factory):
    """A WeightedDPOTrainer whose policy differs a little from its reference."""
    import torch

    tmp = tmp_path_factory.mktemp("loss")
    opened = open_base(str(base), tmp)
    rows = [encode_pair(opened, p) for p in fixture_pairs()]
    trainer = build_trainer(dpo_config(base, tmp / "out"), opened, rows, tmp / "out", "cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for param in trainer.model.parameters():
            param.add_(0.02 * torch.randn_like(param))
    trainer.model.train()
    return trainer, rows


def _loss(trainer, batch, weights):  # noqa: ANN001, ANN202
    import torch

    return trainer._compute_loss(trainer.model, {**batch, "weight": torch.tensor(weights)}, False)


@pytest.mark.slow
def test_unit_weights_give_trls_own_loss(loss_setup):
    import torch
    from trl import DPOTrainer

    trainer, rows = loss_setup
    batch = trainer.data_collator(rows[:2])
    assert batch["weight"].tolist() == [1.0, 1.0]
    stock = {k: v for k, v in batch.items() if k != "weight"}
    with torch.no_grad():
        ours = _loss(trainer, batch, [1.0, 1.0])
        theirs = DPOTrainer._compute_loss(trainer, trainer.model, stock, False)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    assert trainer.loss_types == ["sigmoid", "sft"] and trainer.loss_weights == [1.0, 2.0]


@pytest.mark.slow
def test_a_pairs_loss_scales_with_its_weight(loss_setup):
    import torch

    trainer, rows = loss_setup
    batch = trainer.data_collator(rows[:2])
    with torch.no_grad():
        zero, one, two = (_loss(trainer, batch, [w, 1.0]).item() for w in (0.0, 1.0, 2.0))
    contribution = one - zero
    assert contribution > 0
    assert two - zero == pytest.approx(2 * contribution, rel=1e-4)  # doubling doubles it


@pytest.mark.slow
def test_a_pair_with_weight_zero_gives_no_gradient(loss_setup):
    trainer, rows = loss_setup
    single = trainer.data_collator(rows[2:3])
    for weight, expect_grad in ((0.0, False), (1.0, True)):
        trainer.model.zero_grad(set_to_none=True)
        loss = _loss(trainer, single, [weight])
        loss.backward()
        grads = [p.grad for p in trainer.model.parameters() if p.requires_grad]
        moved = any(g is not None and g.abs().sum().item() > 0 for g in grads)
        assert moved is expect_grad
        if not expect_grad:
            assert loss.item() == 0.0
    trainer.model.zero_grad(set_to_none=True)


# ------------------------------------------------------------------------------ training


def completion_logp(model, prompt: list[int], completion: list[int]) -> float:  # noqa: ANN001
    import torch

    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    return logits.log_softmax(-1).gather(-1, torch.tensor(completion)[:, None]).sum().item()


@pytest.mark.slow
def test_training_raises_the_margin_and_writes_a_checkpoint(base, tmp_path):
    from transformers import AutoModelForCausalLM

    from tests.test_rsft import weights as load_weights

    cfg = dpo_config(base, tmp_path / "run", beta=1.0, lr=1e-3, max_steps=8)
    pairs_path = tmp_path / "run" / "pairs.jsonl"
    pairs_path.parent.mkdir(parents=True)
    pairs = fixture_pairs([0.5, 1.5, 1.0, 1.0, 1.0, 1.0])
    pairs_path.write_text("".join(json.dumps(p.__dict__) + "\n" for p in pairs))
    out = train(cfg)

    log = json.loads((out / TRAIN_LOG).read_text())
    assert log["stage"] == "hsdpo" and log["global_step"] == 8
    assert log["pairs_used"] == 6 and log["pairs_dropped_over_cutoff"] == 0
    first = log["loss_curve"][0]
    assert first["rewards/margins"] == 0.0  # the policy starts as its reference
    assert {"loss/sigmoid", "loss/sft", "weight", "rewards/accuracies"} <= set(first)

    opened = open_base(str(base), tmp_path / "work")
    policy = AutoModelForCausalLM.from_pretrained(out).eval()
    reference = AutoModelForCausalLM.from_pretrained(base).eval()
    margins = []
    for pair in pairs:
        row = encode_pair(opened, pair)
        p = row["prompt_ids"]
        chosen = completion_logp(policy, p, row["chosen_ids"]) - completion_logp(
            reference, p, row["chosen_ids"]
        )
        rejected = completion_logp(policy, p, row["rejected_ids"]) - completion_logp(
            reference, p, row["rejected_ids"]
        )
        margins.append(chosen - rejected)
    assert sum(margins) / len(margins) > 0.3  # from exactly 0 at the start
    before, after = load_weights(base), load_weights(out)
    assert any(not before[k].equal(after[k]) for k in after)

    assert train(cfg) == out  # done: skipped


@pytest.mark.slow
def test_lora_dpo_uses_the_base_as_reference_and_merges(base, tmp_path):
    from tests.test_rsft import weights as load_weights

    cfg = dpo_config(
        base,
        tmp_path / "lora",
        lora=True,
        lora_r=4,
        target_modules="q_proj,v_proj",
        lr=1e-2,
        beta=1.0,
        max_steps=3,
    )
    cfg.pairs_path.parent.mkdir(parents=True)
    cfg.pairs_path.write_text("".join(json.dumps(p.__dict__) + "\n" for p in fixture_pairs()))
    out = train(cfg)
    log = json.loads((out / TRAIN_LOG).read_text())
    assert log["loss_curve"][0]["rewards/margins"] == 0.0  # adapter off == the reference
    before, after = load_weights(base), load_weights(out)
    assert set(after) == set(before)  # merged: no adapter tensors
    key = "model.layers.1.self_attn.v_proj.weight"
    assert not before[key].equal(after[key])
    assert before["model.embed_tokens.weight"].equal(after["model.embed_tokens.weight"])


@pytest.mark.slow
def test_cutoff_drops_pairs_and_rescales_weights(base, tmp_path):
    opened = open_base(str(base), tmp_path)
    pairs = fixture_pairs([0.5, 1.5, 1.0, 1.0, 1.0, 1.0])
    sizes = [
        len(r["prompt_ids"]) + max(len(r["chosen_ids"]), len(r["rejected_ids"]))
        for r in (encode_pair(opened, p) for p in pairs)
    ]
    cutoff = sorted(sizes)[-2]
    encoded = encode_pairs(opened, pairs, cutoff)
    assert encoded.dropped == sum(s > cutoff for s in sizes) >= 1
    kept = [r["weight"] for r in encoded.rows]
    assert sum(kept) / len(kept) == pytest.approx(1.0)


@pytest.mark.slow
def test_all_steps_from_the_cli_then_convert(base, tmp_path):
    """rsft -> hsdpo all (traces only, k=0) -> export.convert fp32 with validation."""
    from export.convert.command import main as convert
    from export.train.rsft import RSFTConfig
    from export.train.rsft import train as rsft
    from guardcli.bundles.manifest import read_manifest
    from guardcli.core.tokenizer import TextCodec

    data = write_train_jsonl(tmp_path / "train.jsonl")
    rsft_dir = tmp_path / "rsft"
    rsft(
        RSFTConfig(
            model=str(base),
            data=[data],
            output=rsft_dir,
            lr=3e-3,
            max_steps=4,
            batch_size=3,
            device="cpu",
        )
    )
    right = write_traces(tmp_path / "right.jsonl", FIXTURE_PAIRS, wrong=False)
    wrong = write_traces(tmp_path / "wrong.jsonl", FIXTURE_PAIRS, wrong=True)
    work = tmp_path / "hsdpo"
    args = [
        "all",
        "--output",
        str(work),
        "--model",
        str(rsft_dir),
        "--data",
        str(data),
        "--k",
        "0",
        "--extra-traces",
        str(right),
        str(wrong),
        "--max-steps",
        "3",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--lr",
        "1e-3",
    ]
    assert main(args) == 0
    assert (work / "samples.jsonl").is_file() and (work / "pairs.jsonl").is_file()
    log = json.loads((work / "model" / TRAIN_LOG).read_text())
    assert log["pairs_used"] == len(FIXTURE_PAIRS) and log["global_step"] == 3
    assert main(args) == 0  # every step done: all skipped

    bundle = tmp_path / "bundle"
    code = convert(
        [
            "--model",
            str(work / "model"),
            "--output",
            str(bundle),
            "--precision",
            "fp32",
            "--validate",
            "1",
            "--max-new-tokens",
            "8",
        ]
    )
    assert code == 0
    manifest = read_manifest(bundle)
    assert manifest.validation["passed"] is True
    assert manifest.add_bos is True
    codec = TextCodec.for_bundle(bundle, manifest)
    opened = open_base(str(work / "model"), tmp_path / "open")
    text = FIXTURE_PAIRS[3].model_input()
    assert codec.encode(text) == encode_pair(opened, fixture_pairs()[3])["prompt_ids"]


@pytest.mark.slow
def test_sampling_through_export_generate(base, tmp_path):
    """Integration with export.sampling: k sampled outputs per input join the traces."""
    pytest.importorskip("export.sampling")
    data = write_train_jsonl(tmp_path / "train.jsonl", FIXTURE_PAIRS[:2])
    right = write_traces(tmp_path / "right.jsonl", FIXTURE_PAIRS[:2], wrong=False)
    cfg = HSDPOConfig(
        output=tmp_path / "s",
        model=str(base),
        data=[data],
        extra_traces=[right],
        k=2,
        max_new_tokens=8,
        sample_batch_size=2,
        seed=0,
    )
    rows = read_samples(sample(cfg))
    assert len(rows) == 2
    for row in rows:
        sources = [o["source"] for o in row.outputs]
        assert sources.count(f"model:{base}") == 2 and sources[-1] == "trace:right.jsonl"
    # the tiny random model never writes an Answers block: every input is hard
    pairs, stats = mine_pairs(rows)
    assert stats.hard == 2 and all(p.n_wrong == 2 and p.n_right == 1 for p in pairs)


# ------------------------------------------------------------------------------ the fast trainer


@pytest.mark.slow
def test_fast_dpo_log_probs_and_first_loss_are_the_models_own(base, tmp_path):
    """LoraLM.target_logps sums to what transformers gives for the completion, and with the
    fresh adapter (policy == reference) a pair's loss is w * (log 2 + sft_weight * NLL/n)."""
    import math

    import torch
    from transformers import AutoModelForCausalLM

    from export.train.fast_dpo import pair_loss, pair_rows, reference_logps
    from export.train.fast_sft import Options
    from export.train.sft_model import LoraLM

    opened = open_base(str(base), tmp_path / "work")
    encoded = [encode_pair(opened, p) for p in fixture_pairs()]
    rows = pair_rows(encoded)
    model = LoraLM(opened.checkpoint, Options(bf16=False, cache_lower=False, lora_r=4))
    plain = AutoModelForCausalLM.from_pretrained(base).eval()
    for row, pair in zip(encoded, rows, strict=True):
        want = completion_logp(plain, row["prompt_ids"], row["chosen_ids"])
        with torch.no_grad():
            got = float(model.target_logps(0, pair.chosen).sum())
        assert got == pytest.approx(want, abs=1e-3)
    reference = reference_logps(model, rows)
    pair, (rc, rr) = rows[0], reference[0]
    with torch.no_grad():
        pc = model.target_logps(0, pair.chosen).sum()
        pr = model.target_logps(1, pair.rejected).sum()
    loss = float(pair_loss((pc, pr), (rc, rr), 1.5, len(pair.chosen.targets), 0.1, 2.0))
    assert loss == pytest.approx(1.5 * (math.log(2) + 2.0 * -rc / len(pair.chosen.targets)), 1e-4)


@pytest.mark.slow
def test_fast_dpo_raises_the_margin_resumes_and_writes_what_export_nano_packages(base, tmp_path):
    from transformers import AutoModelForCausalLM

    from export.train.layout import ADAPTER

    cfg = dpo_config(
        base,
        tmp_path / "fast",
        trainer="fast",
        beta=1.0,
        sft_weight=0.0,
        lr=3e-3,
        max_steps=6,
        grad_accum=6,  # every pair in every step: the pairs pull one answer token both ways
        lora_r=4,
        save_steps=3,
    )
    cfg.pairs_path.parent.mkdir(parents=True)
    pairs = fixture_pairs()
    cfg.pairs_path.write_text("".join(json.dumps(p.__dict__) + "\n" for p in pairs))
    out = train(cfg)
    log = json.loads((out / TRAIN_LOG).read_text())
    steps = log["steps"]
    assert len(steps) == 6 and log["pairs"] == 6
    assert abs(steps[0]["margin"]) < 1e-3  # the fresh adapter is the reference
    assert (out / ADAPTER / "adapter_model.safetensors").is_file()
    opened = open_base(str(base), tmp_path / "work")
    policy = AutoModelForCausalLM.from_pretrained(out).eval()  # the merged checkpoint
    reference = AutoModelForCausalLM.from_pretrained(base).eval()
    margins = []
    for pair in pairs:
        row = encode_pair(opened, pair)
        p = row["prompt_ids"]
        margins.append(
            completion_logp(policy, p, row["chosen_ids"])
            - completion_logp(reference, p, row["chosen_ids"])
            - completion_logp(policy, p, row["rejected_ids"])
            + completion_logp(reference, p, row["rejected_ids"])
        )
    assert sum(margins) / len(margins) > 0.3  # from exactly 0 at the start
    assert train(cfg) == out  # done: skipped

    (out / TRAIN_LOG).unlink()  # a run killed after its last saved state (step 6)
    again = train(replace(cfg, max_steps=8))
    resumed = json.loads((again / TRAIN_LOG).read_text())["steps"]
    assert [s["step"] for s in resumed] == list(range(1, 9))
    assert resumed[:6] == steps
