"""The analysis results inside a run directory: map, clusters, neighbours, insights, scores.

They are written to a fresh directory that replaces ``analysis/`` in one rename, so a reader
sees the previous analysis or the new one, never a mixture.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from latentsight.errors import NotRecordedError
from latentsight.insights.base import Evidence, Insight
from latentsight.store.files import write_json, write_parquet
from latentsight.store.manifest import ANALYSIS

INFO = "analysis.json"
MAP = "map.parquet"
CLUSTERS = "clusters.parquet"
INSIGHTS = "insights.json"
SCORES = "scores.parquet"
NEIGHBOURS = "neighbours.parquet"


def write_analysis(
    run_dir: Path,
    *,
    info: dict[str, Any],
    map_frame: pd.DataFrame,
    clusters: pd.DataFrame,
    insights: list[Insight],
    scores: pd.DataFrame,
    neighbours: tuple[np.ndarray, np.ndarray],
) -> None:
    """Replace the run's analysis with these results, atomically. ``neighbours`` holds each map
    row's nearest other rows and their distances (N x k each), as the detectors saw them."""
    staging = run_dir / f".{ANALYSIS}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name, frame in ((MAP, map_frame), (CLUSTERS, clusters), (SCORES, scores)):
        write_parquet(staging / name, pa.Table.from_pandas(frame, preserve_index=False))
    write_parquet(staging / NEIGHBOURS, _neighbour_table(*neighbours))
    write_json(staging / INSIGHTS, {"insights": [dataclasses.asdict(i) for i in insights]})
    write_json(staging / INFO, info)
    final = run_dir / ANALYSIS
    if final.exists():
        retired = run_dir / f".{ANALYSIS}.old-{os.getpid()}"
        final.rename(retired)
        staging.rename(final)
        shutil.rmtree(retired)
    else:
        staging.rename(final)


def _folder(run_dir: Path) -> Path:
    folder = run_dir / ANALYSIS
    if not (folder / INFO).is_file():
        raise NotRecordedError(
            f"The run at {run_dir} has not been analysed yet: call run.analyze() or run "
            f"`latentsight insights {run_dir}`."
        )
    return folder


def read_info(run_dir: Path) -> dict[str, Any]:
    """The analysis settings, layer, timings and per-detector notes."""
    return json.loads((_folder(run_dir) / INFO).read_text())


def read_frame(run_dir: Path, name: str) -> pd.DataFrame:
    """One of the analysis tables (map, clusters, scores)."""
    return pd.read_parquet(_folder(run_dir) / name)


def _neighbour_table(rows: np.ndarray, distances: np.ndarray) -> pa.Table:
    k = rows.shape[1]
    return pa.table(
        {
            "rows": pa.FixedSizeListArray.from_arrays(pa.array(rows.ravel(), pa.int64()), k),
            "distances": pa.FixedSizeListArray.from_arrays(
                pa.array(distances.ravel(), pa.float32()), k
            ),
        }
    )


def read_neighbours(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Each map row's nearest other rows (N x k, nearest first) and their distances."""
    path = _folder(run_dir) / NEIGHBOURS
    if not path.is_file():
        raise NotRecordedError(
            f"The analysis of the run at {run_dir} predates stored neighbours: analyse it again "
            f"(run.analyze() or `latentsight insights {run_dir}`)."
        )
    table = pq.read_table(path)
    n = table.num_rows
    rows, distances = (
        table.column(name).combine_chunks().flatten() for name in ("rows", "distances")
    )
    return rows.to_numpy().reshape(n, -1), distances.to_numpy().reshape(n, -1)


def read_insights(run_dir: Path) -> list[Insight]:
    """The ranked insights."""
    payload = json.loads((_folder(run_dir) / INSIGHTS).read_text())
    found = []
    for raw in payload["insights"]:
        evidence = [Evidence(**e) for e in raw.pop("evidence")]
        found.append(Insight(evidence=evidence, **raw))
    return found
