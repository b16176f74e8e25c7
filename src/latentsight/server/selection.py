"""Statistics of a selected population against the rest, in milliseconds on 100,000 samples.

The ranks of every numeric metadata column and the codes of every categorical one are computed
once, so describing a selection is a few masked sums. The enrichment found is the same as
:func:`latentsight.insights.describe.enriched_metadata` (same tests, thresholds and wording).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from latentsight.insights.describe import (
    MAX_CATEGORIES,
    MIN_AUC_DISTANCE,
    MIN_SHARE_RATIO,
    Enrichment,
    is_categorical,
)
from latentsight.insights.stats import enrichment_test
from latentsight.report.tables import value_columns, value_label


@dataclass(frozen=True)
class _Numeric:
    column: str
    values: np.ndarray  # float64, NaN kept
    valid: np.ndarray  # bool
    ranks: np.ndarray  # ranks of the valid values, 0 where invalid
    tie_term: float
    n: int


@dataclass(frozen=True)
class _Categorical:
    column: str
    codes: np.ndarray  # int, in the order of ``categories``
    categories: np.ndarray  # by decreasing count, as value_counts gives them
    totals: np.ndarray


class SelectionStats:
    """Describes a selection (a boolean mask over the samples) against the rest."""

    def __init__(self, samples: pd.DataFrame, metadata_columns: list[str]) -> None:
        self.n = len(samples)
        subsets = samples["subset"].astype(str)
        self.subset_names = list(dict.fromkeys(subsets.tolist()))
        self.subset_codes = subsets.map(
            {name: i for i, name in enumerate(self.subset_names)}
        ).to_numpy(np.int64)
        self.subset_totals = np.bincount(self.subset_codes, minlength=len(self.subset_names))
        self.values = {}  # column -> (values with NaN as 0, valid mask, total, valid count)
        for column in value_columns(samples):
            numbers = samples[column].to_numpy(dtype=np.float64)
            valid = ~np.isnan(numbers)
            filled = np.where(valid, numbers, 0.0)
            self.values[column] = (filled, valid, float(filled.sum()), int(valid.sum()))
        self.columns: list[_Numeric | _Categorical] = []
        for column in metadata_columns:
            prepared = self._prepare(samples[column], column)
            if prepared is not None:
                self.columns.append(prepared)

    @staticmethod
    def _prepare(series: pd.Series, column: str) -> _Numeric | _Categorical | None:
        if is_categorical(series):
            labels = series.astype("string").fillna("<missing>")
            counts = labels.value_counts()
            if len(counts) > MAX_CATEGORIES:
                return None
            categories = counts.index.to_numpy()
            lookup = {value: i for i, value in enumerate(categories)}
            codes = labels.map(lookup).to_numpy(dtype=np.int64)
            return _Categorical(column, codes, categories, counts.to_numpy())
        values = series.to_numpy(dtype=np.float64)
        valid = ~np.isnan(values)
        if not valid.any():
            return None
        ranks = np.zeros(len(values))
        ranks[valid] = stats.rankdata(values[valid])
        _, ties = np.unique(values[valid], return_counts=True)
        tie_term = float((ties.astype(np.float64) ** 3 - ties).sum())
        return _Numeric(column, values, valid, ranks, tie_term, int(valid.sum()))

    def describe(self, mask: np.ndarray, top: int = 3) -> dict[str, Any]:
        """Size, subset mix, mean of each value column inside and outside, enriched metadata."""
        inside = int(mask.sum())
        counts = np.bincount(self.subset_codes[mask], minlength=len(self.subset_names))
        mix = [
            {"subset": name, "inside": int(k), "outside": int(total - k)}
            for name, k, total in zip(self.subset_names, counts, self.subset_totals, strict=True)
        ]
        values = []
        for column, (filled, valid, total, n_valid) in self.values.items():
            sum_in, n_in = float(filled[mask].sum()), int(np.count_nonzero(valid[mask]))
            values.append(
                {
                    "column": column,
                    "label": value_label(column),
                    "inside": sum_in / n_in if n_in else None,
                    "outside": (total - sum_in) / (n_valid - n_in) if n_valid > n_in else None,
                }
            )
        return {
            "size": inside,
            "rest": self.n - inside,
            "subsets": mix,
            "values": values,
            "enriched": [vars(e) for e in self.enriched(mask, top)],
        }

    def enriched(self, mask: np.ndarray, top: int = 3) -> list[Enrichment]:
        """The ``top`` metadata properties most significantly enriched inside the mask."""
        n_in = int(mask.sum())
        if n_in == 0 or n_in == self.n:
            return []
        tested = []  # (p, effect, column, words), worded only if reported: medians cost most
        for prepared in self.columns:
            if isinstance(prepared, _Categorical):
                tested.append(self._categorical(prepared, mask, n_in))
            else:
                found = self._numeric(prepared, mask)
                if found is not None:
                    tested.append(found)
        tested.sort(key=lambda t: (t[0], -t[1]))
        return [
            Enrichment(prepared.column, words(), p, effect)
            for p, effect, prepared, words in tested[:top]
            if p < 0.05
        ]

    def _categorical(self, c: _Categorical, mask: np.ndarray, n_in: int) -> tuple:
        k_in = np.bincount(c.codes[mask], minlength=len(c.categories))
        share_out = (c.totals - k_in) / max(self.n - n_in, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(share_out > 0, (k_in / n_in) / share_out, np.inf)
        candidates = np.flatnonzero((ratio >= MIN_SHARE_RATIO) & (k_in / n_in >= 0.1))
        p = np.ones(len(k_in))
        if len(candidates):  # the exact test only where the thresholds can let it count
            p[candidates], _ = enrichment_test(
                k_in[candidates], np.full(len(candidates), n_in), c.totals[candidates], self.n
            )
        best = int(np.argmin(p))
        share_in, share_rest = k_in[best] / n_in, share_out[best]

        def words() -> str:
            return (
                f"{c.column} = {c.categories[best]}: {share_in:.0%} vs {share_rest:.0%} elsewhere"
            )

        return float(p[best]), float(ratio[best]), c, words

    def _numeric(self, c: _Numeric, mask: np.ndarray) -> tuple | None:
        chosen = mask & c.valid
        n_in = float(np.count_nonzero(chosen))
        n_out = c.n - n_in
        if n_in * n_out == 0:
            return None
        u = float(c.ranks[chosen].sum()) - n_in * (n_in + 1) / 2
        auc = u / (n_in * n_out)
        if abs(auc - 0.5) < MIN_AUC_DISTANCE:
            return None
        variance = n_in * n_out / 12 * ((c.n + 1) - c.tie_term / (c.n * (c.n - 1)))
        if variance <= 0:
            p = 1.0
        else:
            centre = n_in * n_out / 2
            greater = stats.norm.sf((u - centre - 0.5) / np.sqrt(variance))
            less = stats.norm.sf((n_in * n_out - u - centre - 0.5) / np.sqrt(variance))
            p = float(min(greater, less) * 2)
        direction = "higher" if auc > 0.5 else "lower"

        def words() -> str:
            inside, outside = np.nanmedian(c.values[mask]), np.nanmedian(c.values[~mask])
            return f"{c.column} {direction}: median {inside:.3g} vs {outside:.3g} elsewhere"

        return min(p, 1.0), abs(auc - 0.5), c, words
