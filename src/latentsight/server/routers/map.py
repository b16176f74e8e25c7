"""The map's points and the columns that colour them, as binary arrays encoded at startup and
answered from the event loop (``async def``: no thread-pool hop for a memory copy)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from latentsight.server.deps import StateDep

router = APIRouter(prefix="/api", tags=["map"])
BINARY = {200: {"content": {"application/octet-stream": {}}}}


@router.get("/map", response_class=Response, responses=BINARY)
async def map_points(state: StateDep) -> Response:
    """The map coordinates: n little-endian float32 x values, then n y values, in row order."""
    return Response(
        state.map_payload,
        media_type="application/octet-stream",
        headers={"X-Count": str(state.n), "Cache-Control": "no-cache"},
    )


@router.get("/columns/{name}", response_class=Response, responses=BINARY)
async def column_values(name: str, state: StateDep) -> Response:
    """One column for every row: float32 numbers (NaN when missing) or uint16 category codes
    (labels in ``/api/run``)."""
    column = state.columns.get(name)
    if column is None:
        raise HTTPException(
            404, f"No column {name!r} to colour by; available: {sorted(state.columns)}."
        )
    return Response(
        column.payload,
        media_type="application/octet-stream",
        headers={"X-Kind": column.kind, "X-Count": str(state.n), "Cache-Control": "no-cache"},
    )
