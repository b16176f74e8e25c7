"""Projection of latents: PCA to a few dozen dimensions, then UMAP (or PCA) to 2-D."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.decomposition import PCA

from latentsight.latent.fuzzy import fuzzy_graph
from latentsight.latent.neighbors import NeighborGraph

MapMethod = Literal["umap", "pca"]
UMAP_NEIGHBORS = 15


def reduce(latents: np.ndarray, n_components: int = 50, *, seed: int = 0) -> np.ndarray:
    """PCA of the latents (centred, not whitened), float32, seeded.

    scikit-learn's ``auto`` solver: exact through the D x D covariance when there are at least ten
    times more samples than dimensions (the usual case: 0.2 s at 100,000 x 256, against 3.6 s for
    the randomized solver), randomized for wide latents, full SVD for small ones.
    """
    latents = np.asarray(latents, dtype=np.float32)
    components = max(1, min(n_components, latents.shape[1], len(latents) - 1))
    pca = PCA(n_components=components, svd_solver="auto", random_state=seed)
    return pca.fit_transform(latents).astype(np.float32)


def layout_epochs(n: int) -> int:
    """Layout epochs for ``n`` samples: umap-learn's 200 up to 10,000 samples, 100 above."""
    return 200 if n <= 10_000 else 100


def embed_2d(
    reduced: np.ndarray,
    graph: NeighborGraph,
    *,
    method: MapMethod = "umap",
    seed: int = 0,
    n_epochs: int | None = None,
) -> np.ndarray:
    """2-D coordinates for display: UMAP on the shared kNN graph, or the first two PCs.

    UMAP reuses the neighbour graph (no second search): its fuzzy graph is built with numpy
    (``latentsight.latent.fuzzy``, nothing to compile) and umap-learn optimises the layout, seeded
    (PCA start), so the same run gives the same map. Fewer epochs above 10k samples keep 100k
    samples within half a minute; fewer still lose measurable quality
    (``benchmarks/map_quality.py``). ``n_epochs`` overrides that schedule.
    """
    if method == "pca" or len(reduced) < 4 * UMAP_NEIGHBORS:
        coords = reduced[:, :2] if reduced.shape[1] >= 2 else np.c_[reduced, np.zeros(len(reduced))]
        return np.ascontiguousarray(coords, dtype=np.float32)
    if method != "umap":
        raise ValueError(f"Unknown map method {method!r}: use 'umap' or 'pca'.")
    from umap.umap_ import find_ab_params, simplicial_set_embedding

    n = len(reduced)
    k = min(UMAP_NEIGHBORS - 1, graph.indices.shape[1])
    indices = np.c_[np.arange(n), graph.indices[:, :k]]
    distances = np.c_[np.zeros(n, dtype=np.float32), graph.distances[:, :k]]
    a, b = find_ab_params(spread=1.0, min_dist=0.1)  # umap-learn's defaults
    coords, _ = simplicial_set_embedding(
        data=reduced,
        graph=fuzzy_graph(indices, distances),
        n_components=2,
        initial_alpha=1.0,
        a=a,
        b=b,
        gamma=1.0,
        negative_sample_rate=5,
        n_epochs=layout_epochs(n) if n_epochs is None else n_epochs,
        init="pca",
        random_state=np.random.RandomState(seed),
        metric="euclidean",
        metric_kwds={},
        densmap=False,
        densmap_kwds={},
        output_dens=False,
    )
    return np.ascontiguousarray(coords, dtype=np.float32)
