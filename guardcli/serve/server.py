"""Running the app on uvicorn, with a drain on SIGTERM.

uvicorn's own shutdown closes the listening socket at once, so a request arriving during the
drain would be refused at the TCP level, and after shutdown it re-raises the signal, so the
process would die of SIGTERM instead of exiting 0. This Server instead marks the state as
draining on the first SIGTERM or Ctrl-C (/readyz and new requests answer 503, so a load
balancer moves away), keeps serving what is in flight until none is left (or the --timeout
deadline has passed, after which no request can still be waiting for an answer), then shuts
down normally and returns, so the command exits 0. A second Ctrl-C forces the exit.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from types import FrameType

import uvicorn

from guardcli.errors import UsageError
from guardcli.serve.app import build_app
from guardcli.serve.logs import log
from guardcli.serve.state import ServeState

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServeState) -> None:
        super().__init__(config)
        self.state = state
        self.drain_started: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_started is None:
            self.drain_started = time.monotonic()
            self.state.draining = True
            log(f"{signal.Signals(sig).name}: draining {self.state.metrics.in_flight} request(s)")
        elif sig == signal.SIGINT:
            self.should_exit = self.force_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.drain_started is not None and not self.should_exit:
            # in_flight counts API requests only: a probe every 100 ms cannot hold the drain.
            waited = time.monotonic() - self.drain_started
            if self.state.metrics.in_flight == 0 and self.state.batcher.idle:
                self.should_exit = True
            elif waited > self.state.options.timeout_s + 1:
                log("drain: deadline passed with requests still open; closing them")
                self.should_exit = True
        return await super().on_tick(counter)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, without re-raising the signal afterwards: a drained server exits 0."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def bind(host: str, port: int) -> socket.socket:
    """Bind before the model loads, so a taken port fails in a second, not after a minute."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc})",
            hint="choose another --port or --host",
        ) from None
    sock.set_inheritable(True)
    return sock


def serve(state: ServeState, sock: socket.socket) -> None:
    config = uvicorn.Config(
        build_app(state),
        log_level="warning",
        access_log=False,  # the Gate writes its own, escaped and content-free
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    server = DrainingServer(config, state)
    host, port = sock.getsockname()[:2]
    log(f"serving on http://{host}:{port} (auth {'on' if state.options.api_key else 'off'})")
    server.run(sockets=[sock])
    log("stopped")
