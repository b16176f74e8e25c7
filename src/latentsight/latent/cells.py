"""Latent vectors grouped into k-means cells, each with its centre and radius, so that exact
nearest-neighbour searches can skip every cell that cannot hold a near sample.

A cell whose centre lies further from a query than its radius plus the query's k-th neighbour
distance cannot hold a nearer sample (triangle inequality). About sqrt(n) cells from a few Lloyd
steps on a sample take a fraction of a second at 100,000 samples; on clustered latents a query
then looks at a few cells, on latents with no structure at all of them, never at too few.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans

FIT_SAMPLES = 10_000  # k-means fits on at least this many samples (30 per cell), then all join
_FIT_PER_CELL = 30


@dataclass(frozen=True)
class Cells:
    """The vectors sorted cell by cell, with each cell's start, centre and radius."""

    order: np.ndarray  # row of each sorted vector
    vectors: np.ndarray  # float32, sorted by cell
    norms: np.ndarray  # float64 squared norms of the sorted vectors
    starts: np.ndarray  # cell c holds sorted positions starts[c] to starts[c + 1]
    centres: np.ndarray  # float64, one per cell
    radii: np.ndarray  # largest distance from a cell's centre to one of its vectors

    @property
    def sizes(self) -> np.ndarray:
        """Vectors in each cell."""
        return np.diff(self.starts)

    def slots(self, cells: np.ndarray) -> np.ndarray:
        """Sorted positions of every vector in ``cells``, cell by cell."""
        sizes = self.sizes[cells]
        offsets = self.starts[cells] - (np.cumsum(sizes) - sizes)
        return np.repeat(offsets, sizes) + np.arange(int(sizes.sum()))

    def centre_distances(self, points: np.ndarray, norms: np.ndarray) -> np.ndarray:
        """Euclidean distances (float64) from ``points`` (squared ``norms`` given) to every centre."""
        centre_norms = (self.centres**2).sum(axis=1)
        squared = norms[:, None] - 2 * points.astype(np.float64) @ self.centres.T + centre_norms
        return np.sqrt(np.maximum(squared, 0.0))


def partition(latents: np.ndarray, seed: int = 0) -> Cells:
    """Group ``latents`` into about sqrt(n) k-means cells (seeded)."""
    vectors = np.asarray(latents, dtype=np.float32)
    n = len(vectors)
    cells = max(1, int(np.sqrt(n)))
    fitted = min(n, max(FIT_SAMPLES, _FIT_PER_CELL * cells))
    chosen = np.random.default_rng(seed).permutation(n)[:fitted]
    with warnings.catch_warnings():  # repeated vectors can leave fewer distinct cells
        warnings.simplefilter("ignore")
        kmeans = KMeans(cells, init="random", n_init=1, max_iter=10, random_state=seed)
        labels = kmeans.fit(vectors[chosen]).predict(vectors)
    _, labels = np.unique(labels, return_inverse=True)  # cells that hold samples only
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(int(labels.max()) + 2))
    sorted_vectors = np.ascontiguousarray(vectors[order])
    wide = sorted_vectors.astype(np.float64)
    sizes = np.diff(starts)
    centres = np.add.reduceat(wide, starts[:-1], axis=0) / sizes[:, None]
    spread = np.sqrt(((wide - np.repeat(centres, sizes, axis=0)) ** 2).sum(axis=1))
    return Cells(
        order=order,
        vectors=sorted_vectors,
        norms=(wide**2).sum(axis=1),
        starts=starts,
        centres=centres,
        radii=np.maximum.reduceat(spread, starts[:-1]),
    )
