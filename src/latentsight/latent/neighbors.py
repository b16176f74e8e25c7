"""The nearest-neighbour graph over latent vectors, built once and shared by every detector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.neighbors import NearestNeighbors


@dataclass(frozen=True)
class NeighborGraph:
    """Each sample's ``k`` nearest other samples in latent space (row indices, distances)."""

    indices: np.ndarray  # N x k int64, self excluded, nearest first
    distances: np.ndarray  # N x k float32, Euclidean


EXACT_LIMIT = 20_000  # exact search below this many samples, NN-descent (seeded) above


def neighbor_graph(vectors: np.ndarray, k: int, *, seed: int = 0) -> NeighborGraph:
    """Each sample's ``k`` nearest other samples (Euclidean), nearest first, itself excluded.

    Exact brute force for small N; pynndescent's approximate search (recall ~0.97, seeded and
    deterministic) above ``EXACT_LIMIT``, where brute force grows quadratically.
    """
    n = len(vectors)
    k = min(k, n - 1)
    if n <= EXACT_LIMIT:
        distances, indices = (
            NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(vectors).kneighbors(vectors)
        )
    else:
        from pynndescent import NNDescent

        indices, distances = NNDescent(vectors, n_neighbors=k + 1, random_state=seed).neighbor_graph
    keep = indices != np.arange(n)[:, None]
    no_self = keep.all(axis=1)
    keep[no_self, -1] = False  # a row whose own index was crowded out by exact duplicates
    return NeighborGraph(
        indices=indices[keep].reshape(n, k).astype(np.int64),
        distances=distances[keep].reshape(n, k).astype(np.float32),
    )
