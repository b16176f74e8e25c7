"""The analysis results inside a run directory: map, clusters, insights, per-sample scores.

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

import pandas as pd
import pyarrow as pa

from latentsight.errors import NotRecordedError
from latentsight.insights.base import Evidence, Insight
from latentsight.store.files import write_json, write_parquet
from latentsight.store.manifest import ANALYSIS

INFO = "analysis.json"
MAP = "map.parquet"
CLUSTERS = "clusters.parquet"
INSIGHTS = "insights.json"
SCORES = "scores.parquet"


def write_analysis(
    run_dir: Path,
    *,
    info: dict[str, Any],
    map_frame: pd.DataFrame,
    clusters: pd.DataFrame,
    insights: list[Insight],
    scores: pd.DataFrame,
) -> None:
    """Replace the run's analysis with these results, atomically."""
    staging = run_dir / f".{ANALYSIS}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name, frame in ((MAP, map_frame), (CLUSTERS, clusters), (SCORES, scores)):
        write_parquet(staging / name, pa.Table.from_pandas(frame, preserve_index=False))
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


def read_insights(run_dir: Path) -> list[Insight]:
    """The ranked insights."""
    payload = json.loads((_folder(run_dir) / INSIGHTS).read_text())
    found = []
    for raw in payload["insights"]:
        evidence = [Evidence(**e) for e in raw.pop("evidence")]
        found.append(Insight(evidence=evidence, **raw))
    return found
