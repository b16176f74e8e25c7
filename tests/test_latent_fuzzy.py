"""The fuzzy graph the map is laid out from equals umap-learn's fuzzy simplicial set."""

from __future__ import annotations

import numpy as np
from umap.umap_ import fuzzy_simplicial_set

from latentsight.latent.fuzzy import fuzzy_graph
from latentsight.latent.neighbors import neighbor_graph


def knn_with_self(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    graph = neighbor_graph(vectors, k - 1)
    n = len(vectors)
    indices = np.c_[np.arange(n), graph.indices]
    return indices, np.c_[np.zeros(n, dtype=np.float32), graph.distances]


def test_fuzzy_graph_equals_umap_learn_including_duplicates():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(6, 8))
    vectors = (centres[rng.integers(0, 6, 1500)] + rng.normal(size=(1500, 8))).astype(np.float32)
    vectors[1000:1040] = vectors[0]  # 41 copies of one sample: rows whose neighbours sit at 0
    indices, distances = knn_with_self(vectors, 15)
    expected, _, _ = fuzzy_simplicial_set(
        vectors,
        15,
        np.random.RandomState(0),
        "euclidean",
        knn_indices=indices,
        knn_dists=distances,
    )
    ours = fuzzy_graph(indices, distances)
    expected = expected.tocsr()
    assert ours.nnz == expected.nnz
    assert abs(ours - expected).max() < 1e-5
    assert abs(ours - ours.T).max() == 0  # symmetric, as a fuzzy union is
