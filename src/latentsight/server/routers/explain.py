"""Explaining a sample on demand with the run's model; the map is kept in the run's cache."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from latentsight.attribution_methods import method_name
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
    from latentsight.explain.targets import parse_target  # torch: only with a model

    try:
        method = method_name(request.method)
    except LatentsightError as error:
        raise HTTPException(422, str(error)) from None
    if method not in options.methods:
        raise HTTPException(
            422, f"Method {method!r} cannot run here: choose one of {options.methods}."
        )
    layer = request.layer
    if method in options.layered:
        layer = layer or options.default_layer
        if layer not in options.layers:
            raise HTTPException(
                422, f"{method} explains at a convolution; choose one of {options.layers}."
            )
    elif layer is not None:
        raise HTTPException(
            422, f"{method} attributes to the input and takes no layer; leave it out."
        )
    given = int(request.target) if request.target.isdigit() else request.target
    try:
        target = parse_target(given, state.explanations.run.class_names)
    except LatentsightError:
        target = None
    if target is None or (target.kind == "label" and "label" not in options.targets):
        raise HTTPException(
            422,
            f"Unknown target {request.target!r}: choose one of {options.targets}, or a class "
            "index.",
        )
    try:
        state.explanations.compute(request.id, method, layer, given)
    except LatentsightError as error:
        raise HTTPException(422, f"Explaining {request.id!r} failed: {error}") from None
    return ExplanationOut(method=method, layer=layer, target=target.key)
