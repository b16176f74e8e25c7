"""The 2-D map: seeded, laid out on the default epoch schedule unless told otherwise, and keeping
planted clusters apart."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from latentsight.latent.neighbors import neighbor_graph
from latentsight.latent.projection import embed_2d, layout_epochs, reduce


def blobs(n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, n)
    centres = rng.normal(scale=8.0, size=(3, 20))
    return (centres[labels] + rng.normal(size=(n, 20))).astype(np.float32), labels


def test_map_is_seeded_and_follows_the_epoch_schedule():
    vectors, _ = blobs()
    reduced = reduce(vectors, 10)
    graph = neighbor_graph(reduced, 15)
    first = embed_2d(reduced, graph, seed=0)
    assert np.array_equal(first, embed_2d(reduced, graph, seed=0))
    assert np.array_equal(first, embed_2d(reduced, graph, seed=0, n_epochs=layout_epochs(600)))
    assert not np.allclose(first, embed_2d(reduced, graph, seed=0, n_epochs=20))
    assert not np.allclose(first, embed_2d(reduced, graph, seed=1))


def test_map_keeps_planted_clusters_apart():
    vectors, labels = blobs()
    reduced = reduce(vectors, 10)
    coords = embed_2d(reduced, neighbor_graph(reduced, 15), seed=0)
    held_out = np.arange(len(labels)) % 4 == 0
    classifier = KNeighborsClassifier(15).fit(coords[~held_out], labels[~held_out])
    assert classifier.score(coords[held_out], labels[held_out]) == 1.0
