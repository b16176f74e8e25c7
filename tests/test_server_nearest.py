"""The dashboard's latent neighbour index is exact: it agrees with scikit-learn's brute force on
clustered, structureless and duplicated latents, and breaks ties by row."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from latentsight.server.nearest import NearestIndex


def _latents(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "clustered":  # far-apart blobs: most cells are ruled out
        blob = rng.integers(0, 10, 6_000)
        return (rng.normal(0, 6, (10, 24))[blob] + rng.normal(0, 1, (6_000, 24))).astype("f4")
    if kind == "uniform":  # no structure: the bound rules out little, the answer stays exact
        return rng.random((3_000, 16)).astype("f4")
    return (rng.normal(0, 50, (300, 8)) + 1000).astype(
        "f4"
    )  # far from the origin: float32 dots lose digits


@pytest.mark.parametrize("kind", ["clustered", "uniform", "offset"])
def test_neighbours_match_brute_force(kind):
    rng = np.random.default_rng(0)
    latents = _latents(kind, rng)
    index = NearestIndex(latents)
    rows = rng.choice(len(latents), 60, replace=False)
    distances, nearest = NearestNeighbors(n_neighbors=9).fit(latents).kneighbors(latents[rows])
    for row, expected_rows, expected_distances in zip(rows, nearest, distances, strict=True):
        found = index.query(int(row), 8)
        keep = expected_rows != row
        assert [r for r, _ in found] == expected_rows[keep][:8].tolist()
        assert [d for _, d in found] == pytest.approx(expected_distances[keep][:8], rel=1e-5)


def test_exact_duplicates_are_found_at_distance_zero_lowest_row_first():
    rng = np.random.default_rng(1)
    latents = np.repeat(rng.normal(0, 1, (50, 6)).astype("f4"), 4, axis=0)  # rows 4i..4i+3 equal
    index = NearestIndex(latents)
    found = index.query(9, 5)
    assert [r for r, _ in found[:3]] == [8, 10, 11] and all(d == 0 for _, d in found[:3])
    assert found[3][1] > 0


def test_tiny_runs():
    latents = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]], dtype="f4")
    assert NearestIndex(latents[:1]).query(0, 8) == []
    assert NearestIndex(latents).query(0, 8) == [(2, 1.0), (1, 5.0)]
