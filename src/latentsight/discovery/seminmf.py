"""Semi-NMF (Ding, Li and Jordan, 2010): A ~ U W with U >= 0 and W signed, for signed latents.

Alternating least squares: W is the least-squares solution given U, and U is updated by
coordinate descent on its columns (HALS: each column's exact non-negative least-squares step
with the others fixed), which converges much faster than the paper's multiplicative rule.
U starts from a seeded k-means assignment plus 0.2, as in the paper.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

_EPS = 1e-12


def update_codes(
    latents: np.ndarray, components: np.ndarray, codes: np.ndarray, sweeps: int
) -> np.ndarray:
    """Coordinate-descent sweeps over the columns of the codes U >= 0 with W held fixed."""
    codes = codes.copy()
    gram = components @ components.T
    cross = latents @ components.T
    for _ in range(sweeps):
        for j in range(codes.shape[1]):
            if gram[j, j] <= _EPS:
                codes[:, j] = 0.0
                continue
            step = (cross[:, j] - codes @ gram[:, j]) / gram[j, j]
            codes[:, j] = np.maximum(codes[:, j] + step, 0.0)
    return codes


def _least_squares(codes: np.ndarray, latents: np.ndarray) -> np.ndarray:
    """W minimising ||A - U W|| (normal equations, a tiny ridge for a column of zeros)."""
    gram = codes.T @ codes
    gram[np.diag_indices_from(gram)] += _EPS * max(float(np.trace(gram)), 1.0)
    return np.linalg.solve(gram, codes.T @ latents)


def semi_nmf(
    latents: np.ndarray, k: int, *, seed: int = 0, max_iter: int = 500, tol: float = 1e-5
) -> tuple[np.ndarray, np.ndarray]:
    """Factorise signed ``N x D`` latents as ``U (N x k, >= 0) @ W (k x D)``; returns (U, W)."""
    labels = KMeans(k, n_init=1, random_state=seed).fit_predict(latents)
    codes = np.full((latents.shape[0], k), 0.2)
    codes[np.arange(latents.shape[0]), labels] += 1.0
    previous = np.inf
    for _ in range(max_iter):
        components = _least_squares(codes, latents)
        codes = update_codes(latents, components, codes, 1)
        error = float(np.linalg.norm(latents - codes @ components))
        if np.isfinite(previous) and previous - error <= tol * max(previous, _EPS):
            break
        previous = error
    return codes, _least_squares(codes, latents)
