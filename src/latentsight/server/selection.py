"""Statistics of a selected population against the rest, in about a millisecond on 100,000 samples.

Everything a test needs is prepared once at startup and packed by row, so that a selection costs
two gathers: one float matrix whose column sums are every value column's sum and count and every
numeric metadata column's rank sum and count, and one matrix of codes (subset and categories, in
one shared range) whose histogram is every count. Each value's position in sorted order is kept
for the medians of the columns that get reported. A selection is described from the rows of its
smaller side (the selection or the rest, whichever holds fewer samples): the other side's
figures are the totals minus these. The enrichment found is the same as
:func:`latentsight.insights.describe.enriched_metadata` (same tests, thresholds and wording).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from latentsight.insights.columns import MAX_CATEGORIES, is_categorical
from latentsight.insights.describe import MIN_AUC_DISTANCE, MIN_SHARE_RATIO, Enrichment
from latentsight.insights.stats import enrichment_test
from latentsight.report.tables import value_columns, value_label


@dataclass(frozen=True)
class _Side:
    """The rows of the smaller side of a selection, and whether they are the selection."""

    rows: np.ndarray
    inside: bool
    n_in: int

    def split(self, small: Any, total: Any) -> tuple[Any, Any]:
        """(inside, outside) from a figure summed over the small side and its total."""
        other = total - small
        return (small, other) if self.inside else (other, small)


@dataclass(frozen=True)
class _Numeric:
    """A numeric metadata column: its rank and count columns in the packed sums, and its values
    in sorted order with each row's position among them (-1 where missing)."""

    column: str
    rank_sum: int
    count: int
    position: np.ndarray
    ordered: np.ndarray
    tie_term: float

    @property
    def n(self) -> int:
        return len(self.ordered)


def _median(ordered: np.ndarray, position: Callable[[np.ndarray], np.ndarray], count: int) -> float:
    """Median of ``count`` values in sorted order, the ``j``-th being ``ordered[position(j)]``."""
    middle = position(np.array([(count - 1) // 2, count // 2]))
    low, high = ordered[middle]
    return float((low + high) / 2) if count % 2 == 0 else float(low)


class SelectionStats:
    """Describes a selection (row positions in the samples table) against the rest."""

    def __init__(self, samples: pd.DataFrame, metadata_columns: list[str]) -> None:
        self.n = len(samples)
        self.metadata_order = list(metadata_columns)
        self.value_names = value_columns(samples)
        numbers = samples[self.value_names].to_numpy(dtype=np.float64).reshape(self.n, -1)
        valid = ~np.isnan(numbers)
        sums = [np.where(valid, numbers, 0.0), valid]
        self.numeric: list[_Numeric] = []
        width = 2 * len(self.value_names)
        for column in metadata_columns:
            if is_categorical(samples[column]):
                continue
            values = samples[column].to_numpy(dtype=np.float64)
            present = np.flatnonzero(~np.isnan(values))
            if not len(present):
                continue
            ranks = np.zeros(self.n)
            ranks[present] = stats.rankdata(values[present])
            order = present[np.argsort(values[present], kind="stable")]
            position = np.full(self.n, -1, dtype=np.int64)
            position[order] = np.arange(len(order))
            _, ties = np.unique(values[present], return_counts=True)
            tie_term = float((ties.astype(np.float64) ** 3 - ties).sum())
            sums += [ranks[:, None], (position >= 0)[:, None]]
            self.numeric.append(
                _Numeric(column, width, width + 1, position, values[order], tie_term)
            )
            width += 2
        self.sums = np.ascontiguousarray(np.hstack(sums), dtype=np.float64)
        self.sum_totals = self.sums.sum(axis=0)
        groups = [("subset", samples["subset"].astype(str), False)] + [
            (c, samples[c], True) for c in metadata_columns if is_categorical(samples[c])
        ]
        self._code_groups(groups)

    def _code_groups(self, groups: list[tuple[str, pd.Series, bool]]) -> None:
        """Codes of the subset and of every categorical column with few enough categories, in
        one shared range: ``starts[j]`` to ``starts[j + 1]`` are group j's labels."""
        names, codes, labels, totals, offset = [], [], [], [], 0
        for column, series, by_count in groups:
            values = series.astype("string").fillna("<missing>")
            counts = values.value_counts()  # the describer's category order: by decreasing count
            if by_count and len(counts) > MAX_CATEGORIES:
                continue
            if not by_count:  # subsets in order of appearance
                counts = counts.reindex(list(dict.fromkeys(values.tolist())))
            lookup = {value: offset + i for i, value in enumerate(counts.index)}
            names.append(column)
            codes.append(values.map(lookup).to_numpy(dtype=np.int32))
            labels.extend(counts.index.tolist())
            totals.append(counts.to_numpy())
            offset += len(counts)
        self.code_names = names
        self.codes = np.ascontiguousarray(np.column_stack(codes))
        self.labels = np.array(labels, dtype=object)
        self.starts = np.cumsum([0, *(len(t) for t in totals)])
        self.code_totals = np.concatenate(totals)

    def _side(self, rows: np.ndarray) -> _Side:
        mask = np.zeros(self.n, dtype=bool)
        mask[rows] = True
        n_in = int(np.count_nonzero(mask))
        if n_in > self.n - n_in:
            return _Side(np.flatnonzero(~mask), False, n_in)
        return _Side(rows if n_in == len(rows) else np.flatnonzero(mask), True, n_in)

    def describe(self, rows: np.ndarray, top: int = 3) -> dict[str, Any]:
        """Size, subset mix, mean of each value column inside and outside, enriched metadata;
        ``rows`` may repeat a row, which counts once."""
        side = self._side(rows)
        small = self.sums.take(side.rows, axis=0)
        sums = side.split(np.ones(len(side.rows)) @ small, self.sum_totals)
        histogram = np.bincount(
            self.codes.take(side.rows, axis=0).ravel(), minlength=len(self.labels)
        )
        counts = side.split(histogram, self.code_totals)
        subsets = slice(self.starts[0], self.starts[1])
        mix = [
            {"subset": name, "inside": int(k_in), "outside": int(k_out)}
            for name, k_in, k_out in zip(
                self.labels[subsets], counts[0][subsets], counts[1][subsets], strict=True
            )
        ]
        k = len(self.value_names)
        values = [
            {
                "column": column,
                "label": value_label(column),
                "inside": sums[0][i] / sums[0][k + i] if sums[0][k + i] else None,
                "outside": sums[1][i] / sums[1][k + i] if sums[1][k + i] else None,
            }
            for i, column in enumerate(self.value_names)
        ]
        enriched = self._enriched(side, sums, counts, top)
        return {
            "size": side.n_in,
            "rest": self.n - side.n_in,
            "subsets": mix,
            "values": values,
            "enriched": [vars(e) for e in enriched],
        }

    def _enriched(self, side: _Side, sums: tuple, counts: tuple, top: int) -> list[Enrichment]:
        """The ``top`` metadata properties most significantly enriched inside the selection."""
        if side.n_in == 0 or side.n_in == self.n:
            return []
        # column -> (p, effect, words): worded only if reported, as medians cost most
        tested = self._categorical(side.n_in, *counts)
        for c in self.numeric:
            found = _rank_test(c, side, sums)
            if found is not None:
                tested[c.column] = found
        ranked = sorted(
            ((*tested[c], c) for c in self.metadata_order if c in tested),
            key=lambda t: (t[0], -t[1]),
        )
        return [
            Enrichment(column, words(), p, effect)
            for p, effect, words, column in ranked[:top]
            if p < 0.05
        ]

    def _categorical(self, n_in: int, k_in: np.ndarray, k_out: np.ndarray) -> dict[str, tuple]:
        """Each categorical column's most enriched category, all tested in one call."""
        share_in, share_out = k_in / n_in, k_out / max(self.n - n_in, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(share_out > 0, share_in / share_out, np.inf)
        candidates = np.flatnonzero((ratio >= MIN_SHARE_RATIO) & (share_in >= 0.1))
        candidates = candidates[candidates >= self.starts[1]]  # subsets are not metadata
        p = np.ones(len(k_in))
        if len(candidates):  # the exact test only where the thresholds can let it count
            p[candidates], _ = enrichment_test(
                k_in[candidates],
                np.full(len(candidates), n_in),
                self.code_totals[candidates],
                self.n,
            )
        tested = {}
        for j, column in enumerate(self.code_names[1:], start=1):
            best = self.starts[j] + int(np.argmin(p[self.starts[j] : self.starts[j + 1]]))
            words = (
                f"{column} = {self.labels[best]}: {share_in[best]:.0%} vs {share_out[best]:.0%} "
                "elsewhere"
            )
            tested[column] = (float(p[best]), float(ratio[best]), lambda w=words: w)
        return tested


def _rank_test(c: _Numeric, side: _Side, sums: tuple) -> tuple | None:
    """The two-sided Mann-Whitney test of a numeric column, as ``rank_test_greater`` both ways."""
    n_in, n_out = float(sums[0][c.count]), float(sums[1][c.count])
    if n_in * n_out == 0:
        return None
    u = sums[0][c.rank_sum] - n_in * (n_in + 1) / 2
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
        positions = c.position[side.rows]
        chosen = np.sort(positions[positions >= 0])
        before = chosen - np.arange(len(chosen))
        own = _median(c.ordered, lambda j: chosen[j], len(chosen))
        other = _median(
            c.ordered, lambda j: j + np.searchsorted(before, j, side="right"), c.n - len(chosen)
        )
        inside, outside = (own, other) if side.inside else (other, own)
        return f"{c.column} {direction}: median {inside:.3g} vs {outside:.3g} elsewhere"

    return min(p, 1.0), abs(auc - 0.5), words
