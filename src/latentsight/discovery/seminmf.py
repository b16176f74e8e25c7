"""Semi-NMF (Ding, Li and Jordan, 2010): A ~ U W with U >= 0 and W signed, for signed latents.

Alternating least squares: W is the least-squares solution given U, and U is updated by
coordinate descent on its columns (HALS: each column's exact non-negative least-squares step
with the others fixed), which converges much faster than the paper's multiplicative rule.
Semi-NMF alone is not identifiable: for any non-negative mixing Q, (U Q)(Q^-1 W) fits as well,
with denser codes over more extreme directions. Among those fits the planted one has the least
L1 norm of codes over unit directions, so the fit first minimises the error plus a small L1
penalty on U (``SPARSITY`` times the root mean square row norm, W's rows held at unit norm),
from ``RESTARTS`` seeded starts, each a k-means assignment plus 0.2 as in the paper; the start
with the lowest penalised objective is then polished without the penalty (``POLISH`` sweeps), so
the error is the least-squares one.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from latentsight.discovery.residual import squared_error

RESTARTS = 4
SPARSITY = 0.03  # the L1 weight on the codes, relative to the latents' root mean square row norm
POLISH = 30
_EPS = 1e-12


def update_codes(
    latents: np.ndarray,
    components: np.ndarray,
    codes: np.ndarray,
    sweeps: int,
    *,
    l1: float = 0.0,
    tol: float = 0.0,
) -> np.ndarray:
    """Coordinate-descent sweeps over the columns of the codes U >= 0 with W held fixed,
    minimising ``||A - U W||^2 / 2 + l1 * sum(U)``; A W^T is formed once, so a sweep costs
    N k^2. Stops early once a sweep changes U by at most ``tol`` (relative, in norm)."""
    codes = codes.copy()
    gram = components @ components.T
    cross = latents @ components.T - l1
    for _ in range(sweeps):
        change = 0.0
        for j in range(codes.shape[1]):
            if gram[j, j] <= _EPS:
                codes[:, j] = 0.0
                continue
            step = (cross[:, j] - codes @ gram[:, j]) / gram[j, j]
            column = np.maximum(codes[:, j] + step, 0.0)
            if tol:
                change += float(np.square(column - codes[:, j]).sum())
            codes[:, j] = column
        if tol and change <= tol**2 * float(np.square(codes).sum()):
            break
    return codes


def _least_squares(codes: np.ndarray, latents: np.ndarray) -> np.ndarray:
    """W minimising ||A - U W|| (normal equations, a tiny ridge for a column of zeros)."""
    gram = codes.T @ codes
    gram[np.diag_indices_from(gram)] += _EPS * max(float(np.trace(gram)), 1.0)
    return np.linalg.solve(gram, codes.T @ latents)


def _start(latents: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Ding et al.'s start: a seeded k-means assignment plus 0.2 everywhere."""
    labels = KMeans(k, n_init=1, random_state=seed).fit_predict(latents)
    codes = np.full((latents.shape[0], k), 0.2)
    codes[np.arange(latents.shape[0]), labels] += 1.0
    return codes


def _sparse_fit(
    latents: np.ndarray, codes: np.ndarray, l1: float, max_iter: int, tol: float
) -> tuple[np.ndarray, float]:
    """Alternate W (unit rows) and the L1-penalised codes; returns U and the objective."""
    previous = objective = np.inf
    for _ in range(max_iter):
        components = _least_squares(codes, latents)
        norms = np.linalg.norm(components, axis=1)
        norms = np.where(norms > _EPS, norms, 1.0)
        components /= norms[:, None]
        codes = update_codes(latents, components, codes * norms, 1, l1=l1)
        error, _ = squared_error(latents, codes, components)
        objective = 0.5 * error + l1 * float(codes.sum())
        if np.isfinite(previous) and previous - objective <= tol * max(previous, _EPS):
            break
        previous = objective
    return codes, objective


def semi_nmf(
    latents: np.ndarray, k: int, *, seed: int = 0, max_iter: int = 500, tol: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Factorise signed ``N x D`` latents as ``U (N x k, >= 0) @ W (k x D)``; returns (U, W)."""
    l1 = SPARSITY * np.sqrt(float(np.square(latents).sum()) / latents.shape[0])
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, RESTARTS)
    fits = [_sparse_fit(latents, _start(latents, k, int(s)), l1, max_iter, tol) for s in seeds]
    codes = min(fits, key=lambda fit: fit[1])[0]
    for _ in range(POLISH):
        codes = update_codes(latents, _least_squares(codes, latents), codes, 1)
    return codes, _least_squares(codes, latents)
