"""Statistics of a selected population against the rest, in about a millisecond on 100,000 samples.

Everything a test needs is prepared once at startup: category codes and counts, the ranks of
every numeric metadata column and each value's position in sorted order, the value columns as
one matrix. A selection is then described from the rows of its smaller side (the selection or
the rest, whichever holds fewer samples): the other side's figures are the totals minus these.
The enrichment found is the same as :func:`latentsight.insights.describe.enriched_metadata`
(same tests, thresholds and wording).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

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
class _Side:
    """The rows of the smaller side of a selection, and whether they are the selection."""

    rows: np.ndarray  # sorted row positions
    inside: bool
    n_in: int
    n: int

    def split(self, small: np.ndarray, total: np.ndarray | float) -> tuple[Any, Any]:
        """(inside, outside) from a figure summed over the small side and its total."""
        other = total - small
        return (small, other) if self.inside else (other, small)


@dataclass(frozen=True)
class _Numeric:
    column: str
    ranks: np.ndarray  # float64 ranks among the valid values, 0 where missing
    position: np.ndarray  # int64 position of each value in sorted order, -1 where missing
    ordered: np.ndarray  # the valid values, sorted
    tie_term: float

    @property
    def n(self) -> int:
        return len(self.ordered)


@dataclass(frozen=True)
class _Categories:
    """Every categorical metadata column coded into one shared range, so that one count over a
    selection's rows serves them all."""

    columns: list[str]
    codes: np.ndarray  # rows x columns int64: column j's codes offset by starts[j]
    labels: np.ndarray  # each column's categories in turn, by decreasing count (value_counts)
    starts: np.ndarray  # where each column's categories begin in ``labels``; one more at the end
    totals: np.ndarray  # count of each category over every sample


def _median(ordered: np.ndarray, position: Callable[[np.ndarray], np.ndarray], count: int) -> float:
    """Median of ``count`` values in sorted order, the ``j``-th being ``ordered[position(j)]``."""
    middle = position(np.array([(count - 1) // 2, count // 2]))
    low, high = ordered[middle]
    return float((low + high) / 2) if count % 2 == 0 else float(low)


class SelectionStats:
    """Describes a selection (row positions in the samples table) against the rest."""

    def __init__(self, samples: pd.DataFrame, metadata_columns: list[str]) -> None:
        self.n = len(samples)
        subsets = samples["subset"].astype(str)
        self.subset_names = list(dict.fromkeys(subsets.tolist()))
        self.subset_codes = subsets.map(
            {name: i for i, name in enumerate(self.subset_names)}
        ).to_numpy(np.int64)
        self.subset_totals = np.bincount(self.subset_codes, minlength=len(self.subset_names))
        self.value_names = value_columns(samples)
        numbers = samples[self.value_names].to_numpy(dtype=np.float64).reshape(self.n, -1).T
        valid = ~np.isnan(numbers)
        # one gather sums every value column and counts its valid entries
        self.value_matrix = np.ascontiguousarray(
            np.vstack([np.where(valid, numbers, 0.0), valid.astype(np.float64)])
        )
        self.value_totals = self.value_matrix.sum(axis=1)
        self.metadata_order = list(metadata_columns)
        self.numeric = [
            prepared
            for column in metadata_columns
            if not is_categorical(samples[column])
            and (prepared := _numeric(samples[column], column)) is not None
        ]
        self.categories = _categories(
            samples, [c for c in metadata_columns if is_categorical(samples[c])]
        )

    def _side(self, rows: np.ndarray) -> _Side:
        mask = np.zeros(self.n, dtype=bool)
        mask[rows] = True
        n_in = int(np.count_nonzero(mask))
        if n_in > self.n - n_in:
            return _Side(np.flatnonzero(~mask), False, n_in, self.n)
        return _Side(rows if n_in == len(rows) else np.flatnonzero(mask), True, n_in, self.n)

    def describe(self, rows: np.ndarray, top: int = 3) -> dict[str, Any]:
        """Size, subset mix, mean of each value column inside and outside, enriched metadata;
        ``rows`` may repeat a row, which counts once."""
        side = self._side(rows)
        counts_in, _ = side.split(
            np.bincount(self.subset_codes[side.rows], minlength=len(self.subset_names)),
            self.subset_totals,
        )
        mix = [
            {"subset": name, "inside": int(k), "outside": int(total - k)}
            for name, k, total in zip(self.subset_names, counts_in, self.subset_totals, strict=True)
        ]
        sums_in, sums_out = side.split(
            self.value_matrix.take(side.rows, axis=1).sum(axis=1), self.value_totals
        )
        k = len(self.value_names)
        values = [
            {
                "column": column,
                "label": value_label(column),
                "inside": sums_in[i] / sums_in[k + i] if sums_in[k + i] else None,
                "outside": sums_out[i] / sums_out[k + i] if sums_out[k + i] else None,
            }
            for i, column in enumerate(self.value_names)
        ]
        return {
            "size": side.n_in,
            "rest": self.n - side.n_in,
            "subsets": mix,
            "values": values,
            "enriched": [vars(e) for e in self._enriched(side, top)],
        }

    def enriched(self, rows: np.ndarray, top: int = 3) -> list[Enrichment]:
        """The ``top`` metadata properties most significantly enriched inside the selection."""
        return self._enriched(self._side(rows), top)

    def _enriched(self, side: _Side, top: int) -> list[Enrichment]:
        if side.n_in == 0 or side.n_in == self.n:
            return []
        # column -> (p, effect, words): worded only if reported, as medians cost most
        tested = self._categorical(side)
        for prepared in self.numeric:
            found = _numeric_test(prepared, side)
            if found is not None:
                tested[prepared.column] = found
        ranked = sorted(
            ((*tested[c], c) for c in self.metadata_order if c in tested),
            key=lambda t: (t[0], -t[1]),
        )
        return [
            Enrichment(column, words(), p, effect)
            for p, effect, words, column in ranked[:top]
            if p < 0.05
        ]

    def _categorical(self, side: _Side) -> dict[str, tuple]:
        """Each categorical column's most enriched category, all tested in one call."""
        c, n_in = self.categories, side.n_in
        if not c.columns:
            return {}
        k_in, k_out = side.split(
            np.bincount(c.codes[side.rows].ravel(), minlength=len(c.labels)), c.totals
        )
        share_in, share_out = k_in / n_in, k_out / max(self.n - n_in, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(share_out > 0, share_in / share_out, np.inf)
        candidates = np.flatnonzero((ratio >= MIN_SHARE_RATIO) & (share_in >= 0.1))
        p = np.ones(len(k_in))
        if len(candidates):  # the exact test only where the thresholds can let it count
            p[candidates], _ = enrichment_test(
                k_in[candidates], np.full(len(candidates), n_in), c.totals[candidates], self.n
            )
        tested = {}
        for j, column in enumerate(c.columns):
            best = c.starts[j] + int(np.argmin(p[c.starts[j] : c.starts[j + 1]]))
            words = (
                f"{column} = {c.labels[best]}: {share_in[best]:.0%} vs {share_out[best]:.0%} "
                "elsewhere"
            )
            tested[column] = (float(p[best]), float(ratio[best]), lambda w=words: w)
        return tested


def _numeric(series: pd.Series, column: str) -> _Numeric | None:
    values = series.to_numpy(dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(values))
    if not len(valid):
        return None
    ranks = np.zeros(len(values))
    ranks[valid] = stats.rankdata(values[valid])
    order = valid[np.argsort(values[valid], kind="stable")]
    position = np.full(len(values), -1, dtype=np.int64)
    position[order] = np.arange(len(order))
    _, ties = np.unique(values[valid], return_counts=True)
    tie_term = float((ties.astype(np.float64) ** 3 - ties).sum())
    return _Numeric(column, ranks, position, values[order], tie_term)


def _categories(samples: pd.DataFrame, columns: list[str]) -> _Categories:
    kept, codes, labels, totals = [], [], [], []
    offset = 0
    for column in columns:
        values = samples[column].astype("string").fillna("<missing>")
        counts = values.value_counts()
        if len(counts) > MAX_CATEGORIES:
            continue
        lookup = {value: offset + i for i, value in enumerate(counts.index)}
        kept.append(column)
        codes.append(values.map(lookup).to_numpy(dtype=np.int64))
        labels.extend(counts.index.tolist())
        totals.append(counts.to_numpy())
        offset += len(counts)
    starts = np.cumsum([0, *(len(t) for t in totals)])
    return _Categories(
        kept,
        np.column_stack(codes) if codes else np.zeros((len(samples), 0), np.int64),
        np.array(labels, dtype=object),
        starts,
        np.concatenate(totals) if totals else np.zeros(0, np.int64),
    )


def _numeric_test(c: _Numeric, side: _Side) -> tuple | None:
    """The two-sided rank test of a numeric column, as rank_test_greater both ways."""
    positions = c.position[side.rows]
    small = positions[positions >= 0]
    n_in, n_out = (float(v) for v in side.split(len(small), c.n))
    if n_in * n_out == 0:
        return None
    rank_sum, _ = side.split(float(c.ranks[side.rows].sum()), c.n * (c.n + 1) / 2)
    u = rank_sum - n_in * (n_in + 1) / 2
    auc = u / (n_in * n_out)
    if abs(auc - 0.5) < MIN_AUC_DISTANCE:
        return None
    variance = n_in * n_out / 12 * ((c.n + 1) - c.tie_term / (c.n * (c.n - 1)))
    if variance <= 0:
        p = 1.0
    else:  # the normal tail as scipy.stats.norm.sf computes it, without its overhead
        centre = n_in * n_out / 2
        greater = special.ndtr(-(u - centre - 0.5) / np.sqrt(variance))
        less = special.ndtr(-(n_in * n_out - u - centre - 0.5) / np.sqrt(variance))
        p = float(min(greater, less) * 2)
    direction = "higher" if auc > 0.5 else "lower"

    def words() -> str:
        # the j-th value of the small side is ordered[chosen[j]]; the j-th of the other side
        # sits after as many of the small side's positions as precede it
        chosen = np.sort(small)
        before = chosen - np.arange(len(chosen))
        own = _median(c.ordered, lambda j: chosen[j], len(chosen))
        other = _median(
            c.ordered, lambda j: j + np.searchsorted(before, j, side="right"), c.n - len(chosen)
        )
        inside, outside = (own, other) if side.inside else (other, own)
        return f"{c.column} {direction}: median {inside:.3g} vs {outside:.3g} elsewhere"

    return min(p, 1.0), abs(auc - 0.5), words
