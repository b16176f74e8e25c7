"""Metadata trends: how the loss varies with each metadata column, tested and binned for plots.

* Numeric columns: Spearman rank correlation of the column with the loss (a monotone trend), and
  a Kruskal-Wallis test across its quantile bins (any shape of trend, e.g. worst in the middle);
  the column's p-value is the smaller of the two, Bonferroni-corrected (x2). Columns with at most
  ``QUANTILE_BINS`` distinct values get one bin per value.
* Categorical columns: Kruskal-Wallis test of the loss across categories.
* Benjamini-Hochberg across every tested column. The population of an insight is the worst bin or
  category (highest mean loss among those holding at least ``min_population`` samples); the
  effect is its mean loss / the overall mean loss. The per-bin means are in
  ``Evidence.details["bins"]`` for plotting.
* Tests use the evaluation subsets when they hold enough samples (``QUANTILE_BINS *
  min_population``), else every labeled sample; the population lists every labeled sample of the
  worst bin or category (bin edges found on the tested samples, outer bins open-ended).
* Only columns with ``q < alpha`` and an effect of at least ``MIN_LOSS_RATIO`` become insights;
  ``DetectorResult.info["columns"]`` holds p, q and effect of every tested column.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from latentsight.insights.aggressors import MIN_LOSS_RATIO
from latentsight.insights.base import (
    AnalysisContext,
    Detector,
    DetectorResult,
    Evidence,
    Insight,
    population_ids,
    register,
)
from latentsight.insights.columns import MAX_CATEGORIES, is_categorical
from latentsight.insights.describe import enriched_metadata
from latentsight.insights.populations import QUANTILE_BINS
from latentsight.insights.stats import benjamini_hochberg

LOSS = "loss"


def kruskal_p(groups: list[np.ndarray]) -> tuple[float, float]:
    """Kruskal-Wallis H and p-value over the non-empty groups; (0, 1) when it is undefined."""
    groups = [g for g in groups if g.size]
    if len(groups) < 2:
        return 0.0, 1.0
    try:
        h, p = stats.kruskal(*groups)
    except ValueError:  # every value identical
        return 0.0, 1.0
    return (float(h), float(p)) if np.isfinite(p) else (0.0, 1.0)


def numeric_bins(values: np.ndarray) -> tuple[list[str], np.ndarray, bool]:
    """Bins of a numeric column: (labels, edges or values, whether there is one bin per value).

    One bin per value when there are at most ``QUANTILE_BINS`` of them, else quantile bins whose
    outer edges are open (values beyond the range seen fall into the first or last bin) and whose
    other edges are right-closed, as with ``pandas.cut``.
    """
    finite = values[~np.isnan(values)]
    distinct = np.unique(finite)
    if distinct.size <= QUANTILE_BINS:
        return [f"{v:g}" for v in distinct], distinct, True
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, QUANTILE_BINS + 1)))
    labels = [  # the first bin also holds its left edge
        f"{'[' if i == 0 else '('}{edges[i]:.3g}, {edges[i + 1]:.3g}]"
        for i in range(len(edges) - 1)
    ]
    return labels, edges, False


def assign_bins(values: np.ndarray, edges: np.ndarray, one_per_value: bool) -> np.ndarray:
    """Bin index of every value (-1 for NaN, or for a value no bin holds)."""
    if one_per_value:
        return np.where(np.isin(values, edges), np.searchsorted(edges, values), -1)
    return np.where(np.isnan(values), -1, np.searchsorted(edges[1:-1], values, side="left"))


def bin_table(index: np.ndarray, labels: list[str], loss: np.ndarray) -> list[dict[str, Any]]:
    """Per bin: label, count, mean and median loss."""
    rows = []
    for b, label in enumerate(labels):
        inside = loss[index == b]
        rows.append(
            {
                "label": label,
                "n": int(inside.size),
                "mean_loss": float(inside.mean()) if inside.size else math.nan,
                "median_loss": float(np.median(inside)) if inside.size else math.nan,
            }
        )
    return rows


def worst_bin(table: list[dict[str, Any]], min_population: int) -> int:
    """The bin with the highest mean loss among those large enough (any bin if none is)."""
    sizes = np.array([row["n"] for row in table])
    means = np.array([row["mean_loss"] for row in table], dtype=np.float64)
    eligible = sizes >= min_population
    if not eligible.any():
        eligible = sizes > 0
    return int(np.nanargmax(np.where(eligible, means, -np.inf)))


@register
class MetadataTrends(Detector):
    """How the loss varies with each metadata column (Spearman, Kruskal-Wallis, binned trend)."""

    name = "metadata_trend"
    uses_latents = False
    description = (
        "Loss against every metadata column: Spearman and Kruskal-Wallis across quantile bins "
        "for numbers, Kruskal-Wallis for categories (BH across columns)."
    )

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        """Test every metadata column; report the worst bin or category of each."""
        if LOSS not in ctx.samples or not ctx.metadata_columns:
            return DetectorResult([], info={"tested": 0})
        min_population = ctx.settings.min_population
        on_eval = ctx.is_eval.sum() >= QUANTILE_BINS * min_population
        scope = ctx.is_eval if on_eval else ctx.is_labeled
        loss_all = ctx.samples[LOSS].to_numpy(dtype=np.float64)
        scope = scope & ~np.isnan(loss_all)
        loss = loss_all[scope]
        overall = float(loss.mean()) if loss.size else math.nan
        if loss.size < 2 * min_population or not overall > 0:
            return DetectorResult([], info={"tested": 0})
        tested: list[dict[str, Any]] = []
        for column in ctx.metadata_columns:
            result = self._test_column(ctx, column, scope, loss)
            if result is not None:
                tested.append(result)
        if not tested:
            return DetectorResult([], info={"tested": 0})
        q_values = benjamini_hochberg(np.array([t["p"] for t in tested]))
        insights = []
        summary = {}
        for result, q in zip(tested, q_values, strict=True):
            effect = result["table"][result["worst"]]["mean_loss"] / overall
            summary[result["column"]] = {"p": result["p"], "q": float(q), "effect": effect}
            if effect < MIN_LOSS_RATIO or q >= ctx.settings.alpha:
                continue  # ranking would drop it; describing it costs a pass over every column
            insights.append(self._insight(ctx, result, float(q), effect, overall, on_eval))
        return DetectorResult(insights, info={"tested": len(tested), "columns": summary})

    def _test_column(
        self, ctx: AnalysisContext, column: str, scope: np.ndarray, loss: np.ndarray
    ) -> dict[str, Any] | None:
        """The tests, bins and worst bin of one column, or None when it cannot be tested."""
        series = ctx.samples[column]
        result: dict[str, Any] = {"column": column}
        if is_categorical(series):
            values = series.astype("string").fillna("<missing>").to_numpy(dtype=object)
            categories = sorted(set(values[scope]))
            if not 2 <= len(categories) <= MAX_CATEGORIES:
                return None
            index_all = pd.Categorical(values, categories=categories).codes.astype(np.int64)
            index = index_all[scope]
            h, p = kruskal_p([loss[index == b] for b in range(len(categories))])
            result.update(
                type="categorical",
                test="kruskal",
                labels=[str(c) for c in categories],
                p=p,
                kruskal_h=h,
                kruskal_p=p,
            )
        else:
            numbers = series.to_numpy(dtype=np.float64)
            values = numbers[scope]
            valid = ~np.isnan(values)
            if np.unique(values[valid]).size < 2:
                return None
            labels, edges, one_per_value = numeric_bins(values)
            index_all = assign_bins(numbers, edges, one_per_value)
            index = index_all[scope]
            rho, p_rho = stats.spearmanr(values[valid], loss[valid])
            rho, p_rho = (float(rho), float(p_rho)) if np.isfinite(rho) else (0.0, 1.0)
            h, p_bins = kruskal_p([loss[index == b] for b in range(len(labels))])
            result.update(
                type="numeric",
                test="spearman" if p_rho <= p_bins else "kruskal",
                labels=labels,
                edges=[float(e) for e in edges],
                p=min(1.0, 2 * min(p_rho, p_bins)),
                spearman_rho=rho,
                spearman_p=p_rho,
                kruskal_h=h,
                kruskal_p=p_bins,
                n_missing=int((~valid).sum()),
                one_per_value=one_per_value,
            )
        result["table"] = bin_table(index, result["labels"], loss)
        result["worst"] = worst_bin(result["table"], ctx.settings.min_population)
        result["mask"] = (index_all == result["worst"]) & ctx.is_labeled
        return result

    def _insight(
        self,
        ctx: AnalysisContext,
        result: dict[str, Any],
        q: float,
        effect: float,
        overall: float,
        on_eval: bool,
    ) -> Insight:
        """The insight of one column: its worst bin or category as the population."""
        column, mask = result["column"], result["mask"]
        worst = result["table"][result["worst"]]
        where = (
            f"{column} = {worst['label']}"
            if result["type"] == "categorical" or result["one_per_value"]
            else f"{column} in {worst['label']}"
        )
        if result["type"] == "numeric" and result["test"] == "spearman":
            direction = "decreases" if result["spearman_rho"] < 0 else "increases"
            trend = (
                f"Loss rises as {column} {direction} (Spearman rho = {result['spearman_rho']:.2f})"
            )
        elif result["type"] == "numeric":
            trend = f"Loss varies with {column}, not monotonically"
        else:
            trend = f"Loss varies with {column}"
        subsets = ctx.samples.loc[mask, "subset"].value_counts().to_dict()
        details = {
            key: value
            for key, value in result.items()
            if key not in ("mask", "table", "worst", "labels", "p", "column")
        }
        details.update(
            column=column,
            bins=result["table"],
            worst=worst["label"],
            overall_mean_loss=overall,
            tested_on="evaluation subsets" if on_eval else "labeled subsets",
        )
        means = ", ".join(f"{row['label']}: {row['mean_loss']:.3g}" for row in result["table"])
        words = [e.text for e in enriched_metadata(ctx.samples, ctx.metadata_columns, mask)]
        others = [w for w in words if not w.startswith(f"{column} ")]
        return Insight(
            kind=self.name,
            title=f"{trend}; worst at {where}: {effect:.2g}x the mean loss",
            population=population_ids(ctx, mask),
            evidence=[
                Evidence(
                    detector=self.name,
                    effect=effect,
                    effect_name="mean loss in the worst bin / overall mean loss",
                    p_value=float(result["p"]),
                    q_value=q,
                    n=int(mask.sum()),
                    counts={str(k): int(v) for k, v in subsets.items()},
                    details=details,
                )
            ],
            description=(
                f"Mean loss by {column} ({details['tested_on']}): {means}; overall {overall:.3g}."
                + (f" The worst bin also stands out by {'; '.join(others)}." if others else "")
            ),
            action=(
                f"Collect or up-weight training samples with {where}, and check that the model "
                f"can perceive what {column} describes there (e.g. resolution, labels)."
            ),
        )
