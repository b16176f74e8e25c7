"""The statistics every detector shares: vectorised rank tests, enrichment tests, FDR control.

Populations are boolean masks (``M x N``) so that hundreds of candidate populations are tested
at once with matrix arithmetic instead of a loop of scipy calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class RankTest:
    """One-sided Mann-Whitney U test of "inside is larger than outside", one entry per mask."""

    u: np.ndarray
    auc: np.ndarray  # U / (n_in * n_out): the chance an inside value beats an outside one
    z: np.ndarray
    p: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray


def rank_test_greater(values: np.ndarray, masks: np.ndarray) -> RankTest:
    """Mann-Whitney U (normal approximation, tie and continuity corrected) for every mask at once.

    Matches ``scipy.stats.mannwhitneyu(inside, outside, alternative="greater",
    method="asymptotic")``. NaN values are left out of both groups.
    """
    values = np.asarray(values, dtype=np.float64)
    masks = np.atleast_2d(np.asarray(masks, dtype=bool))
    valid = ~np.isnan(values)
    values, masks = values[valid], masks[:, valid]
    n = len(values)
    ranks = stats.rankdata(values)
    _, tie_counts = np.unique(values, return_counts=True)
    tie_term = float((tie_counts**3 - tie_counts).sum())
    n_in = masks.sum(axis=1).astype(np.float64)
    n_out = n - n_in
    rank_sum = masks.astype(np.float64) @ ranks
    u = rank_sum - n_in * (n_in + 1) / 2
    mean = n_in * n_out / 2
    variance = (
        n_in * n_out / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else np.zeros_like(n_in)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(variance > 0, (u - mean - 0.5) / np.sqrt(variance), 0.0)
        auc = np.where(n_in * n_out > 0, u / (n_in * n_out), 0.5)
    p = np.where(variance > 0, stats.norm.sf(z), 1.0)
    return RankTest(u=u, auc=auc, z=z, p=p, n_in=n_in.astype(int), n_out=n_out.astype(int))


def simes(u: np.ndarray, n: int) -> float:
    """Simes' combined p-value of the smallest ``len(u)`` of ``n`` p-values (the rest are 1)."""
    if u.size == 0:
        return 1.0
    ordered = np.sort(u)
    return float(min(1.0, np.min(n * ordered / np.arange(1, ordered.size + 1))))


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), the false discovery rate control used
    across everything a run tests."""
    p_values = np.asarray(p_values, dtype=np.float64)
    if p_values.size == 0:
        return p_values
    return stats.false_discovery_control(np.clip(p_values, 0.0, 1.0), method="bh")


def enrichment_test(
    k_in: np.ndarray, n_in: np.ndarray, k_total: np.ndarray, n_total: int
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided hypergeometric (Fisher exact) test that a property is over-represented inside.

    ``k_in`` of the ``n_in`` samples inside have the property, ``k_total`` of all ``n_total``.
    Returns (p-value, ratio of the share inside to the share outside).
    """
    k_in, n_in, k_total = (np.asarray(a, dtype=np.int64) for a in (k_in, n_in, k_total))
    p = stats.hypergeom.sf(k_in - 1, n_total, k_total, n_in)
    share_in = k_in / np.maximum(n_in, 1)
    share_out = (k_total - k_in) / np.maximum(n_total - n_in, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(share_out > 0, share_in / share_out, np.inf)
    return np.clip(p, 0.0, 1.0), ratio


def binomial_test(k: np.ndarray, n: np.ndarray, p0: float) -> np.ndarray:
    """Two-sided exact binomial test of ``k`` successes in ``n`` against probability ``p0``."""
    return np.array(
        [
            stats.binomtest(int(ki), int(ni), p0).pvalue if ni > 0 else 1.0
            for ki, ni in zip(k, n, strict=True)
        ]
    )


def binomial_test_greater(k: np.ndarray, n: np.ndarray, p0: np.ndarray | float) -> np.ndarray:
    """One-sided exact binomial test of "more than chance": P(X >= k), X ~ Binomial(n, p0).

    Vectorised (``p0`` may differ per entry); matches ``scipy.stats.binomtest(k, n, p0,
    alternative="greater")``.
    """
    k, n = np.asarray(k, dtype=np.int64), np.asarray(n, dtype=np.int64)
    p = stats.binom.sf(k - 1, n, np.clip(np.asarray(p0, dtype=np.float64), 0.0, 1.0))
    return np.where(k <= 0, 1.0, np.clip(p, 0.0, 1.0))
