"""UMAP's fuzzy simplicial set of a neighbour graph, computed with numpy.

umap-learn computes it with numba functions that are compiled anew in every process (about five
seconds on two cores, more than the computation itself at 100,000 samples). This is the same
construction (McInnes et al. 2018, section 3; umap-learn's ``smooth_knn_dist`` and
``compute_membership_strengths``), vectorised across samples; the tests compare it with
umap-learn's own. The layout is still optimised by umap-learn.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

_TOLERANCE = 1e-5  # umap-learn's SMOOTH_K_TOLERANCE
_MIN_SCALE = 1e-3  # umap-learn's MIN_K_DIST_SCALE
_ITERATIONS = 64


def fuzzy_graph(indices: np.ndarray, distances: np.ndarray) -> sparse.csr_matrix:
    """The symmetric fuzzy membership graph (N x N) of a kNN graph whose rows list each sample
    itself first (at distance 0), then its neighbours, nearest first."""
    distances = np.asarray(distances, dtype=np.float32)
    n, k = distances.shape
    rho = _nearest_positive(distances)
    sigma = _bandwidths(distances, rho, np.log2(k))
    excess = np.maximum(distances - rho[:, None], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = np.where(sigma[:, None] == 0, 1.0, np.exp(-excess / sigma[:, None]))
    strength[indices == np.arange(n)[:, None]] = 0.0
    rows = np.repeat(np.arange(n), k)
    graph = sparse.coo_matrix(
        (strength.ravel().astype(np.float32), (rows, indices.ravel())), shape=(n, n)
    ).tocsr()
    graph.eliminate_zeros()
    union = graph + graph.T - graph.multiply(graph.T)
    union.eliminate_zeros()
    return union.tocsr()


def _nearest_positive(distances: np.ndarray) -> np.ndarray:
    """Each row's smallest positive distance (0 when it has none)."""
    positive = np.where(distances > 0, distances, np.inf).min(axis=1)
    return np.where(np.isfinite(positive), positive, 0.0).astype(np.float32)


def _bandwidths(distances: np.ndarray, rho: np.ndarray, target: float) -> np.ndarray:
    """Per row, the sigma at which the neighbours' memberships sum to ``target`` (binary search,
    as umap-learn runs it), floored at a thousandth of the mean neighbour distance."""
    n = len(distances)
    excess = np.maximum(distances[:, 1:] - rho[:, None], 0.0)
    low, high = np.zeros(n), np.full(n, np.inf)
    mid = np.ones(n)
    searching = np.ones(n, dtype=bool)
    for _ in range(_ITERATIONS):
        rows = np.flatnonzero(searching)
        if not len(rows):
            break
        total = np.exp(-excess[rows] / mid[rows, None]).sum(axis=1)  # 1 where excess <= 0
        done = np.abs(total - target) < _TOLERANCE
        over = ~done & (total > target)
        under = ~done & ~over
        high[rows[over]] = mid[rows[over]]
        mid[rows[over]] = (low[rows[over]] + high[rows[over]]) / 2
        low[rows[under]] = mid[rows[under]]
        bounded = np.isfinite(high[rows[under]])
        grown = rows[under]
        mid[grown] = np.where(bounded, (low[grown] + high[grown]) / 2, mid[grown] * 2)
        searching[rows[done]] = False
    floor = _MIN_SCALE * np.where(rho > 0, distances.mean(axis=1), distances.mean())
    return np.maximum(mid, floor).astype(np.float32)
