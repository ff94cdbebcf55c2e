"""Prometheus text exposition (format 0.0.4), written by hand: a few counters, gauges and
histograms do not justify a dependency. Updated from the event loop only (the batch worker
reports through it), so no locks."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        for i, edge in enumerate(self.buckets):
            if value <= edge:
                self.counts[i] += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out = [
            f'{name}_bucket{{{labels}{sep}le="{edge:g}"}} {n}'
            for edge, n in zip(self.buckets, self.counts, strict=True)
        ]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        braces = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{braces} {self.total:.6f}", f"{name}_count{braces} {self.count}"]
        return out


@dataclass
class Metrics:
    requests: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    latency: dict[str, Histogram] = field(default_factory=dict)
    batches: Histogram = field(default_factory=lambda: Histogram(BATCH_BUCKETS))
    tokens: int = 0
    inputs: int = 0
    cancelled_batches: int = 0
    in_flight: int = 0
    queue_depth: int = 0  # set by the batcher
    ready: bool = False

    def request_done(self, route: str, status: int, seconds: float) -> None:
        self.requests[(route, status)] += 1
        self.latency.setdefault(route, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch_done(self, size: int, tokens: int) -> None:
        self.batches.observe(size)
        self.inputs += size
        self.tokens += tokens

    def render(self) -> str:
        lines = [
            "# HELP guardcli_requests_total HTTP requests answered, by route and status.",
            "# TYPE guardcli_requests_total counter",
        ]
        for (route, status), n in sorted(self.requests.items()):
            lines.append(f'guardcli_requests_total{{route="{route}",status="{status}"}} {n}')
        lines += [
            "# HELP guardcli_request_duration_seconds Time from request to response, by route.",
            "# TYPE guardcli_request_duration_seconds histogram",
        ]
        for route, histogram in sorted(self.latency.items()):
            lines += histogram.lines("guardcli_request_duration_seconds", f'route="{route}"')
        lines += [
            "# HELP guardcli_batch_size Inputs in each engine batch.",
            "# TYPE guardcli_batch_size histogram",
            *self.batches.lines("guardcli_batch_size"),
            *_single(
                "guardcli_queue_depth", "gauge", "Inputs waiting for a batch.", self.queue_depth
            ),
            *_single(
                "guardcli_in_flight_requests",
                "gauge",
                "API requests being handled (not probes).",
                self.in_flight,
            ),
            *_single(
                "guardcli_generated_tokens_total",
                "counter",
                "Tokens the model generated (reasoning).",
                self.tokens,
            ),
            *_single("guardcli_inputs_judged_total", "counter", "Inputs judged.", self.inputs),
            *_single(
                "guardcli_cancelled_batches_total",
                "counter",
                "Batches stopped because every request in them had given up.",
                self.cancelled_batches,
            ),
            *_single(
                "guardcli_ready",
                "gauge",
                "1 when the model is loaded and not draining.",
                int(self.ready),
            ),
        ]
        return "\n".join(lines) + "\n"


def _single(name: str, kind: str, help_text: str, value: float) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
