"""Choosing the number of concepts k: split-half stability and reconstruction gain over a sweep.

For each k the latents are factorised whole (reconstruction error) and as two random halves;
the halves' dictionaries are matched one to one by the Hungarian algorithm on the cosine of
their directions, and the mean matched cosine is the stability. The chosen k is the smallest
whose stability is at least ``min_stability`` and whose next k lowers the relative error by less
than ``max_gain`` (relative, per extra concept): the directions are reproducible and one more
concept explains little. Without such k, the most stable k is taken, and the sweep says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from latentsight.discovery.dictionary import fit_dictionary
from latentsight.discovery.errors import DiscoveryError


def matched_cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cosine of each direction of ``first`` with its Hungarian match in ``second`` (k x D each,
    or ``second`` with more rows); one value per row of ``first``."""
    a = first / np.maximum(np.linalg.norm(first, axis=1, keepdims=True), 1e-12)
    b = second / np.maximum(np.linalg.norm(second, axis=1, keepdims=True), 1e-12)
    cosine = a @ b.T
    rows, cols = linear_sum_assignment(cosine, maximize=True)
    matched = np.empty(a.shape[0])
    matched[rows] = cosine[rows, cols]
    return matched


def split_half_stability(latents: np.ndarray, k: int, *, method: str, seed: int) -> float:
    """Mean Hungarian-matched cosine between the dictionaries of two random halves."""
    order = np.random.default_rng(seed).permutation(latents.shape[0])
    half = latents.shape[0] // 2
    _, first = fit_dictionary(latents[order[:half]], k, method=method, seed=seed)
    _, second = fit_dictionary(latents[order[half:]], k, method=method, seed=seed)
    return float(matched_cosines(first.components, second.components).mean())


@dataclass(frozen=True)
class KChoice:
    """The chosen k, why, and the sweep's figures (k, error, gain, stability, chosen)."""

    k: int
    reason: str
    sweep: pd.DataFrame


def default_ks(n: int, d: int, largest: int = 12) -> list[int]:
    """The ks swept by default: 2 up to ``largest``, fewer for small data."""
    top = min(largest, d, max(n // 20, 2))
    return list(range(2, top + 1))


def choose_k(
    latents: np.ndarray,
    ks: Sequence[int],
    *,
    method: str = "auto",
    seed: int = 0,
    min_stability: float = 0.8,
    max_gain: float = 0.02,
) -> KChoice:
    """Sweep ``ks`` and pick the smallest stable k beyond which an extra concept gains little."""
    ks = sorted({int(k) for k in ks})
    if len(ks) < 2 or ks[0] < 1:
        raise DiscoveryError(f"ks={ks}: give at least two values of k >= 1 to sweep.")
    latents = np.asarray(latents, dtype=np.float64)
    if latents.shape[0] < 2 * ks[-1]:
        raise DiscoveryError(
            f"{latents.shape[0]} samples are too few to sweep k up to {ks[-1]} (each half must "
            "hold at least k samples): sweep smaller ks or give k explicitly."
        )
    errors = [fit_dictionary(latents, k, method=method, seed=seed)[1].error for k in ks]
    stability = [split_half_stability(latents, k, method=method, seed=seed) for k in ks]
    gains = [
        (errors[i] - errors[i + 1]) / max(errors[i], 1e-12) / (ks[i + 1] - ks[i])
        for i in range(len(ks) - 1)
    ] + [np.nan]
    chosen = next(
        (i for i in range(len(ks) - 1) if stability[i] >= min_stability and gains[i] < max_gain),
        None,
    )
    if chosen is None:
        chosen = int(np.argmax(stability))
        reason = (
            f"no k had stability >= {min_stability} and gain < {max_gain:.0%}; "
            f"took the most stable (stability {stability[chosen]:.2f})"
        )
    else:
        reason = (
            f"smallest k with stability {stability[chosen]:.2f} >= {min_stability} and gain "
            f"{gains[chosen]:.1%} < {max_gain:.0%} per extra concept"
        )
    sweep = pd.DataFrame(
        {
            "k": ks,
            "error": errors,
            "gain": gains,
            "stability": stability,
            "chosen": [i == chosen for i in range(len(ks))],
        }
    )
    return KChoice(ks[chosen], reason, sweep)
