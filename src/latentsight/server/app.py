"""The dashboard's FastAPI application: the JSON API and the static page that uses it."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from plotly.offline import get_plotlyjs
from starlette.requests import Request
from starlette.responses import Response

from latentsight import __version__
from latentsight.errors import LatentsightError
from latentsight.project import Project
from latentsight.server.api_docs import api_reference
from latentsight.server.routers import (
    concepts,
    dashboards,
    explain,
    insights,
    samples,
    selection,
)
from latentsight.server.routers import map as map_view
from latentsight.server.routers import run as run_view
from latentsight.server.security import AccessGuard
from latentsight.server.state import RunState
from latentsight.store.run import Run

STATIC = Path(__file__).parent / "static"


def create_app(
    run: Run | RunState, *, token: str | None = None, project: Project | None = None
) -> FastAPI:
    """The dashboard of an analysed run; every request must carry ``token`` when one is given.

    With a model (``project``, or one attached to the run), the sample view computes
    explanations on demand and caches them in the run; without one it shows the cached ones."""
    state = run if isinstance(run, RunState) else RunState(run, project)
    app = FastAPI(
        title="latentsight dashboard",
        version=__version__,
        description=(
            "API over one analysed run: the latent map, colour columns, selection statistics, "
            "insights, samples, explanations, trends and concepts. It writes nothing in the run "
            "but the explanations POST /api/explain computes with the model. When the server "
            "has a token, send it as ?token=..., the X-Latentsight-Token header or a Bearer "
            "authorization."
        ),
        docs_url=None,
        redoc_url=None,
    )
    app.state.run = state
    app.state.token = token
    for module in (run_view, map_view, selection, insights, samples, explain, dashboards, concepts):
        app.include_router(module.router)
    plotly_js = get_plotlyjs().encode()

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(api_reference(app.openapi(), app.openapi_url or "/openapi.json"))

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly() -> Response:
        return Response(plotly_js, media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(LatentsightError)
    async def latentsight_error(request: Request, error: LatentsightError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    app.add_middleware(AccessGuard, token=token)
    return app
