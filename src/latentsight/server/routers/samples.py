"""One sample: its record, its picture, its cached explanation maps."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from latentsight.server.deps import SampleRow, StateDep
from latentsight.server.models import SampleOut

router = APIRouter(prefix="/api/sample", tags=["samples"])
IMAGE = {200: {"content": {"image/png": {}}}}
JSON = "application/json"


@router.get("", response_model=SampleOut)
def sample(row: SampleRow, state: StateDep) -> Response:
    """Target, prediction, probabilities, loss and components, metadata, detector scores, latent
    nearest neighbours and the explanations stored for it."""
    # validated once here and written by pydantic's serializer, not validated again on the way out
    return Response(SampleOut(**state.sample(row)).model_dump_json(), media_type=JSON)


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
    layer: Annotated[
        str | None,
        Query(max_length=1000, description="layer, for layer methods (default: any cached)"),
    ] = None,
    target: Annotated[
        str | None, Query(max_length=200, description="target (default: any cached)")
    ] = None,
) -> Response:
    """A cached explanation map of the sample drawn over its picture (PNG)."""
    sample_id = state.ids[row]
    drawn = state.explanations.png(sample_id, method, layer, target)
    if drawn is None:
        cached = [
            f"{e['method']}@{e['layer']} ({e['target']})" if e["layer"] else e["method"]
            for e in state.explanations.listed(sample_id)
        ]
        where = f" at layer {layer!r}" if layer else ""
        raise HTTPException(
            404,
            f"No cached {method!r} explanation{where} for {sample_id!r}; cached: "
            f"{cached or 'none'}. Compute one with POST /api/explain when the server has the model.",
        )
    return Response(drawn, media_type="image/png")
