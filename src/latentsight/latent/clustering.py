"""Clusters in the reduced latent space, every sample assigned; HDBSCAN by default, k-means as an option."""

from __future__ import annotations

from typing import Literal

import numpy as np

from latentsight.latent.neighbors import NeighborGraph

ClusterMethod = Literal["hdbscan", "kmeans"]
HDBSCAN_DIMS = 10


def min_cluster_size(n: int) -> int:
    """HDBSCAN's minimum cluster size, growing with the number of samples."""
    return max(10, n // 200)


def cluster_latents(
    reduced: np.ndarray,
    graph: NeighborGraph,
    coords: np.ndarray | None = None,
    *,
    method: ClusterMethod = "hdbscan",
    n_clusters: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster labels for every sample, and which samples the clusterer itself called noise.

    HDBSCAN runs on the UMAP map when there is one (UMAP is built from the latent kNN graph, and
    HDBSCAN in a few dozen PCA dimensions leaves most samples as noise on real latents), else on
    the first ``HDBSCAN_DIMS`` principal components. Samples it leaves as noise join the cluster
    most of their nearest latent neighbours belong to, and stay flagged as noise. k-means runs on
    the PCA-reduced latents.
    """
    n = len(reduced)
    if method == "kmeans":
        from sklearn.cluster import KMeans

        k = n_clusters or int(np.clip(np.sqrt(n / 2), 2, 50))
        labels = KMeans(n_clusters=min(k, n), n_init="auto", random_state=seed).fit_predict(reduced)
        return labels.astype(np.int64), np.zeros(n, dtype=bool)
    if method != "hdbscan":
        raise ValueError(f"Unknown clustering method {method!r}: use 'hdbscan' or 'kmeans'.")
    import hdbscan

    # One process: hdbscan's default starts four worker processes for the core distances, which
    # costs a cold analysis ~4 s of process start-up for ~1 s of work on two cores.
    clusterer = hdbscan.HDBSCAN(
        min_cluster_size=min_cluster_size(n), min_samples=10, core_dist_n_jobs=1
    )
    space = coords if coords is not None else reduced[:, :HDBSCAN_DIMS]
    labels = clusterer.fit_predict(space).astype(np.int64)
    noise = labels < 0
    if noise.all():
        return np.zeros(n, dtype=np.int64), noise
    return _assign_noise(labels, graph), noise


def _assign_noise(labels: np.ndarray, graph: NeighborGraph) -> np.ndarray:
    """Give each noise sample the most common cluster among its neighbours, repeating until stable."""
    labels = labels.copy()
    n_labels = int(labels.max()) + 1
    for _ in range(10):
        pending = np.flatnonzero(labels < 0)
        if not len(pending):
            break
        neighbour_labels = labels[graph.indices[pending]]
        rows, cols = np.nonzero(neighbour_labels >= 0)
        if not len(rows):
            break
        counts = np.zeros((len(pending), n_labels), dtype=np.int32)
        np.add.at(counts, (rows, neighbour_labels[rows, cols]), 1)
        known = counts.sum(axis=1) > 0
        labels[pending[known]] = counts[known].argmax(axis=1)
    if (labels < 0).any():
        labels[labels < 0] = np.bincount(labels[labels >= 0]).argmax()
    return labels
