"""The concept tables of the run (neuron concepts, spurious-feature audit), when it has them."""

from __future__ import annotations

from typing import Annotated

import pyarrow.parquet as pq
from fastapi import APIRouter, HTTPException, Query

from latentsight.server.deps import StateDep
from latentsight.server.models import ConceptTableInfo, ConceptTableOut

router = APIRouter(prefix="/api/concepts", tags=["concepts"])


@router.get("", response_model=list[ConceptTableInfo])
def concept_tables(state: StateDep) -> list[ConceptTableInfo]:
    """The concept tables stored in the run (empty when concepts were not computed)."""
    return [
        ConceptTableInfo(
            name=name,
            rows=pq.ParquetFile(file).metadata.num_rows,
            columns=pq.read_schema(file).names,
        )
        for name, file in state.concepts.items()
    ]


@router.get("/{name}", response_model=ConceptTableOut)
def concept_table(
    name: str,
    state: StateDep,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ConceptTableOut:
    """Rows ``offset`` to ``offset + limit`` of one concept table, as strings."""
    file = state.concepts.get(name)
    if file is None:
        raise HTTPException(404, f"No concept table {name!r}; stored: {list(state.concepts)}.")
    table = pq.read_table(file)
    part = table.slice(offset, limit).to_pandas().astype(str)
    return ConceptTableOut(
        name=name,
        total=table.num_rows,
        offset=offset,
        columns=[str(c) for c in part.columns],
        rows=part.to_numpy().tolist(),
    )
