"""Explaining a sample on demand with the run's model; the map is kept in the run's cache."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from latentsight.errors import LatentsightError
from latentsight.server.deps import StateDep
from latentsight.server.models import ExplainIn, ExplainOptions, ExplanationOut

router = APIRouter(prefix="/api/explain", tags=["explanations"])


@router.get("", response_model=ExplainOptions)
def explain_options(state: StateDep) -> ExplainOptions:
    """The methods, layers and targets the server can explain with, or why it cannot."""
    options = state.explanations.options
    return ExplainOptions(**vars(options))


@router.post("", response_model=ExplanationOut)
def explain(request: ExplainIn, state: StateDep) -> ExplanationOut:
    """Compute the map of one sample (Grad-CAM at a layer, or another method) and cache it in
    the run; GET /api/sample/heatmap then draws it."""
    options = state.explanations.options
    if not options.available:
        raise HTTPException(409, options.note)
    if request.id not in state.row_of:
        raise HTTPException(404, f"No sample with id {request.id!r} in this run.")
    if request.method not in options.methods:
        raise HTTPException(
            422, f"Unknown method {request.method!r}: choose one of {options.methods}."
        )
    layer = request.layer
    if request.method in options.layered:
        layer = layer or options.default_layer
        if layer not in options.layers:
            raise HTTPException(
                422, f"{request.method} explains at a convolution; choose one of {options.layers}."
            )
    elif layer is not None:
        raise HTTPException(
            422, f"{request.method} attributes to the input and takes no layer; leave it out."
        )
    if request.target not in options.targets:
        raise HTTPException(
            422, f"Unknown target {request.target!r}: choose one of {options.targets}."
        )
    try:
        state.explanations.compute(request.id, request.method, layer, request.target)
    except LatentsightError as error:
        raise HTTPException(422, f"Explaining {request.id!r} failed: {error}") from None
    return ExplanationOut(method=request.method, layer=layer, target=request.target)
