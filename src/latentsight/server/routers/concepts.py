"""The concept tables of the run (neuron concepts, spurious-feature audit), when it has them."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
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
            title=table.title,
            rows=pq.ParquetFile(table.file).metadata.num_rows,
            columns=pq.read_schema(table.file).names,
        )
        for name, table in state.concepts.items()
    ]


@router.get("/{name}", response_model=ConceptTableOut)
def concept_table(
    name: str,
    state: StateDep,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ConceptTableOut:
    """Rows ``offset`` to ``offset + limit`` of one concept table, as strings."""
    stored = state.concepts.get(name)
    if stored is None:
        raise HTTPException(404, f"No concept table {name!r}; stored: {list(state.concepts)}.")
    table = pq.read_table(stored.file)
    part = table.slice(offset, limit).to_pandas().map(_cell)
    return ConceptTableOut(
        name=name,
        title=stored.title,
        total=table.num_rows,
        offset=offset,
        columns=[str(c) for c in part.columns],
        rows=part.to_numpy().tolist(),
    )


def _cell(value: Any) -> str:
    """A table cell as text: lists joined by commas, numbers to four significant digits."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)
