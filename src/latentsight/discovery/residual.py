"""The squared reconstruction error of a factorisation A ~ U W, from Gram matrices.

``||A - U W||^2 = ||A||^2 - 2 <U, A W^T> + <U^T U, W W^T>``, summed in float64 over blocks of
rows: no N x D residual is formed and a large float32 layer is never copied whole.
"""

from __future__ import annotations

import numpy as np

CHUNK = 16384  # rows per block


def squared_error(
    latents: np.ndarray, codes: np.ndarray, components: np.ndarray
) -> tuple[float, float]:
    """``||A - U W||^2`` and ``||A||^2``."""
    components = np.asarray(components, dtype=np.float64)
    gram = components @ components.T
    residual = total = 0.0
    for start in range(0, latents.shape[0], CHUNK):
        block = np.asarray(latents[start : start + CHUNK], dtype=np.float64)
        part = np.asarray(codes[start : start + CHUNK], dtype=np.float64)
        square = float(np.einsum("ij,ij->", block, block))
        cross = float(np.einsum("ij,ij->", part, block @ components.T))
        residual += square - 2.0 * cross + float(np.einsum("ij,ij->", part.T @ part, gram))
        total += square
    return max(residual, 0.0), total
