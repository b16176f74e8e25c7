"""One sample: its record, its picture, its stored explanations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from latentsight.report import extras
from latentsight.server.deps import SampleRow, StateDep
from latentsight.server.models import SampleOut

router = APIRouter(prefix="/api/sample", tags=["samples"])
IMAGE = {200: {"content": {"image/png": {}}}}


@router.get("", response_model=SampleOut)
def sample(row: SampleRow, state: StateDep) -> SampleOut:
    """Target, prediction, probabilities, loss and components, metadata, detector scores, latent
    nearest neighbours and the explanations stored for it."""
    return SampleOut(**state.sample(row))


@router.get("/image", response_class=Response, responses=IMAGE)
def sample_image(row: SampleRow, state: StateDep) -> Response:
    """The sample as the Project's render drew it (PNG)."""
    render = state.renders.get(state.ids[row])
    if render is None or render.image is None:
        kind = "no render" if render is None else "a text render (see /api/sample)"
        raise HTTPException(404, f"Sample {state.ids[row]!r} has {kind}, not an image.")
    return Response(
        render.image, media_type=render.media_type, headers={"Cache-Control": "max-age=3600"}
    )


@router.get("/heatmap", response_class=Response, responses=IMAGE)
def sample_heatmap(
    row: SampleRow,
    state: StateDep,
    method: Annotated[str, Query(max_length=200, description="explanation method")],
    layer: Annotated[str, Query(max_length=200, description="layer (file stem)")],
) -> Response:
    """A stored explanation overlay of the sample (PNG), for a method and layer it was made for."""
    found = {(h.method, h.layer): h for h in extras.heatmaps(state.path, state.ids[row])}
    heatmap = found.get((method, layer))
    if heatmap is None:
        stored = [f"{m}/{layer_}" for m, layer_ in found] or "none"
        raise HTTPException(
            404,
            f"No {method!r} explanation at layer {layer!r} for {state.ids[row]!r}; stored: {stored}.",
        )
    return Response(heatmap.file.read_bytes(), media_type="image/png")
