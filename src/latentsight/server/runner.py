"""Starting the dashboard: in the foreground for `latentsight serve`, or in a background thread
for notebooks, tests and benchmarks. The socket is bound first, so that a busy or impossible
address is a clear error before anything is loaded or printed."""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from latentsight.errors import LatentsightError
from latentsight.server.security import check_binding

MAX_PORT = 65535


def _config(app: FastAPI) -> uvicorn.Config:
    return uvicorn.Config(app, log_level="warning", access_log=False)


def _bind_error(host: str, port: int, error: OSError) -> LatentsightError:
    if error.errno == errno.EADDRINUSE:
        return LatentsightError(
            f"Port {port} on {host} is in use (another dashboard?): choose another with --port "
            "(0 picks a free one)."
        )
    if error.errno == errno.EACCES:
        return LatentsightError(
            f"Cannot listen on port {port} of {host}: permission denied (ports below 1024 need "
            "privileges); choose another with --port."
        )
    return LatentsightError(
        f"Cannot listen on {host}:{port}: {error.strerror or error}; pass --host 127.0.0.1 or "
        "an address of this machine."
    )


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (port 0: a free one); a busy port, a port out of
    range or a foreign address is a LatentsightError that says which and what to change."""
    if not 0 <= port <= MAX_PORT:
        raise LatentsightError(
            f"Port {port} is out of range: give --port a number from 1 to {MAX_PORT} (0 picks a "
            "free one)."
        )
    try:
        family, kind, _, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listening = socket.socket(family, kind)
    except OSError as error:
        raise _bind_error(host, port, error) from None
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
        listening.listen()
    except OSError as error:
        listening.close()
        raise _bind_error(host, port, error) from None
    return listening


def url(host: str, listening: socket.socket) -> str:
    """The address a browser opens for a socket bound on ``host`` (any address: loopback's)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{listening.getsockname()[1]}"


def serve_app(app: FastAPI, listening: socket.socket) -> None:
    """Serve on a socket from :func:`bind` until interrupted (Ctrl-C); beyond loopback only if
    the app has a token."""
    check_binding(listening.getsockname()[0], getattr(app.state, "token", None))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # many small requests: one BLAS thread each, no oversubscription
        uvicorn.Server(_config(app)).run(sockets=[listening])


@contextmanager
def background(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve in a thread while the block runs; yields the base URL (port 0: a free one)."""
    check_binding(host, getattr(app.state, "token", None))
    listening = bind(host, port)
    server = uvicorn.Server(_config(app))
    thread = threading.Thread(
        target=server.run, args=([listening],), name="latentsight-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            listening.close()
            raise RuntimeError(f"The dashboard server did not start on {host}:{port}.")
        time.sleep(0.02)
    try:
        yield url(host, listening)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
