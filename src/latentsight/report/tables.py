"""The figures both surfaces show: headline metrics per subset, trends of a value against metadata,
representative samples. Pure pandas on the samples table, shared by the report and the server."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from latentsight.insights.columns import MAX_CATEGORIES, is_categorical

ALL = "all"


def value_columns(samples: pd.DataFrame) -> list[str]:
    """The columns worth averaging per group: loss, its components, accuracy, metrics, confidence."""
    losses = [c for c in samples.columns if c == "loss" or c.startswith("loss_")]
    metrics = [c for c in samples.columns if c.startswith("metric_")]
    others = [c for c in ("correct", "confidence") if c in samples.columns]
    return losses + others + metrics


def value_label(column: str) -> str:
    """How a value column is named on screen (``correct`` is shown as accuracy)."""
    if column == "correct":
        return "accuracy"
    if column.startswith("loss_"):
        return f"loss: {column.removeprefix('loss_')}"
    if column.startswith("metric_"):
        return column.removeprefix("metric_")
    return column


def headline_metrics(samples: pd.DataFrame, subsets: list[str]) -> pd.DataFrame:
    """One row per subset (then all together): samples and the mean of every value column."""
    columns = value_columns(samples)
    rows = []
    groups = [(name, samples[samples["subset"] == name]) for name in subsets]
    for name, part in [*groups, (ALL, samples)]:
        row: dict[str, Any] = {"subset": name, "samples": len(part)}
        for column in columns:
            values = part[column].astype(np.float64)
            row[value_label(column)] = float(values.mean()) if values.notna().any() else None
        rows.append(row)
    return pd.DataFrame(rows)


def trend(
    samples: pd.DataFrame, column: str, value: str, *, bins: int = 10, subsets: list[str]
) -> dict[str, Any]:
    """The mean of ``value`` against metadata ``column``, per subset: quantile bins of a number,
    or the most common categories (at most ``MAX_CATEGORIES``) of a category."""
    series = samples[column]
    values = samples[value].astype(np.float64)
    categorical = is_categorical(series)
    if categorical:
        keys = series.astype("string").fillna("<missing>")
        order = keys.value_counts().index[:MAX_CATEGORIES].tolist()
        labels = order
    else:
        numbers = series.astype(np.float64)
        edges = np.unique(np.nanquantile(numbers, np.linspace(0, 1, bins + 1)))
        if len(edges) < 2:
            edges = np.array([np.nanmin(numbers), np.nanmax(numbers) + 1e-9])
        codes = np.clip(np.searchsorted(edges, numbers, side="right") - 1, 0, len(edges) - 2)
        keys = pd.Series(np.where(np.isnan(numbers), -1, codes), index=samples.index)
        order = list(range(len(edges) - 1))
        labels = [f"{edges[i]:.3g}-{edges[i + 1]:.3g}" for i in order]
    groups = []
    for name in [*subsets, ALL]:
        inside = (samples["subset"] == name).to_numpy() if name != ALL else np.ones(len(keys), bool)
        frame = pd.DataFrame({"key": keys[inside], "value": values[inside]})
        stats = frame.groupby("key", sort=False)["value"].agg(["mean", "count"])
        stats = stats.reindex(order)
        x = labels
        if not categorical:
            centres = pd.Series(series.astype(np.float64)[inside].to_numpy()).groupby(
                keys[inside].to_numpy()
            )
            medians = centres.median().reindex(order)
            x = [None if np.isnan(m) else float(m) for m in medians.to_numpy()]
        groups.append(
            {
                "subset": name,
                "x": x,
                "mean": [None if np.isnan(m) else float(m) for m in stats["mean"].to_numpy()],
                "n": [0 if np.isnan(c) else int(c) for c in stats["count"].to_numpy()],
            }
        )
    return {
        "column": column,
        "value": value,
        "value_label": value_label(value),
        "kind": "category" if categorical else "number",
        "labels": labels,
        "groups": groups,
    }


def hardest(samples: pd.DataFrame, population: np.ndarray | None = None, k: int = 6) -> list[int]:
    """Row positions of the ``k`` samples of a population with the highest loss (or the first k)."""
    rows = np.arange(len(samples)) if population is None else np.asarray(population, dtype=int)
    if "loss" in samples and len(rows):
        loss = samples["loss"].to_numpy(dtype=np.float64)[rows]
        order = np.argsort(np.where(np.isnan(loss), -np.inf, -loss), kind="stable")
        rows = rows[order]
    return rows[:k].tolist()


def least_confident(samples: pd.DataFrame, population: np.ndarray, k: int = 6) -> list[int]:
    """Row positions of the ``k`` samples of a population the model is least sure of: the
    hardest of an unlabeled subset, which has no loss."""
    rows = np.asarray(population, dtype=int)
    confidence = samples["confidence"].to_numpy(dtype=np.float64)[rows]
    order = np.argsort(np.where(np.isnan(confidence), np.inf, confidence), kind="stable")
    return rows[order][:k].tolist()


def cluster_medoids(coords: np.ndarray, clusters: np.ndarray, top: int = 12) -> list[int]:
    """For the ``top`` largest clusters, the row of the sample nearest the cluster's map centre."""
    labels, sizes = np.unique(clusters, return_counts=True)
    chosen = labels[np.argsort(-sizes, kind="stable")][:top]
    rows = []
    for label in chosen:
        members = np.flatnonzero(clusters == label)
        centre = coords[members].mean(axis=0)
        rows.append(int(members[np.argmin(((coords[members] - centre) ** 2).sum(axis=1))]))
    return rows


def with_map(samples: pd.DataFrame, map_frame: pd.DataFrame) -> pd.DataFrame:
    """The samples with their map position (``map_x``, ``map_y``, so that metadata named x and y
    keep their names), ``cluster`` and ``noise``, in samples order."""
    placed = map_frame.rename(columns={"x": "map_x", "y": "map_y"})
    return samples.merge(placed, on="id", how="left", validate="one_to_one")
