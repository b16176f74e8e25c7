"""The nearest-neighbour graph over latent vectors, built once and shared by every detector.

The search is exact and needs no compilation: the vectors are grouped into k-means cells
(``latentsight.latent.cells``), and each cell's samples are compared, by one float32 matrix
product, with the cells that the triangle inequality cannot rule out. Samples whose candidates
would cover most of the data (latents with little structure) go to one brute-force pass instead.
The k nearest found are ranked by float64 distances, ties to the lower row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.neighbors import NearestNeighbors

from latentsight.latent.cells import Cells, partition

DENSE = 0.25  # a cell whose candidates exceed this share of the data goes to brute force
_BLOCK_VALUES = 1 << 24  # distances computed at once (64 MiB of float32)
_SLACK = 1e-3  # relative and absolute: float32 rounding must never prune a true neighbour


@dataclass(frozen=True)
class NeighborGraph:
    """Each sample's ``k`` nearest other samples in latent space (row indices, distances)."""

    indices: np.ndarray  # N x k int64, self excluded, nearest first
    distances: np.ndarray  # N x k float32, Euclidean


def neighbor_graph(vectors: np.ndarray, k: int, *, seed: int = 0) -> NeighborGraph:
    """Each sample's ``k`` nearest other samples (Euclidean), nearest first, itself excluded."""
    n = len(vectors)
    k = min(k, n - 1)
    indices, distances = nearest_all(partition(vectors, seed), k + 1)
    keep = indices != np.arange(n)[:, None]
    no_self = keep.all(axis=1)
    keep[no_self, -1] = False  # a row whose own index was crowded out by exact duplicates
    return NeighborGraph(
        indices=indices[keep].reshape(n, k),
        distances=distances[keep].reshape(n, k).astype(np.float32),
    )


def nearest_all(cells: Cells, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest samples (itself included) of every sample, by row: indices, distances."""
    n = len(cells.order)
    sizes = cells.sizes
    between = cells.centre_distances(cells.centres, (cells.centres**2).sum(axis=1))
    candidates = np.empty((n, k), dtype=np.int64)  # sorted positions, by sorted position
    dense = []
    for cell in range(len(sizes)):
        rows = np.arange(cells.starts[cell], cells.starts[cell + 1])
        nearby = np.argsort(between[cell], kind="stable")
        reach = int(np.searchsorted(np.cumsum(sizes[nearby]), k)) + 1
        first = cells.slots(nearby[:reach])  # the nearest cells, holding k samples at least
        kth = np.sqrt(_kth_squared(cells, rows, first, k))
        bound = cells.centre_distances(cells.vectors[rows], cells.norms[rows]) - cells.radii
        reachable = (bound <= (kth * (1 + _SLACK) + _SLACK)[:, None]).any(axis=0)
        slots = cells.slots(np.flatnonzero(reachable))
        if len(slots) > DENSE * n:
            dense.append(rows)
            continue
        step = max(1, _BLOCK_VALUES // len(slots))
        for start in range(0, len(rows), step):
            block = rows[start : start + step]
            squared = _squared(cells, block, slots)
            candidates[block] = slots[np.argpartition(squared, k - 1, axis=1)[:, :k]]
    if dense:
        rows = np.concatenate(dense)
        search = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(cells.vectors)
        candidates[rows] = search.kneighbors(cells.vectors[rows], return_distance=False)
    return _ranked(cells, candidates)


def _squared(cells: Cells, rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Squared distances (float32, by matrix product) from ``rows`` to ``slots``."""
    products = cells.vectors[rows] @ cells.vectors[slots].T
    row_norms, slot_norms = (cells.norms[i].astype(np.float32) for i in (rows, slots))
    return row_norms[:, None] - 2 * products + slot_norms


def _kth_squared(cells: Cells, rows: np.ndarray, slots: np.ndarray, k: int) -> np.ndarray:
    """Each row's k-th smallest squared distance to ``slots`` (float64, at least zero)."""
    squared = _squared(cells, rows, slots)
    return np.maximum(np.partition(squared, k - 1, axis=1)[:, k - 1], 0.0).astype(np.float64)


def _ranked(cells: Cells, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and distances of each sample's candidates, nearest first, ties to the lower row,
    reordered from sorted positions to rows (float32 differences summed in float64)."""
    n, k = candidates.shape
    indices = np.empty((n, k), dtype=np.int64)
    distances = np.empty((n, k), dtype=np.float64)
    step = max(1, _BLOCK_VALUES // (k * cells.vectors.shape[1]))
    for start in range(0, n, step):
        block = candidates[start : start + step]
        differences = cells.vectors[block] - cells.vectors[start : start + step, None, :]
        lengths = np.sqrt(np.einsum("ijk,ijk->ij", differences, differences, dtype=np.float64))
        rows = cells.order[block]
        ranking = np.lexsort((rows, lengths), axis=-1)
        indices[cells.order[start : start + step]] = np.take_along_axis(rows, ranking, axis=1)
        distances[cells.order[start : start + step]] = np.take_along_axis(lengths, ranking, axis=1)
    return indices, distances
