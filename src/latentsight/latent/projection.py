"""Projection of latents: randomized PCA to a few dozen dimensions, then UMAP (or PCA) to 2-D."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from sklearn.decomposition import PCA

from latentsight.latent.neighbors import NeighborGraph

MapMethod = Literal["umap", "pca"]
UMAP_NEIGHBORS = 15


def reduce(latents: np.ndarray, n_components: int = 50, *, seed: int = 0) -> np.ndarray:
    """Randomized PCA of the latents (centred, not whitened), float32, seeded."""
    latents = np.asarray(latents, dtype=np.float32)
    components = max(1, min(n_components, latents.shape[1], len(latents) - 1))
    pca = PCA(n_components=components, svd_solver="randomized", random_state=seed)
    return pca.fit_transform(latents).astype(np.float32)


def embed_2d(
    reduced: np.ndarray, graph: NeighborGraph, *, method: MapMethod = "umap", seed: int = 0
) -> np.ndarray:
    """2-D coordinates for display: UMAP on the shared kNN graph, or the first two PCs.

    UMAP reuses the neighbour graph (no second search) and is seeded, so the same run gives
    the same map. Fewer epochs above 10k samples keep 100k samples within a minute.
    """
    if method == "pca" or len(reduced) < 4 * UMAP_NEIGHBORS:
        coords = reduced[:, :2] if reduced.shape[1] >= 2 else np.c_[reduced, np.zeros(len(reduced))]
        return np.ascontiguousarray(coords, dtype=np.float32)
    if method != "umap":
        raise ValueError(f"Unknown map method {method!r}: use 'umap' or 'pca'.")
    import umap

    n = len(reduced)
    k = min(UMAP_NEIGHBORS - 1, graph.indices.shape[1])
    indices = np.c_[np.arange(n), graph.indices[:, :k]]
    distances = np.c_[np.zeros(n, dtype=np.float32), graph.distances[:, :k]]
    reducer = umap.UMAP(
        n_neighbors=k + 1,
        n_components=2,
        random_state=seed,
        init="pca",
        n_epochs=200 if n <= 10_000 else 100,
        precomputed_knn=(indices, distances, None),
        n_jobs=1,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*knn_search_index.*", category=UserWarning)
        return reducer.fit_transform(reduced).astype(np.float32)
