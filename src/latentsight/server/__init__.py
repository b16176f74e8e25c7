"""The local web dashboard: a FastAPI app over one analysed run and its static front end."""

from __future__ import annotations

from pathlib import Path

from latentsight.project import Project
from latentsight.server.app import create_app
from latentsight.server.runner import background, bind, serve_app
from latentsight.server.security import check_binding
from latentsight.server.state import RunState
from latentsight.store.run import Run

__all__ = ["RunState", "background", "create_app", "serve"]


def serve(
    run: Run | str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    project: Project | None = None,
) -> None:
    """Serve the dashboard of an analysed run until interrupted; with a model (``project``, or
    one attached to the run) its sample view computes explanations on demand."""
    check_binding(host, token)
    with bind(host, port) as listening:
        opened = run if isinstance(run, Run) else Run(run)
        serve_app(create_app(opened, token=token, project=project), listening)
