"""Everything the dashboard serves, loaded from the run once at startup and kept in memory.

The map and every colourable column are encoded once as little-endian binary arrays, so the
requests that the page makes for 100,000 points cost a memory copy, not a query.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latentsight.classes import CLASS_COLUMNS, label_set
from latentsight.insights.base import Insight
from latentsight.insights.columns import MAX_CATEGORIES, is_categorical
from latentsight.project import Project
from latentsight.report import extras, tables
from latentsight.report.renders import RenderIndex
from latentsight.server.explaining import Explanations
from latentsight.server.selection import SelectionStats
from latentsight.store import analysis
from latentsight.store.concepts import StoredTable
from latentsight.store.run import Run

NEIGHBOURS = 8
GALLERY = 12
_SKIP = {"row", "id", "index", "probabilities", "map_x", "map_y"}


@dataclass(frozen=True)
class Column:
    """A column the map can be coloured by: numbers (float32) or categories (uint16 codes)."""

    name: str
    kind: str  # "number" or "category"
    group: str  # "analysis", "outcome", "loss", "metadata", "score"
    categories: list[str] = field(default_factory=list)
    low: float | None = None  # 2nd and 98th percentiles: a colour range robust to outliers
    high: float | None = None
    payload: bytes = b""


def _encode(series: pd.Series, name: str, group: str) -> Column | None:
    if series.isna().all():
        return None
    few_integers = pd.api.types.is_integer_dtype(series) and series.nunique() <= MAX_CATEGORIES
    if is_categorical(series) or few_integers or name in ("cluster", "target", "prediction"):
        labels = series.astype("string").fillna("<missing>")
        categories = sorted(
            labels.unique().tolist(), key=lambda v: (not v.lstrip("-").isdigit(), _natural(v))
        )
        if len(categories) > 65535:
            return None
        codes = labels.map({c: i for i, c in enumerate(categories)}).to_numpy(np.uint16)
        return Column(name, "category", group, categories, payload=codes.astype("<u2").tobytes())
    values = series.to_numpy(dtype=np.float64)
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None
    low, high = (float(v) for v in np.quantile(finite, [0.02, 0.98]))
    return Column(name, "number", group, low=low, high=high, payload=values.astype("<f4").tobytes())


def _plain(value: Any) -> Any:
    """A JSON-ready Python value: numpy scalars unwrapped, missing and non-finite values None."""
    if isinstance(value, (np.ndarray, list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _natural(value: str) -> tuple[int, float | str]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def _group(name: str, metadata: set[str], scores: set[str]) -> str:
    if name in metadata:
        return "metadata"
    if name in scores:
        return "score"
    if name == "loss" or name.startswith(("loss_", "metric_")):
        return "loss"
    if name in ("cluster", "noise"):
        return "analysis"
    return "outcome"


class RunState:
    """A run opened for serving: tables, map, columns, insights, latents, renders."""

    def __init__(self, run: Run, project: Project | None = None) -> None:
        if project is not None:
            run.attach(project)
        self.run = run
        self.path: Path = run.path
        self.manifest = run.manifest
        self.class_names = run.class_names
        self.analysis = run.analysis_info
        scores = run.scores
        points = tables.with_map(run.samples, run.map)
        score_columns = [c for c in scores.columns if c != "id" and c not in points.columns]
        self.samples = points.merge(scores[["id", *score_columns]], on="id", how="left")
        self.n = len(self.samples)
        self.ids = self.samples["id"].astype(str).to_numpy()
        self.row_of = {sample_id: row for row, sample_id in enumerate(self.ids)}
        self.metadata_columns = list(self.manifest["metadata_columns"])
        self.subsets = [s["name"] for s in self.manifest["subsets"]]
        self.value_columns = tables.value_columns(self.samples)
        coords = self.samples[["map_x", "map_y"]].to_numpy(np.float32)
        self.map_payload = np.concatenate([coords[:, 0], coords[:, 1]]).astype("<f4").tobytes()
        self.bounds = [float(v) for v in (*coords.min(axis=0), *coords.max(axis=0))]
        meta, score_set = set(self.metadata_columns), set(score_columns)
        multilabel = self.manifest["task"] == "multilabel"
        self.columns: dict[str, Column] = {}
        for name in self.samples.columns:
            if name in _SKIP:
                continue
            series = self.samples[name]
            if multilabel and name in ("target", "prediction"):
                series = series.map(lambda labels: label_set(labels, self.class_names))
            encoded = _encode(series, name, _group(name, meta, score_set))
            if encoded is not None:
                self.columns[name] = encoded
        named = [c for c in CLASS_COLUMNS if c in self.columns and not multilabel]
        self.class_columns = named if self.class_names else []  # what the page shows by name
        self.insights: list[Insight] = run.insights
        self.populations = [self._rows(insight.population) for insight in self.insights]
        self.selection = SelectionStats(self.samples, self.metadata_columns)
        rows, distances = analysis.read_neighbours(self.path)
        in_samples = np.array([self.row_of[i] for i in run.map["id"].astype(str)], dtype=np.int64)
        self.nearest = np.empty_like(rows)  # by sample row: its neighbours' sample rows
        self.nearest[in_samples] = in_samples[rows]
        self.nearest_distances = np.empty_like(distances)
        self.nearest_distances[in_samples] = distances
        self.renders = RenderIndex(self.path)
        self.explanations = Explanations(run, self.renders)
        self.trend = lru_cache(maxsize=256)(self._trend)
        self._arrays = {c: self.samples[c].to_numpy() for c in self.samples.columns}

    @property
    def concepts(self) -> dict[str, StoredTable]:
        """The concept tables the run stores now (concepts may be computed while serving)."""
        return extras.concept_tables(self.path)

    @property
    def has_explanations(self) -> bool:
        """Whether the run caches explanation maps now."""
        return extras.has_explanations(self.path)

    def _rows(self, ids: list[str]) -> np.ndarray:
        return np.array([self.row_of[i] for i in ids if i in self.row_of], dtype=np.int64)

    def _trend(self, column: str, value: str, bins: int) -> dict[str, Any]:
        return tables.trend(self.samples, column, value, bins=bins, subsets=self.subsets)

    def neighbours(self, row: int, k: int = NEIGHBOURS) -> list[tuple[int, float]]:
        """The ``k`` nearest samples to ``row`` in the analysed latent space, with distances: the
        neighbour graph that the detectors read, stored by the analysis."""
        rows, distances = self.nearest[row, :k].tolist(), self.nearest_distances[row, :k].tolist()
        return list(zip(rows, distances, strict=True))

    def sample(self, row: int) -> dict[str, Any]:
        """Everything known about one sample, JSON-ready."""

        def value(column: str) -> Any:
            array = self._arrays.get(column)
            return None if array is None else _plain(array[row])

        sample_id = self.ids[row]
        kind = self.renders.kinds.get(sample_id)
        text = self.renders.get(sample_id).text if kind == "text" else None
        return {
            "id": sample_id,
            "row": row,
            "subset": value("subset"),
            "target": value("target"),
            "prediction": value("prediction"),
            "confidence": value("confidence"),
            "correct": value("correct"),
            "probabilities": value("probabilities"),
            "values": {c: value(c) for c in self.value_columns},
            "metadata": {c: value(c) for c in self.metadata_columns},
            "scores": {c.name: value(c.name) for c in self.columns.values() if c.group == "score"},
            "cluster": value("cluster"),
            "map": [value("map_x"), value("map_y")],
            "render": kind,
            "text": text,
            "neighbours": [
                {
                    "id": self.ids[r],
                    "row": r,
                    "distance": d,
                    "loss": _plain(self._arrays["loss"][r]) if "loss" in self._arrays else None,
                    "target": _plain(self._arrays["target"][r])
                    if "target" in self._arrays
                    else None,
                }
                for r, d in self.neighbours(row)
            ],
            "explanations": self.explanations.listed(sample_id),
        }

    def gallery(self, rows: np.ndarray, k: int = GALLERY) -> list[str]:
        """Ids of the ``k`` highest-loss samples among ``rows``."""
        return [self.ids[r] for r in tables.hardest(self.samples, rows, k)]
