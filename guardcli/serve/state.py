"""What every route and the middleware share: the options, the batcher, the metrics, and
whether the server is ready or draining."""

from __future__ import annotations

from dataclasses import dataclass, field

from guardcli.serve.batcher import Batcher
from guardcli.serve.config import ServeOptions
from guardcli.serve.metrics import Metrics
from guardcli.serve.requests import Limits


@dataclass
class ServeState:
    options: ServeOptions
    batcher: Batcher
    limits: Limits
    model_name: str
    metrics: Metrics = field(default_factory=Metrics)
    ready: bool = False  # the model is loaded and the batch worker runs
    draining: bool = False  # SIGTERM seen: finish what is in flight, refuse the rest

    def __post_init__(self) -> None:
        self.batcher.metrics = self.metrics
