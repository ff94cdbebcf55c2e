"""ServeOptions: everything the server was told, checked once when made.

The limits exist so that nothing a client sends can make the server hold unbounded work:
a body cap, an input-count cap, a bounded queue and a per-request deadline.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from guardcli.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_BATCH = 8  # rows generated together
DEFAULT_WAIT_MS = 5.0  # how long the first request of a batch waits for company
DEFAULT_MAX_QUEUE = 64  # inputs waiting (not yet in a batch) before 429
DEFAULT_TIMEOUT_S = 60.0  # per-request deadline: 504 beyond it
DEFAULT_MAX_BODY = 1 << 20  # bytes: 413 beyond it
DEFAULT_MAX_INPUTS = 32  # inputs in one request: 400 beyond it
API_KEY_ENV = "GUARDCLI_API_KEY"
OPEN_ROUTES = ("/healthz", "/readyz")  # answered without an API key (probes carry none)


@dataclass(frozen=True)
class ServeOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    batch_size: int = DEFAULT_BATCH
    wait_ms: float = DEFAULT_WAIT_MS
    max_queue: int = DEFAULT_MAX_QUEUE
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_body: int = DEFAULT_MAX_BODY
    max_inputs: int = DEFAULT_MAX_INPUTS
    api_key: str | None = None
    log_requests: bool = False

    def __post_init__(self) -> None:
        """Refuse an open bind without a key, and limits that could never admit a request."""
        if self.api_key == "":
            raise UsageError("the API key is empty", hint=f"set --api-key or {API_KEY_ENV}")
        if not is_loopback(self.host) and self.api_key is None:
            raise UsageError(
                f"--host {self.host} is reachable from other machines and no API key is set",
                hint=f"set --api-key or {API_KEY_ENV}, or bind 127.0.0.1",
            )
        if self.max_inputs > self.max_queue:
            raise UsageError(
                f"--max-inputs {self.max_inputs} is above --max-queue {self.max_queue}: "
                "the largest request could never be queued",
                hint="raise --max-queue or lower --max-inputs",
            )
        if self.timeout_s <= 0:
            raise UsageError("--timeout must be positive", hint="e.g. --timeout 30")
        if self.wait_ms < 0:
            raise UsageError("--wait-ms cannot be negative", hint="e.g. --wait-ms 5")


def is_loopback(host: str) -> bool:
    """Only a loopback address or ``localhost`` counts: 0.0.0.0 and :: listen everywhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
