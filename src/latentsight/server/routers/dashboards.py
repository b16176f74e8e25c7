"""Loss and metrics against each metadata column, per subset."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from latentsight.server.deps import StateDep
from latentsight.server.models import TrendOut

router = APIRouter(prefix="/api", tags=["dashboards"])


@router.get("/trends", response_model=TrendOut)
def trends(
    state: StateDep,
    column: Annotated[str, Query(max_length=200, description="a metadata column")],
    value: Annotated[
        str, Query(max_length=200, description="loss, a component, correct...")
    ] = "loss",
    bins: Annotated[int, Query(ge=2, le=50, description="quantile bins of a number")] = 10,
) -> TrendOut:
    """The mean of ``value`` per bin (numbers) or per category of ``column``, per subset."""
    if column not in state.metadata_columns:
        raise HTTPException(
            404, f"No metadata column {column!r}; the run has {state.metadata_columns}."
        )
    if value not in state.value_columns:
        raise HTTPException(404, f"No value column {value!r}; the run has {state.value_columns}.")
    return TrendOut(**state.trend(column, value, bins))
