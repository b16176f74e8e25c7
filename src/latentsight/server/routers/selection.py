"""Statistics of a selected population against the rest."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, HTTPException

from latentsight.server.deps import StateDep
from latentsight.server.models import SelectionIn, SelectionOut

router = APIRouter(prefix="/api", tags=["selection"])


@router.post("/selection", response_model=SelectionOut)
def describe_selection(selection: SelectionIn, state: StateDep) -> SelectionOut:
    """Size, subset mix, mean loss (and every value column) inside and outside, and the metadata
    enriched in the selection, tested as the insights are."""
    rows = selection.rows
    if len(rows) > state.n:
        raise HTTPException(422, f"{len(rows)} rows given but the run has {state.n} samples.")
    chosen = np.asarray(rows, dtype=np.int64) if rows else np.zeros(0, np.int64)
    bad = chosen[(chosen < 0) | (chosen >= state.n)].tolist()
    if bad:
        raise HTTPException(
            422, f"Rows must lie in 0..{state.n - 1}; got {bad[:5]}{'...' if len(bad) > 5 else ''}."
        )
    mask = np.zeros(state.n, dtype=bool)
    mask[chosen] = True
    return SelectionOut(**state.selection.describe(mask))
