"""Candidate populations that detectors test: latent clusters and metadata-defined slices.

A population holding more than half of the samples is not a candidate: it is the majority that
the others are compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from latentsight.insights.base import AnalysisContext
from latentsight.insights.columns import MAX_CATEGORIES, is_categorical

QUANTILE_BINS = 5


@dataclass(frozen=True)
class Population:
    """A named set of samples (a boolean mask over the samples table)."""

    name: str
    source: str  # "cluster" or "metadata"
    mask: np.ndarray
    column: str | None = None  # the metadata column that defines it


def cluster_populations(ctx: AnalysisContext) -> list[Population]:
    """One population per latent cluster (a cluster holding over half the data is the "rest")."""
    return [
        Population(ctx.region_name(f"cluster {cluster}"), "cluster", ctx.clusters == cluster)
        for cluster in np.unique(ctx.clusters)
        if ctx.settings.min_population <= (ctx.clusters == cluster).sum() <= ctx.n // 2
    ]


def _range_name(column: str, members: pd.Series) -> str:
    """A bin named by the values its members take (the bin's own edges are half-open and padded:
    an integer column's bin (3, 5] holds 4 and 5, so it is named "in [4, 5]")."""
    low, high = members.min(), members.max()
    return f"{column} = {low:.3g}" if low == high else f"{column} in [{low:.3g}, {high:.3g}]"


def metadata_populations(ctx: AnalysisContext) -> list[Population]:
    """Categorical values, and quantile bins of numeric columns, of every metadata column.

    Metadata slices do not depend on the layer, so they are tested once, with the map's layer.
    """
    if not ctx.primary:
        return []
    found: list[Population] = []
    for column in ctx.metadata_columns:
        series = ctx.samples[column]
        if is_categorical(series):
            values = series.astype("string")
            if values.nunique() > MAX_CATEGORIES:
                continue
            for value in sorted(values.dropna().unique()):
                found.append(
                    Population(
                        f"{column} = {value}",
                        "metadata",
                        (values == value).fillna(False).to_numpy(),
                        column,
                    )
                )
        else:
            numbers = series.astype(float)
            if numbers.nunique() <= QUANTILE_BINS:
                for value in sorted(numbers.dropna().unique()):
                    found.append(
                        Population(
                            f"{column} = {value:g}",
                            "metadata",
                            (numbers == value).to_numpy(),
                            column,
                        )
                    )
                continue
            edges = np.unique(np.nanquantile(numbers, np.linspace(0, 1, QUANTILE_BINS + 1)))
            bins = pd.cut(numbers, edges, include_lowest=True, duplicates="drop")
            for interval in bins.cat.categories:
                mask = (bins == interval).to_numpy()
                found.append(
                    Population(_range_name(column, numbers[mask]), "metadata", mask, column)
                )
    return [p for p in found if ctx.settings.min_population <= p.mask.sum() <= ctx.n // 2]
