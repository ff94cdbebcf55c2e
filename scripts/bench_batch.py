"""``guardcli batch`` on a local Ray: samples/s for 1, 2, ... actors, and each actor's memory.

    python scripts/bench_batch.py --model nano \\
        --bench ../shared/data/guardreasoner/benchmark/0_A_beaver_tails.json --limit 16 \\
        --actors 1 2 --threads 1 --json docs/bench/batch-ray-cpu.json

The first ``--limit`` samples of ``--bench`` (any file ``guardcli scan`` reads) are written as
4 JSONL shards; one local Ray (``num_cpus`` = the cores) runs the job once per ``--actors``
value, each into a fresh output, through ``guardcli.cli.batch.run_batch`` (the command's own
path). Wall time counts from the job's start to its last record (Ray's own start-up, once,
is reported apart), the steady rate from the first record written to the last (actor
start-up and model load excluded); peak memory is each actor process's largest VmHWM, polled
from /proc. Prints Markdown; ``--json FILE`` also writes the numbers with machine and date.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path


def actor_pids() -> set[int]:
    """Ray actor processes judging batches (their process title names the map worker)."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"MapWorker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(int(pid))
        except OSError:
            continue
    return found


def watch(stop: threading.Event, peaks: dict[int, int], output: Path, seen: list) -> None:
    """Until ``stop``: the peak RSS (kB) of every Ray actor process this run starts, and
    (time, records) each time the output grows."""
    earlier = actor_pids()  # a previous run's actors may still be exiting
    while not stop.wait(0.5):
        try:
            count = output.read_bytes().count(b"\n")
        except OSError:
            count = 0
        if count and (not seen or seen[-1][1] != count):
            seen.append((time.perf_counter(), count))
        for pid in actor_pids() - earlier:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
            except OSError:
                continue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--bench", required=True)
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--mode", default="reason")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import ray

    from guardcli.cli.batch import BatchOptions, run_batch
    from guardcli.cli.options import ModelOptions
    from guardcli.core.records import Sample
    from guardcli.io.inputs import iter_samples
    from guardcli.io.options import InputOptions

    samples = [s for s in iter_samples([args.bench], InputOptions()) if isinstance(s, Sample)]
    samples = samples[: args.limit]
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    (work / "in").mkdir()
    for n in range(4):
        with open(work / "in" / f"part-{n}.jsonl", "w", encoding="utf-8") as out:
            for sample in samples[n::4]:
                row = {"id": sample.id, "prompt": sample.prompt, "response": sample.response}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - started
    rows = []
    for actors in args.actors:
        stop, peaks, seen = threading.Event(), {}, []
        output = work / f"out-{actors}.jsonl"
        poller = threading.Thread(target=watch, args=(stop, peaks, output, seen), daemon=True)
        poller.start()
        options = BatchOptions(
            paths=[str(work / "in")],
            inputs=InputOptions(),
            model=ModelOptions(args.model, "cpu", args.threads, mode=args.mode),
            output=output,
            batch_size=args.batch_size,
            actors=actors,
            quiet=True,
        )
        began = time.perf_counter()
        run_batch(options)
        wall = time.perf_counter() - began
        stop.set()
        poller.join()
        written = len(output.read_text(encoding="utf-8").splitlines())
        # steady state: from the first record written to the last, start-up excluded
        (first_t, first_n), (last_t, last_n) = seen[0], seen[-1]
        steady = (last_n - first_n) / (last_t - first_t) if last_t > first_t else None
        rows.append(
            {
                "actors": actors,
                "threads_per_actor": args.threads,
                "samples": written,
                "wall_s": round(wall, 1),
                "samples_per_s": round(written / wall, 3),
                "first_record_s": round(first_t - began, 1),
                "steady_samples_per_s": None if steady is None else round(steady, 3),
                "actor_peak_rss_mb": sorted(round(kb / 1024) for kb in peaks.values()),
            }
        )
    ray.shutdown()
    print(f"Ray start-up: {ray_start:.1f}s; {len(samples)} samples of {args.bench}")
    print(
        "| actors | threads each | samples | wall s | samples/s | first record s "
        "| steady samples/s | peak RSS per actor MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        peaks_mb = ", ".join(map(str, row["actor_peak_rss_mb"]))
        print(
            f"| {row['actors']} | {row['threads_per_actor']} | {row['samples']} | "
            f"{row['wall_s']} | {row['samples_per_s']} | {row['first_record_s']} | "
            f"{row['steady_samples_per_s']} | {peaks_mb} |"
        )
    if args.json:
        report = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "ray": ray.__version__,
            "model": args.model,
            "mode": args.mode,
            "bench": args.bench,
            "batch_size": args.batch_size,
            "ray_startup_s": round(ray_start, 1),
            "runs": rows,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
