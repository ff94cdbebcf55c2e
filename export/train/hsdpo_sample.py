"""HS-DPO step 1, ``sample``: k outputs per training input from the R-SFT model (and the
diversity models and traces), appended chunk by chunk to ``DIR/samples.jsonl`` so a killed
run continues where it stopped; each chunk seeded from ``--seed`` and its first input.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from export.train.hsdpo_config import HSDPOConfig
from export.train.mining import SampleRow, input_id
from export.train.runlog import say
from guardcli.core.prompt import build_input
from guardcli.errors import UsageError
from guardcli.eval.labelled import LabelledSample, implied


def labelled_inputs(paths: Sequence[Path], held: frozenset[str] = frozenset()) -> list[SampleRow]:
    """Training inputs with gold labels (read by guardcli.eval.labelled), deduplicated by text.

    ``held``: prompt keys of the validation split (export.data.splits): a prompt there is never
    sampled, so hard samples cannot carry the validation set into DPO; they are counted.
    """
    from export.data.splits import prompt_key
    from guardcli.core.records import Skip
    from guardcli.eval.labelled import load_labelled

    rows: dict[str, SampleRow] = {}
    skipped = held_out = 0
    for path in paths:
        for found in load_labelled(path):
            if isinstance(found, Skip):
                skipped += 1
                say(f"skipped {found.source}: {found.reason}")
                continue
            if held and prompt_key(found.sample.prompt) in held:
                held_out += 1
                continue
            row = _row_of(found)
            rows.setdefault(row.input_id, row)
    if skipped:
        say(f"{skipped} record(s) without usable gold labels skipped")
    if held:
        say(f"{held_out} record(s) of the validation split (--holdout-split) left out")
    return list(rows.values())


def _row_of(item: LabelledSample) -> SampleRow:
    item = implied(item)
    text = build_input(item.sample.prompt, item.sample.response)
    return SampleRow(input_id(text), text, item.gold)


def extra_traces(
    paths: Sequence[Path], held: frozenset[str] = frozenset()
) -> dict[str, tuple[SampleRow, list[dict[str, str]]]]:
    """input_id -> (the input with the file's gold, its traces) from {prompt, label, predict};
    prompts of ``held`` (the validation split) are left out, as in labelled_inputs."""
    from export.data.splits import prompt_key
    from guardcli.core.records import Skip
    from guardcli.eval.labelled import load_predictions

    found: dict[str, tuple[SampleRow, list[dict[str, str]]]] = {}
    for path in paths:
        for item in load_predictions(path):
            if isinstance(item, Skip):
                say(f"skipped {item.source}: {item.reason}")
                continue
            if held and prompt_key(item.item.sample.prompt) in held:
                continue
            row = _row_of(item.item)
            found.setdefault(row.input_id, (row, []))[1].append(
                {"source": f"trace:{Path(path).name}", "text": item.output}
            )
    return found


def sample(cfg: HSDPOConfig) -> Path:
    """Step 1: write samples.jsonl (continuing a partial file); skipped when complete."""
    path = cfg.samples_path
    if not cfg.data:
        raise UsageError("sample needs --data (the R-SFT training files)")
    from export.distill.inputs import holdout_keys
    from guardcli.eval.judge import pick

    held = holdout_keys(cfg.holdout_split)
    rows = labelled_inputs(cfg.data, held)
    traces = extra_traces(cfg.extra_traces, held)
    known = {r.input_id for r in rows}
    rows += [row for key, (row, _) in traces.items() if key not in known]  # labelled by the file
    if cfg.focus is not None:
        rows = _focused(rows, cfg)
    # --limit: a seeded random subset (in file order) of every input, the traces' own too;
    # training files are grouped by benchmark, so the first N would all come from one source.
    rows = pick(rows, cfg.limit, cfg.seed)
    done = _finished_ids(path)
    todo = [r for r in rows if r.input_id not in done]
    if not todo:
        say(f"sample: {path} is complete ({len(done)} inputs), skipped")
        return path
    if not cfg.model and cfg.k > 0:
        raise UsageError("sample needs --model (the R-SFT checkpoint) or --k 0")
    models = [cfg.sample_model or cfg.model, *cfg.extra_models] if cfg.k > 0 else []
    say(f"sample: {len(todo)} inputs x {cfg.k} outputs from {len(models)} model(s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        for start in range(0, len(todo), cfg.chunk):
            chunk = todo[start : start + cfg.chunk]
            _sample_chunk(chunk, models, cfg)
            for row in chunk:
                row.outputs.extend(traces.get(row.input_id, (row, []))[1])
                out.write(row.to_json() + "\n")
            out.flush()
            say(f"sample: {len(done) + start + len(chunk)}/{len(done) + len(todo)} inputs")
    return path


def _focused(rows: list[SampleRow], cfg: HSDPOConfig) -> list[SampleRow]:
    """--focus N: the N inputs nearest the cut, chosen once and kept in DIR/focus.json."""
    from export.train.hsdpo_focus import fast_scores, nearest_cut

    path = cfg.focus_path
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("n") == cfg.focus:
            ids = set(saved["ids"])
            return [r for r in rows if r.input_id in ids]
    model = cfg.focus_model or cfg.sample_model
    if not model:
        raise UsageError("--focus needs a bundle to score with: --focus-model or --sample-model")
    scores, cut = fast_scores(model, rows)
    chosen = nearest_cut(rows, scores, cut, cfg.focus)
    say(f"focus: {len(chosen)} of {len(rows)} inputs nearest the request cut {cut:.3f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"n": cfg.focus, "model": model, "cut": cut, "ids": [r.input_id for r in chosen]}
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return chosen


def _sample_chunk(chunk: list[SampleRow], models: Sequence[str], cfg: HSDPOConfig) -> None:
    if not models:
        return
    from export.sampling.generate import SamplingConfig, sample_outputs

    sampling = SamplingConfig(
        k=cfg.k,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        seed=chunk_seed(cfg.seed, chunk[0].input_id),
        batch_size=cfg.sample_batch_size,
    )
    for model in models:
        outputs = sample_outputs(model, [r.prompt for r in chunk], sampling, device=cfg.device)
        for row, texts in zip(chunk, outputs, strict=True):
            row.outputs.extend({"source": f"model:{model}", "text": t} for t in texts)


def chunk_seed(seed: int, first_input_id: str) -> int:
    """A sampling seed per chunk: chunks never replay one random stream, and a chunk sampled
    again (after a kill) draws the same outputs as long as it starts at the same input."""
    digest = hashlib.sha256(f"{seed}:{first_input_id}".encode()).hexdigest()
    return int(digest[:7], 16)


def _finished_ids(path: Path) -> set[str]:
    """Ids already in samples.jsonl; a last line cut off by a kill is dropped from the file."""
    if not path.is_file():
        return set()
    ids: set[str] = set()
    good = 0
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break  # the write of this line never finished
            try:
                ids.add(json.loads(line)["input_id"])
            except (ValueError, KeyError, TypeError):
                break
            good += len(line)
    if good < path.stat().st_size:
        with path.open("r+b") as handle:
            handle.truncate(good)
    return ids
