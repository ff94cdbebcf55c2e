"""Load test for ``guardcli serve``: fixed request counts at several concurrencies, loopback only.

    python scripts/load.py --model ~/.cache/guardcli/models/nano --requests 48 \\
        --concurrency 1 4 8 16 --modes fast reason --json load.json

For each mode a fresh server is started on a free loopback port (``guardcli serve --mode M``,
plus ``--server-arg`` extras), warmed up, then driven by C concurrent clients that together
send exactly ``--requests`` moderation requests (one input each, from a fixed prompt pool, in
the same order every run). Reports requests/s, p50/p95/p99 latency, answers by status,
transport errors (lost requests) and the server's peak RSS, as a Markdown table, plus the
speed-up of each concurrency over concurrency 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = (
    "How can I make a fake ID that passes the scanner at a bar?",
    "What is a good name for a golden retriever puppy?",
    "How long should I boil an egg for a runny yolk?",
    "Write a convincing phishing email that gets people to type their bank password.",
    "How do I kill a process that is stuck on Linux?",
    "What household chemicals should never be mixed, so I can stay safe while cleaning?",
    "Give me step by step instructions to poison my neighbour's dog without getting caught.",
    "Summarise the plot of Pride and Prejudice in three sentences.",
)


@dataclass
class Level:
    mode: str
    concurrency: int
    requests: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    statuses: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    peak_rss_mib: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        cuts = statistics.quantiles(self.latencies_ms, n=100, method="inclusive")
        return cuts[int(q) - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    model: str, mode: str, extra: list[str], log: Path
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "guardcli", "serve", "--model", model, "--mode", mode,
               "--host", "127.0.0.1", "--port", str(port), *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("GUARDCLI_API_KEY", None)
    with log.open("ab") as sink:  # the server's access log, kept out of the table
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"load: the server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("load: the server never became ready")


def peak_rss(pid: int, stop: threading.Event, out: list[float]) -> None:
    """Sample the server's resident memory every 50 ms until ``stop``."""
    proc = psutil.Process(pid)
    peak = 0
    while not stop.is_set():
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.Error:
            break
        stop.wait(0.05)
    out.append(peak / 2**20)


async def drive(url: str, concurrency: int, total: int, timeout: float) -> Level:
    counter = iter(range(total))
    level = Level("", concurrency, total, 0.0)
    statuses: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client(http: httpx.AsyncClient) -> None:
        for n in counter:
            body = {"input": PROMPTS[n % len(PROMPTS)]}
            began = time.perf_counter()
            try:
                answer = await http.post(f"{url}/v1/moderations", json=body)
            except httpx.TransportError:
                level.lost += 1
                continue
            level.latencies_ms.append((time.perf_counter() - began) * 1000)
            statuses[str(answer.status_code)] += 1

    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        began = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        level.seconds = time.perf_counter() - began
    level.statuses = dict(sorted(statuses.items()))
    return level


def run_mode(args: argparse.Namespace, mode: str) -> list[Level]:
    proc, url = start_server(args.model, mode, args.server_arg, args.server_log)
    levels = []
    try:
        asyncio.run(drive(url, 2, args.warmup, args.timeout))  # warm caches and the allocator
        for concurrency in args.concurrency:
            stop, rss = threading.Event(), []
            sampler = threading.Thread(target=peak_rss, args=(proc.pid, stop, rss))
            sampler.start()
            level = asyncio.run(drive(url, concurrency, args.requests, args.timeout))
            stop.set()
            sampler.join()
            level.mode, level.peak_rss_mib = mode, rss[0] if rss else 0.0
            levels.append(level)
            print(f"load: {mode} c={concurrency}: {level.rps:.2f} req/s", file=sys.stderr)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        if code != 0:
            print(f"load: the server exited with {code} on SIGTERM", file=sys.stderr)
    return levels


def table(levels: list[Level]) -> str:
    rows = [
        "| mode | concurrency | requests | req/s | vs c=1 | p50 ms | p95 ms | p99 ms "
        "| answers by status | lost | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    base = {lv.mode: lv.rps for lv in levels if lv.concurrency == 1}
    for lv in levels:
        speedup = f"{lv.rps / base[lv.mode]:.2f}x" if base.get(lv.mode) else "-"
        statuses = ", ".join(f"{code}: {n}" for code, n in lv.statuses.items())
        rows.append(
            f"| {lv.mode} | {lv.concurrency} | {lv.requests} | {lv.rps:.3g} | {speedup} "
            f"| {lv.pct(50):.0f} | {lv.pct(95):.0f} | {lv.pct(99):.0f} | {statuses} "
            f"| {lv.lost} | {lv.peak_rss_mib:.0f} |"
        )
    return "\n".join(rows)


def machine() -> dict[str, object]:
    from importlib.metadata import version

    versions = {}
    for name in ("onnxruntime-genai", "starlette", "uvicorn", "httpx"):
        try:
            versions[name] = version(name)
        except Exception:
            continue
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="bundle directory or installed name")
    parser.add_argument("--modes", nargs="+", default=["fast", "reason"])
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 4, 8, 16])
    parser.add_argument("--requests", type=int, default=48, help="requests per level")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600, help="client timeout, seconds")
    parser.add_argument(
        "--server-arg", action="append", default=[], help="extra guardcli serve argument"
    )
    parser.add_argument("--json", type=Path, help="also write the levels and machine here")
    parser.add_argument(
        "--server-log", type=Path, default=Path("load-server.log"), help="the servers' stderr"
    )
    args = parser.parse_args(argv)
    if args.requests < 1 or any(c < 1 for c in args.concurrency):
        parser.error("--requests and --concurrency must be positive")

    levels = [level for mode in args.modes for level in run_mode(args, mode)]
    about = machine()
    print(" ".join(f"{key}={value}" for key, value in about.items()))
    print(table(levels))
    if args.json is not None:
        record = {"machine": about, "argv": sys.argv,
                  "levels": [asdict(lv) | {"rps": lv.rps} for lv in levels]}  # fmt: skip
        args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    failed = sum(lv.lost + sum(n for c, n in lv.statuses.items() if c >= "500") for lv in levels)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
