"""Statistics of a selected population against the rest.

The selection arrives as binary, like the map leaves: a lasso can hold tens of thousands of
rows, and reading them from a typed array costs nothing, where parsing them from JSON cost more
than the statistics themselves. The statistics, a millisecond or two of numpy, are computed on
the event loop rather than after a hop through the thread pool.
"""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, HTTPException, Request

from latentsight.server.deps import StateDep
from latentsight.server.models import SelectionOut

router = APIRouter(prefix="/api", tags=["selection"])
ROWS = "application/octet-stream"
BODY = {
    "requestBody": {
        "required": True,
        "description": "the rows (positions in the samples table, 0 to n-1, as the map and the "
        "insights give them) as little-endian uint32 values: a Uint32Array in the browser, "
        "numpy.asarray(rows, '<u4').tobytes() in Python",
        "content": {ROWS: {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post("/selection", response_model=SelectionOut, openapi_extra=BODY)
async def describe_selection(request: Request, state: StateDep) -> SelectionOut:
    """Size, subset mix, mean loss (and every value column) inside and outside, and the metadata
    enriched in the selection, tested as the insights are. A row given twice counts once."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != ROWS:
        raise HTTPException(
            415,
            f"Send the selected rows as {ROWS} (little-endian uint32 values, e.g. a Uint32Array "
            f"or numpy.asarray(rows, '<u4').tobytes()), not {kind or 'no content type'}.",
        )
    body = await request.body()
    if len(body) % 4:
        raise HTTPException(
            422, f"The body holds {len(body)} bytes, not a whole number of uint32 rows (4 bytes)."
        )
    rows = np.frombuffer(body, dtype="<u4").astype(np.int64)
    if len(rows) > state.n:
        raise HTTPException(422, f"{len(rows)} rows given but the run has {state.n} samples.")
    bad = rows[rows >= state.n].tolist()
    if bad:
        raise HTTPException(
            422, f"Rows must lie in 0..{state.n - 1}; got {bad[:5]}{'...' if len(bad) > 5 else ''}."
        )
    return SelectionOut(**state.selection.describe(rows))
