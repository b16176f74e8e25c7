"""AUC and Mann-Whitney p-values of every neuron against every concept, as matrix arithmetic.

Each neuron's activations are ranked once (ties get their average rank). The AUC of a concept
for a neuron is then ``U / (n1 n0)`` with ``U = (sum of the ranks of the positives) - n1(n1+1)/2``,
and the rank sums of all neurons x all concepts are one matrix product, taken over chunks of rows
so that memory stays bounded for large N. Ranks are kept doubled (integers), so rank sums are
exact in float64 and equal concepts get exactly equal AUCs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from latentsight.concepts.errors import ConceptsError

ROWS_PER_CHUNK = 4096
_EXACT_LIMIT = 8  # scipy's rule: the exact test when a group has <= 8 samples and nothing ties


@dataclass(frozen=True)
class Ranks:
    """Doubled average ranks (``N x M``) of each neuron's activations, and each neuron's ties."""

    doubled: np.ndarray  # 2 x average rank: integers stored as floats
    tie_term: np.ndarray  # M: sum over tie groups of t**3 - t (the variance's tie correction)

    @property
    def n(self) -> int:
        """Number of samples."""
        return self.doubled.shape[0]

    @property
    def m(self) -> int:
        """Number of neurons."""
        return self.doubled.shape[1]

    def select(self, neurons: np.ndarray) -> Ranks:
        """The ranks of some neurons only."""
        return Ranks(self.doubled[:, neurons], self.tie_term[neurons])


def rank_activations(activations: np.ndarray, *, columns_per_chunk: int = 64) -> Ranks:
    """Rank every neuron's activations (``N x M``) once, ties averaged, chunk of columns at a time."""
    activations = np.asarray(activations)
    if activations.ndim != 2 or activations.shape[0] < 2:
        raise ConceptsError(
            f"Activations must be N x M with N >= 2 samples; got shape {activations.shape}."
        )
    n, m = activations.shape
    dtype = np.float32 if 2 * n < 2**24 else np.float64  # doubled ranks stay exact
    doubled = np.empty((n, m), dtype=dtype)
    tie_term = np.empty(m, dtype=np.float64)
    positions = np.arange(n)
    for start in range(0, m, columns_per_chunk):
        # neurons as rows: sorting and scanning along contiguous memory
        block = np.ascontiguousarray(
            np.asarray(activations[:, start : start + columns_per_chunk], dtype=np.float64).T
        )
        if not np.isfinite(block).all():
            raise ConceptsError(
                "The activations contain NaN or infinite values; re-capture the run or drop "
                "those samples before labelling neurons."
            )
        order = np.argsort(block, axis=1)
        ordered = np.take_along_axis(block, order, axis=1)
        starts = np.ones_like(ordered, dtype=bool)
        starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        ends = np.ones_like(starts)
        ends[:, :-1] = starts[:, 1:]
        first = np.maximum.accumulate(np.where(starts, positions, 0), axis=1)
        last = np.minimum.accumulate(np.where(ends, positions, n)[:, ::-1], axis=1)[:, ::-1]
        ranked = np.empty_like(block, dtype=dtype)
        np.put_along_axis(ranked, order, (first + last + 2).astype(dtype), axis=1)
        width = slice(start, start + block.shape[0])
        doubled[:, width] = ranked.T
        sizes = np.where(starts, last - first + 1, 0).astype(np.float64)
        tie_term[width] = (sizes**3 - sizes).sum(axis=1)
    return Ranks(doubled, tie_term)


def rank_sums(
    ranks: Ranks, masks: np.ndarray, *, rows_per_chunk: int = ROWS_PER_CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """Doubled rank sums of the positives (``M x K`` float64, exact) and positive counts (``K``)."""
    sums = np.zeros((ranks.m, masks.shape[1]), dtype=np.float64)
    counts = np.zeros(masks.shape[1], dtype=np.int64)
    for start in range(0, ranks.n, rows_per_chunk):
        rows = slice(start, start + rows_per_chunk)
        block = masks[rows]
        sums += ranks.doubled[rows].T.astype(np.float64) @ block.astype(np.float64)
        counts += block.sum(axis=0)
    return sums, counts


def twice_u(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``2 U`` of the positives from doubled rank sums: ``S - n1 (n1 + 1)``, an exact integer."""
    counts = np.asarray(counts, dtype=np.float64)
    return sums - counts * (counts + 1)


def auc_from_sums(sums: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """AUC = U / (n1 n0): the chance that a positive sample outranks a negative one (NaN if none)."""
    counts = np.asarray(counts, dtype=np.float64)
    denominator = 2.0 * counts * (n - counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, twice_u(sums, counts) / denominator, np.nan)


def mann_whitney_p(
    sums: np.ndarray, counts: np.ndarray, tie_term: np.ndarray, n: int
) -> np.ndarray:
    """Two-sided Mann-Whitney U p-values, as ``scipy.stats.mannwhitneyu(outside, inside)``.

    ``sums`` and ``counts`` broadcast together, ``tie_term`` is per neuron (broadcast on the
    first axis). The normal approximation with tie and continuity correction, or the exact
    distribution where scipy's default would use it (a group of at most 8 samples, no ties).
    """
    sums = np.asarray(sums, dtype=np.float64)
    inside = np.broadcast_to(np.asarray(counts, dtype=np.float64), sums.shape)
    ties = np.broadcast_to(
        np.asarray(tie_term, dtype=np.float64).reshape((-1,) + (1,) * (sums.ndim - 1)), sums.shape
    )
    outside = n - inside
    u_inside = twice_u(sums, inside) / 2
    u = np.maximum(u_inside, inside * outside - u_inside)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.sqrt(inside * outside / 12 * ((n + 1) - ties / (n * (n - 1))))
        z = (u - inside * outside / 2 - 0.5) / spread
    p = np.clip(2 * special.ndtr(-z), 0.0, 1.0)
    p = np.where((inside > 0) & (outside > 0), p, np.nan)
    exact = (np.minimum(inside, outside) <= _EXACT_LIMIT) & (inside > 0) & (outside > 0)
    exact &= ties == 0
    if exact.any():
        p = np.array(p)
        for index in zip(*np.nonzero(exact), strict=True):
            p[index] = _exact_p(round(float(u_inside[index])), int(inside[index]), n)
    return p


def _exact_p(u: int, inside: int, n: int) -> float:
    """scipy's exact two-sided p for a U statistic: any untied sample with that U gives it."""
    chosen = np.arange(1, inside + 1)
    extra = u
    for i in range(inside - 1, -1, -1):
        step = min(n - (inside - 1 - i) - chosen[i], extra)
        chosen[i] += step
        extra -= step
    outside = np.setdiff1d(np.arange(1, n + 1), chosen)
    return float(stats.mannwhitneyu(outside, chosen, alternative="two-sided").pvalue)


@dataclass(frozen=True)
class ConceptScores:
    """AUC, p-value and positive count of every neuron (rows) x concept (columns)."""

    auc: np.ndarray
    p: np.ndarray
    counts: np.ndarray


def score_concepts(
    ranks: Ranks, masks: np.ndarray, *, rows_per_chunk: int = ROWS_PER_CHUNK
) -> ConceptScores:
    """AUC and two-sided Mann-Whitney p of every neuron for every concept column, at once."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 2 or masks.shape[0] != ranks.n:
        raise ConceptsError(
            f"The concept matrix has shape {masks.shape}; it needs one row per sample ({ranks.n})."
        )
    sums, counts = rank_sums(ranks, masks, rows_per_chunk=rows_per_chunk)
    return ConceptScores(
        auc=auc_from_sums(sums, counts, ranks.n),
        p=mann_whitney_p(sums, counts, ranks.tie_term, ranks.n),
        counts=counts,
    )
