"""The analysis results inside a run directory: map, clusters, neighbours, insights, scores.

They are written to a fresh directory that replaces ``analysis/`` in one rename, so a reader
sees the previous analysis or the new one, never a mixture.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from latentsight.errors import NotRecordedError, RunStoreError
from latentsight.insights.base import Evidence, Insight
from latentsight.store.files import write_json, write_parquet
from latentsight.store.manifest import ANALYSIS, CAPTURE_KEY, SAMPLES, read_manifest

INFO = "analysis.json"
MAP = "map.parquet"
CLUSTERS = "clusters.parquet"
INSIGHTS = "insights.json"
SCORES = "scores.parquet"
NEIGHBOURS = "neighbours.parquet"
TABLES = (MAP, CLUSTERS, SCORES, NEIGHBOURS)
PER_SAMPLE = (MAP, SCORES, NEIGHBOURS)  # one row per sample of the run, in samples order


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
    for left in (*run_dir.glob(f".{ANALYSIS}.tmp-*"), *run_dir.glob(f".{ANALYSIS}.old-*")):
        shutil.rmtree(left, ignore_errors=True)  # what an analysis stopped part way left
    staging = run_dir / f".{ANALYSIS}.tmp-{os.getpid()}"
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


def is_analysed(run_dir: Path) -> bool:
    """Whether the run holds a finished analysis: the folder is put in place whole, info last."""
    return (run_dir / ANALYSIS / INFO).is_file()


def _folder(run_dir: Path) -> Path:
    folder = run_dir / ANALYSIS
    if not (folder / INFO).is_file():
        raise NotRecordedError(
            f"The run at {run_dir} has not been analysed yet: call run.analyze() or run "
            f"`latentsight insights {run_dir}`."
        )
    return folder


def _check_present(run_dir: Path, folder: Path, names: tuple[str, ...]) -> None:
    """Refuse an analysis that lacks one of these files."""
    for name in names:
        if not (folder / name).is_file():
            raise RunStoreError(
                f"The analysis of the run at {run_dir} is incomplete: it has no {ANALYSIS}/{name} "
                f"(deleted, or written by an older latentsight); {_again(run_dir)}."
            )


def _check_files(run_dir: Path, folder: Path) -> None:
    """Refuse an analysis with a file missing, unreadable, made for another capture, or not one
    row per sample of the run where it should be: Parquet footers only, so that a surface opening
    it pays little. An analysis written before it recorded its capture is not matched to one."""
    _check_present(run_dir, folder, (*TABLES, INSIGHTS))
    made_for = read_info(run_dir).get(CAPTURE_KEY)
    if made_for is not None and made_for != read_manifest(run_dir).get(CAPTURE_KEY):
        raise RunStoreError(
            f"The analysis in {folder} was made for another capture (another model, data or "
            f"settings: copied from another run?), not for the run at {run_dir}; "
            f"{_again(run_dir)}."
        )
    n = pq.read_metadata(run_dir / SAMPLES).num_rows
    for name in TABLES:
        try:
            rows = pq.read_metadata(folder / name).num_rows
        except (OSError, pa.ArrowException) as error:
            raise RunStoreError(
                f"The analysis file {folder / name} is corrupt ({error}): {_again(run_dir)}."
            ) from None
        if name in PER_SAMPLE and rows != n:
            raise RunStoreError(
                f"The analysis of the run at {run_dir} is incomplete: {ANALYSIS}/{name} has "
                f"{rows} rows but the run has {n} samples (the file was replaced or cut short); "
                f"{_again(run_dir)}."
            )


def _again(run_dir: Path) -> str:
    return (
        f"analyse the run again with `latentsight insights {run_dir} --recompute` (or "
        "run.analyze())"
    )


@contextmanager
def _reading(run_dir: Path, name: str, *, whole: bool = True) -> Iterator[Path]:
    """The path of one analysis file, to read in the block; a missing or unreadable file is a
    RunStoreError that names it and how to make it again, whichever surface asked. With
    ``whole``, the rest of the analysis is then checked (see :func:`_check_files`), so that what
    was read is never a part of a damaged analysis, and the file asked for is named first."""
    folder = _folder(run_dir)
    _check_present(run_dir, folder, (name,))
    path = folder / name
    try:
        yield path
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as error:
        raise RunStoreError(
            f"The analysis file {path} is corrupt ({error}): {_again(run_dir)}."
        ) from None
    if whole:
        _check_files(run_dir, folder)


def read_info(run_dir: Path) -> dict[str, Any]:
    """The analysis settings, layer, timings and per-detector notes: readable whatever became of
    the results, so that an analysis made again can say which one it replaces."""
    with _reading(run_dir, INFO, whole=False) as path:
        return json.loads(path.read_text())


def read_frame(run_dir: Path, name: str) -> pd.DataFrame:
    """One of the analysis tables (map, clusters, scores)."""
    with _reading(run_dir, name) as path:
        return pd.read_parquet(path)


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
    with _reading(run_dir, NEIGHBOURS) as path:
        table = pq.read_table(path)
        n = table.num_rows
        rows, distances = (
            table.column(name).combine_chunks().flatten() for name in ("rows", "distances")
        )
        return rows.to_numpy().reshape(n, -1), distances.to_numpy().reshape(n, -1)


def read_insights(run_dir: Path) -> list[Insight]:
    """The ranked insights."""
    with _reading(run_dir, INSIGHTS) as path:
        payload = json.loads(path.read_text())
        found = []
        for raw in payload["insights"]:
            evidence = [Evidence(**e) for e in raw.pop("evidence")]
            found.append(Insight(evidence=evidence, **raw))
        return found
