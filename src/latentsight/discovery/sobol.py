"""Sobol total indices of concepts, as CRAFT estimates them: a scrambled Sobol quasi-Monte Carlo
design of masks and the Jansen estimator.

The design stacks ``A``, ``B`` (n x k masks in [0, 1]) and, for each concept i, ``A`` with
column i taken from ``B``; the total index of i is ``mean((f(A) - f(A_B^i))^2) / (2 Var f)``.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import qmc

from latentsight.discovery.errors import DiscoveryError


def sobol_design(k: int, n: int = 32, seed: int = 0) -> np.ndarray:
    """The ``n (k + 2)`` x k masks: A, B, then the k matrices A with one column from B."""
    if n < 2 or n & (n - 1):
        raise DiscoveryError(f"design={n}: give a power of two >= 2 (e.g. 32).")
    sample = qmc.Sobol(2 * k, scramble=True, seed=seed).random(n)
    a, b = sample[:, :k], sample[:, k:]
    mixed = np.repeat(a[None], k, axis=0)
    mixed[np.arange(k), :, np.arange(k)] = b.T
    return np.concatenate([a, b, mixed.reshape(-1, k)])


def jansen_total(outputs: np.ndarray, k: int) -> np.ndarray:
    """Total indices (... x k) from the outputs (... x n (k + 2)) over the design's rows."""
    outputs = np.asarray(outputs, dtype=np.float64)
    n = outputs.shape[-1] // (k + 2)
    f_a, f_b = outputs[..., :n], outputs[..., n : 2 * n]
    f_c = outputs[..., 2 * n :].reshape(*outputs.shape[:-1], k, n)
    variance = np.concatenate([f_a, f_b], axis=-1).var(axis=-1)[..., None]
    spread = ((f_a[..., None, :] - f_c) ** 2).mean(axis=-1) / 2.0
    return np.divide(spread, variance, out=np.zeros_like(spread), where=variance > 1e-18)


def linear_total(codes: np.ndarray, projections: np.ndarray) -> np.ndarray:
    """Closed-form total indices for a linear head: ``(u_i b_i)^2 / sum_j (u_j b_j)^2``."""
    terms = (np.asarray(codes, np.float64) * projections) ** 2
    total = terms.sum(axis=-1, keepdims=True)
    return np.divide(terms, total, out=np.zeros_like(terms), where=total > 0)
