"""Side-by-side speed of guard engines on the same weights and the same real inputs.

    python scripts/bench.py --engine guardcli-fp32=nano \\
        --engine guardcli-int8=runs/nano/bundles/hsdpo-int8 \\
        --engine torch-fp32=runs/nano/hsdpo/model \\
        --bench ../shared/data/guardreasoner/benchmark/0_A_beaver_tails.json --limit 16 \\
        --batch-size 1 8

Each ``--engine LABEL=PATH`` runs in its own subprocess, so its peak RSS is its own. PATH is
a guardcli bundle or model name (``PATH@fast`` / ``PATH@cascade`` runs that --mode); for a
``torch-*`` label a Hugging Face checkpoint run with transformers ``generate`` (greedy); for a
``llama*`` label a GGUF file run with llama-cpp-python (greedy, one sequence at a time, so
only its batch-1 row exists; it stops at the Answers block as guardcli does, and reuses the
cached prefix of the previous prompt as guardcli's batch-1 engine does, unless
``--engine-option LABEL:reuse_prefix=false``).

The first engine is the reference for verdict agreement. Per engine and batch
size: samples/s, prefill and decode tokens/s, p50/p95 latency per sample, peak RSS, private
(anonymous) memory at the end, and the
share of samples whose three parsed answers equal the reference's. Above the table: this
machine's measured memory bandwidth and the batch-1 decode ceiling it implies for the fp32
weights (every weight is read once per decoded token). Prints Markdown; ``--json FILE``
also writes the numbers with machine, versions and date (docs/bench/ keeps the recorded runs).
Ratios are the headline: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from guardcli.core.tasks import FIELDS as TASKS

# ---- worker: one engine, every batch size ----------------------------------------------------


def _samples(bench: str, limit: int, seed: int) -> list:
    from guardcli.core.records import Skip
    from guardcli.eval.judge import pick
    from guardcli.eval.labelled import load_labelled

    items = [x for x in load_labelled(bench) if not isinstance(x, Skip)]
    return [x.sample for x in pick(items, limit, seed)]


def _guardcli_runs(
    path: str, samples: list, batches: list[int], max_new: int, tweaks: list[str]
) -> list[dict]:
    from dataclasses import replace

    from guardcli.bundles.resolve import open_guard, resolve_model
    from guardcli.core.guard import GuardOptions

    path, _, mode = path.partition("@")
    fields, session = _tweaks(tweaks)
    reuse_prefix = bool(fields.pop("reuse_prefix", True))
    low_memory = bool(fields.pop("low_memory", False))
    prefill_chunk = fields.pop("prefill_chunk", None)
    pooling = bool(fields.pop("pooling", True))
    # One guard for every batch size, so the process's peak RSS is one loaded model's.
    options = GuardOptions(max_new_tokens=max_new, mode=mode or "reason", **fields)
    guard, _manifest, _ = open_guard(
        resolve_model(path),
        device="cpu",
        options=options,
        session_options=session,
        low_memory=low_memory,
        pooling=pooling,
    )
    guard.engine.reuse_prefix = reuse_prefix
    if prefill_chunk is not None:
        guard.engine.backend.prefill_chunk = int(prefill_chunk)
    work = _time_prefill(guard.engine)
    runs = []
    for batch in batches:
        guard.options = replace(options, batch_size=batch)
        guard.classify_batch(samples[:batch])  # warm-up
        rows = []
        work.update(dict.fromkeys(work, 0.0))
        start = time.perf_counter()
        # Guard.run, as scan runs it: batches grouped by length within the look-ahead.
        for r in guard.run(samples):
            g = r.generation
            rows.append(
                {
                    "prompt_tokens": g.prompt_tokens,
                    "output_tokens": g.output_tokens,
                    "latency_s": g.latency_s,
                    "finish": g.finish,
                    "verdict": [getattr(r.verdict, t).value for t in TASKS],
                }
            )
        run = _summary(batch, rows, time.perf_counter() - start, work["prefill_s"])
        run["cached_share"] = work["reused"] / max(1, sum(r["prompt_tokens"] for r in rows))
        if work["row_steps"]:
            run["padding_share"] = 1 - work["real"] / work["padded"]
            run["finished_row_share"] = 1 - work["live_steps"] / work["row_steps"]
        runs.append(run)
    return runs


def _tweaks(tweaks: list[str]) -> tuple[dict, dict]:
    """``--engine-option`` values: GuardOptions fields (lookahead=1, loops=off), the engine's
    reuse_prefix=false, low_memory=true and onnxruntime-genai session options
    (session.enable_cpu_mem_arena=false)."""
    fields: dict = {}
    session: dict = {}
    for tweak in tweaks:
        key, _, raw = tweak.partition("=")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if key.startswith("session."):
            session[key.removeprefix("session.")] = value
        elif key == "loops" and value == "off":
            fields["loops"] = None
        else:
            fields[key] = value
    return fields, session


def _time_prefill(engine) -> dict[str, float]:  # noqa: ANN001
    """Sum each batch's prefill (reasoning) and each triage read (fast), and count the work
    the batching plan decides, which the machine's load does not blur: padded prefill
    tokens against real ones, decode row-steps against those spent on live rows."""
    work = dict.fromkeys(("prefill_s", "padded", "real", "row_steps", "live_steps", "reused"), 0.0)
    generate, choose = engine.generate, engine.choose

    def timed_generate(prompts, **kwargs):  # noqa: ANN001, ANN003, ANN202
        out = generate(prompts, **kwargs)
        # a slot pool reads each row alone (no padding) and steps only live rows
        pooled = len(prompts) > 1 and (kwargs.get("slots") or 0) > 1 and engine.pooling
        if out:
            prefills = [c.prefill_s for c in out] if pooled else [out[0].prefill_s]
            work["prefill_s"] += sum(prefills)
            work["reused"] += sum(c.reused for c in out)
            real = sum(map(len, prompts))
            work["padded"] += real if pooled else len(prompts) * max(map(len, prompts))
            work["real"] += real
            # a row's steps: its tokens, plus the step that produced its EOS
            live = [len(c.tokens) + (c.finish == "eos") for c in out]
            work["row_steps"] += sum(live) if pooled else len(out) * max(live)
            work["live_steps"] += sum(live)
        return out

    def timed_choose(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        out = choose(*args, **kwargs)
        work["prefill_s"] += out.latency_s
        work["reused"] += out.reused
        return out

    engine.generate, engine.choose = timed_generate, timed_choose
    return work


def _torch_runs(path: str, bundle: str, samples: list, batches: list[int], max_new: int) -> list:
    import torch
    from transformers import AutoModelForCausalLM

    from guardcli.bundles.manifest import read_manifest
    from guardcli.core.parse import parse
    from guardcli.core.prompt import build_input
    from guardcli.core.tokenizer import TextCodec

    manifest = read_manifest(Path(bundle))
    codec = TextCodec.for_bundle(bundle, manifest)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    pad = manifest.pad_token_id

    def run(chunk: list) -> tuple[list[dict], float, float]:
        """Rows, the prefill time (a separate forward pass, timed alone) and generate's time."""
        ids = [codec.encode(build_input(s.prompt, s.response)) for s in chunk]
        width = max(map(len, ids))
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        with torch.no_grad():
            t0 = time.perf_counter()
            model(input_ids=input_ids, attention_mask=mask)
            t1 = time.perf_counter()
            out = model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=max_new,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=manifest.eos_token_ids,
            )
            t2 = time.perf_counter()
        rows = []
        for row, x in zip(out[:, width:].tolist(), ids, strict=True):
            tokens = [t for t in row if t != pad]
            if tokens and tokens[-1] in manifest.eos_token_ids:
                tokens = tokens[:-1]
            verdict = parse(codec.decode(tokens))
            rows.append(
                {
                    "prompt_tokens": len(x),
                    "output_tokens": len(tokens),
                    "latency_s": t2 - t1,
                    "verdict": [getattr(verdict, t).value for t in TASKS],
                }
            )
        return rows, t1 - t0, t2 - t1

    runs = []
    for batch in batches:
        run(samples[:batch])  # warm-up
        rows, prefill, wall = [], 0.0, 0.0
        for i in range(0, len(samples), batch):
            got, p, g = run(samples[i : i + batch])
            rows += got
            prefill += p
            wall += g  # generate's own time: its prefill is inside it, the timed copy is not
        runs.append(_summary(batch, rows, wall, prefill))
    return runs


def _llama_runs(
    path: str, bundle: str, samples: list, batches: list[int], max_new: int, tweaks: list[str]
) -> list:
    from llama_cpp import Llama

    from guardcli.backends.genai import default_threads
    from guardcli.bundles.manifest import read_manifest
    from guardcli.core.parse import answers_complete, parse
    from guardcli.core.prompt import build_input
    from guardcli.core.tokenizer import TextCodec

    manifest = read_manifest(Path(bundle))
    codec = TextCodec.for_bundle(bundle, manifest)
    threads = default_threads()
    llm = Llama(
        model_path=path, n_ctx=4096, n_batch=512, n_threads=threads, n_threads_batch=threads,
        verbose=False,
    )  # fmt: skip
    eos = set(manifest.eos_token_ids)
    fields, _session = _tweaks(tweaks)
    unknown = set(fields) - {"reuse_prefix"}
    if unknown:
        raise SystemExit(f"bench: {path}: llama engines take reuse_prefix only, not {unknown}")
    reuse = fields.get("reuse_prefix", True)

    def one(sample) -> tuple[dict, float, float]:  # noqa: ANN001
        ids = codec.encode(build_input(sample.prompt, sample.response))
        stream, out, first = codec.stream(), [], None
        if not reuse:
            llm.reset()  # forget the cached tokens: generate() then prefills the whole prompt
        # What generate() will keep: the common prefix with the ids the cache holds.
        held = list(llm._input_ids[: llm.n_tokens])
        pairs = zip(held, ids, strict=False)
        reused = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(held), len(ids)))
        start = time.perf_counter()
        # temp 0 is llama.cpp's greedy sampler; generate() reuses the KV cache of the common
        # prefix with the previous prompt, as guardcli's batch-1 engine does.
        for token in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
            first = first if first is not None else time.perf_counter() - start
            if token in eos:
                break
            out.append(token)
            stream.push(token)
            if answers_complete(stream.text) or len(out) >= max_new:
                break
        took = time.perf_counter() - start
        verdict = parse(codec.decode(out))
        row = {
            "prompt_tokens": len(ids),
            "output_tokens": len(out),
            "latency_s": took,
            "reused": reused,
            "verdict": [getattr(verdict, t).value for t in TASKS],
        }
        return row, first or took, took

    runs = []
    for batch in batches:
        if batch != 1:
            continue  # llama-cpp-python's Llama runs one sequence at a time
        one(samples[0])  # warm-up
        rows, prefill, wall = [], 0.0, 0.0
        for sample in samples:
            row, p, w = one(sample)
            rows.append(row)
            prefill += p
            wall += w
        run = _summary(batch, rows, wall, prefill)
        run["cached_share"] = sum(r["reused"] for r in rows) / sum(r["prompt_tokens"] for r in rows)
        runs.append(run)
    return runs


def _summary(batch: int, rows: list[dict], wall: float, prefill: float) -> dict:
    latencies = sorted(r["latency_s"] for r in rows)
    out_tokens = sum(r["output_tokens"] for r in rows)
    return {
        "batch": batch,
        "samples": len(rows),
        "wall_s": wall,
        "samples_per_s": len(rows) / wall,
        "prefill_tokens_per_s": sum(r["prompt_tokens"] for r in rows) / max(prefill, 1e-9),
        "decode_tokens_per_s": out_tokens / max(wall - prefill, 1e-9),
        "mean_output_tokens": out_tokens / len(rows),
        "looped": sum(r.get("finish") == "loop" for r in rows),
        "p50_latency_s": statistics.median(latencies),
        "p95_latency_s": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "verdicts": [r["verdict"] for r in rows],
    }


def worker(args: argparse.Namespace) -> int:
    samples = _samples(args.bench, args.limit, args.seed)
    label, path = args.worker.split("=", 1)
    if label.startswith("torch"):
        runs = _torch_runs(
            path, args.tokenizer_bundle, samples, args.batch_size, args.max_new_tokens
        )
    elif label.startswith("llama"):
        runs = _llama_runs(
            path,
            args.tokenizer_bundle,
            samples,
            args.batch_size,
            args.max_new_tokens,
            args.worker_option,
        )
    else:
        runs = _guardcli_runs(
            path, samples, args.batch_size, args.max_new_tokens, args.worker_option
        )
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "engine": label, "path": path, "peak_rss_mb": peak_kb / 1024,
        "private_mb": _private_mb(), "runs": runs,
    }))  # fmt: skip


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _private_mb() -> float | None:
    """Anonymous memory now, at the end of the run (Linux): what the process holds that no
    other process can share and the kernel cannot drop, unlike a mapped bundle's pages."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    kb = next(
        (line.split()[1] for line in status.splitlines() if line.startswith("RssAnon:")), None
    )
    return None if kb is None else int(kb) / 1024
    return 0


# ---- parent: every engine, the bandwidth ceiling, the table ----------------------------------


def _share(run: dict, key: str) -> str:
    return f"{100 * run[key]:.0f}%" if key in run else "-"


def memory_bandwidth_gbs(megabytes: int = 512, repeats: int = 5) -> float:
    """Best-of read bandwidth with every core summing its share of a buffer far larger than
    the caches: decoding streams each weight once per token and writes almost nothing."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    data = np.ones(megabytes * (1 << 20) // 4, dtype=np.float32)
    parts = np.array_split(data, os.cpu_count() or 1)
    best = float("inf")
    with ThreadPoolExecutor(len(parts)) as pool:
        for _ in range(repeats):
            t = time.perf_counter()
            list(pool.map(np.sum, parts))  # numpy releases the GIL inside the reduction
            best = min(best, time.perf_counter() - t)
    return data.nbytes / best / 1e9


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("guardcli", "onnxruntime", "onnxruntime-genai", "numpy", "torch", "transformers",
                 "llama-cpp-python"):  # fmt: skip
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", action="append", default=[], metavar="LABEL=PATH")
    parser.add_argument("--bench", required=True)
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--engine-option",
        action="append",
        default=[],
        metavar="LABEL:KEY=VALUE",
        help="for one guardcli engine: a GuardOptions field (lookahead=1, loops=off), "
        "reuse_prefix=false (batch 1 prefills every input whole), prefill_chunk=N (ids per "
        "batch-1 model call; 0: the whole input), pooling=false (onnxruntime-genai for everything: "
        "batches generated as one, not the slot pool), low_memory=true "
        "(--low-memory) or an "
        "onnxruntime-genai session option (session.enable_cpu_mem_arena=false); for a "
        "llama engine: reuse_prefix=false (its cache is reset before every input)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-option", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer-bundle", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if not args.engine:
        parser.error("give at least one --engine LABEL=PATH")

    from guardcli.bundles.resolve import resolve_model

    guardcli_paths = [
        p.partition("@")[0]
        for label, p in (e.split("=", 1) for e in args.engine)
        if not label.startswith(("torch", "llama"))
    ]
    reference_bundle = str(resolve_model(guardcli_paths[0]).path) if guardcli_paths else None
    common = ["--bench", args.bench, "--limit", str(args.limit), "--seed", str(args.seed),
              "--max-new-tokens", str(args.max_new_tokens),
              "--batch-size", *map(str, args.batch_size)]  # fmt: skip
    results = []
    for engine in args.engine:
        print(f"bench: running {engine}", file=sys.stderr)
        command = [sys.executable, __file__, "--worker", engine, *common]
        label = engine.split("=", 1)[0]
        for option in args.engine_option:
            target, _, tweak = option.partition(":")
            if target == label:
                command += ["--worker-option", tweak]
        if reference_bundle:
            command += ["--tokenizer-bundle", reference_bundle]
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
        if done.returncode != 0:
            print(f"bench: {engine} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))

    bandwidth = memory_bandwidth_gbs()
    weights = (
        (Path(reference_bundle) / "model.onnx.data").stat().st_size if reference_bundle else None
    )
    ceiling = bandwidth * 1e9 / weights if weights else None
    print(f"memory bandwidth {bandwidth:.1f} GB/s; fp32 weights {weights / 1e6:.0f} MB -> "
          f"batch-1 decode ceiling {ceiling:.0f} tokens/s" if weights else "")  # fmt: skip
    print("| engine | batch | samples/s | prefill tok/s | decode tok/s | p50 s | p95 s "
          "| peak RSS MB | private MB | looped | padding | done-row steps | from cache "
          "| verdicts = ref |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    reference = {run["batch"]: run["verdicts"] for run in results[0]["runs"]}
    for result in results:
        for run in result["runs"]:
            ref = reference.get(run["batch"]) or next(iter(reference.values()))
            same = sum(a == b for a, b in zip(run["verdicts"], ref, strict=True))
            run["agreement"] = same / len(ref)
            decode = f"{run['decode_tokens_per_s']:.1f}" if run["mean_output_tokens"] else "-"
            print(
                f"| {result['engine']} | {run['batch']} | {run['samples_per_s']:.2f} "
                f"| {run['prefill_tokens_per_s']:.0f} | {decode} "
                f"| {run['p50_latency_s']:.1f} | {run['p95_latency_s']:.1f} "
                f"| {result['peak_rss_mb']:.0f} | {_mb(result.get('private_mb'))} "
                f"| {run.get('looped', 0)} "
                f"| {_share(run, 'padding_share')} | {_share(run, 'finished_row_share')} "
                f"| {_share(run, 'cached_share')} | {100 * run['agreement']:.0f}% |"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
            "versions": versions(),
            "bench": args.bench,
            "limit": args.limit,
            "memory_bandwidth_gbs": bandwidth,
            "fp32_weight_bytes": weights,
            "batch1_decode_ceiling_tokens_per_s": ceiling,
            "engines": results,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
