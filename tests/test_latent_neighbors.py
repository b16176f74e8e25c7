"""The neighbour graph is exact: it equals scikit-learn's brute-force search on clustered latents
(where cells are pruned) and on structureless ones (where the search falls back to brute force)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from latentsight.latent import neighbors
from latentsight.latent.neighbors import neighbor_graph


def clustered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(20, 16))
    return (centres[rng.integers(0, 20, n)] + rng.normal(size=(n, 16))).astype(np.float32)


def brute(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    distances, indices = (
        NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(vectors).kneighbors(vectors)
    )
    return indices[:, 1:], distances[:, 1:]


@pytest.mark.parametrize("dense", [0.0, 0.25, 1.0])
@pytest.mark.parametrize(
    "vectors",
    [clustered(3000), np.random.default_rng(1).normal(size=(1500, 32)).astype(np.float32)],
    ids=["clustered", "structureless"],
)
def test_graph_equals_brute_force_on_every_path(vectors, dense, monkeypatch):
    monkeypatch.setattr(neighbors, "DENSE", dense)  # 0: all brute force, 1: all pruned cells
    graph = neighbor_graph(vectors, 10)
    indices, distances = brute(vectors, 10)
    np.testing.assert_allclose(graph.distances, distances, rtol=1e-5, atol=1e-5)
    agree = np.mean(
        [len(set(a) & set(b)) / 10 for a, b in zip(graph.indices, indices, strict=True)]
    )
    assert agree > 0.999  # only exact ties may be broken differently
    assert not (graph.indices == np.arange(len(vectors))[:, None]).any()


def test_pruned_cells_scan_a_small_share_of_clustered_latents(monkeypatch):
    scanned = []
    real = neighbors._squared
    monkeypatch.setattr(
        neighbors, "_squared", lambda c, r, s: scanned.append(len(r) * len(s)) or real(c, r, s)
    )
    vectors = clustered(6000)
    neighbor_graph(vectors, 10)
    assert sum(scanned) < 0.25 * len(vectors) ** 2


def test_ties_go_to_the_lower_row_and_duplicates_sit_at_distance_zero():
    line = np.arange(10, dtype=np.float32)[:, None]
    graph = neighbor_graph(line, 2)
    assert graph.indices[5].tolist() == [4, 6]
    np.testing.assert_array_equal(graph.distances[5], [1.0, 1.0])
    copies = np.vstack([clustered(200), np.repeat(clustered(1, seed=3), 4, axis=0)])
    graph = neighbor_graph(copies, 3)
    assert graph.indices[200].tolist() == [201, 202, 203]
    np.testing.assert_array_equal(graph.distances[200], 0.0)
