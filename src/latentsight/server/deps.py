"""Shared request dependencies: the loaded run, and sample ids checked against it.

Both are ``async def``: they only look up memory, so they run on the event loop instead of
costing every request a hop through the thread pool."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request

from latentsight.server.state import RunState


async def get_state(request: Request) -> RunState:
    """The run loaded at startup."""
    return request.app.state.run


StateDep = Annotated[RunState, Depends(get_state)]


async def sample_row(
    state: StateDep,
    id: Annotated[
        str | None, Query(description="the sample id, e.g. 'val/17'", max_length=1000)
    ] = None,
    row: Annotated[
        int | None, Query(description="or its row (position in the samples table)", ge=0)
    ] = None,
) -> int:
    """The row of the sample named by ``id`` or ``row`` (exactly one), or 4xx naming it."""
    if (id is None) == (row is None):
        raise HTTPException(422, "Name the sample by exactly one of ?id=... or ?row=....")
    if row is not None:
        if row >= state.n:
            raise HTTPException(404, f"No row {row}: this run has {state.n} samples.")
        return row
    found = state.row_of.get(id)
    if found is None:
        raise HTTPException(404, f"No sample with id {id!r} in this run.")
    return found


SampleRow = Annotated[int, Depends(sample_row)]
