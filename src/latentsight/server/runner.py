"""Starting the dashboard: in the foreground for `latentsight serve`, or in a background thread
for notebooks, tests and benchmarks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from latentsight.server.security import check_binding


def _config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)


def _check(app: FastAPI, host: str) -> None:
    check_binding(host, getattr(app.state, "token", None))


def serve_app(app: FastAPI, host: str, port: int) -> None:
    """Serve until interrupted (Ctrl-C); beyond loopback only if the app has a token."""
    _check(app, host)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # many small requests: one BLAS thread each, no oversubscription
        uvicorn.Server(_config(app, host, port)).run()


@contextmanager
def background(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve in a thread while the block runs; yields the base URL (port 0: a free one)."""
    _check(app, host)
    server = uvicorn.Server(_config(app, host, port))
    thread = threading.Thread(target=server.run, name="latentsight-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"The dashboard server did not start on {host}:{port}.")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    try:
        yield f"http://{shown}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
