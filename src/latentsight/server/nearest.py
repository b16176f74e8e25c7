"""Exact nearest neighbours of one sample in latent space, in a fraction of a full scan.

At startup the latents are grouped into k-means cells (about sqrt(n) of them, a few Lloyd steps
on a sample: a fraction of a second at 100,000 samples), each with its centre and radius. A cell whose centre lies further from the query than its radius plus the
distance of the k-th neighbour found so far cannot hold a nearer sample (triangle inequality),
so a query looks only at the cells that can: first the nearest cells, to bound the k-th
distance, then every other cell within that bound. In those cells, float32 dot products give
every distance with a proven error bound, and exact float64 distances are computed for the few
samples that bound cannot rule out. On clustered latents that is a few cells; on latents with no
structure it degrades to the full scan, never to a wrong answer.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans

FIT_SAMPLE = 10_000  # k-means fits on this many samples, then every sample joins its cell
SLACK = 1e-9  # relative: rounding in a cell's bound must never leave out a true neighbour


class NearestIndex:
    """The latent vectors, grouped by cell, for exact k-nearest-neighbour queries by row."""

    def __init__(self, latents: np.ndarray, seed: int = 0) -> None:
        vectors = np.asarray(latents, dtype=np.float32)
        n = len(vectors)
        cells = max(1, min(n, int(np.sqrt(n))))
        chosen = np.random.default_rng(seed).permutation(n)[: min(n, FIT_SAMPLE)]
        with warnings.catch_warnings():  # repeated vectors can leave fewer distinct cells
            warnings.simplefilter("ignore")
            kmeans = KMeans(cells, init="random", n_init=1, max_iter=10, random_state=seed)
            labels = kmeans.fit(vectors[chosen]).predict(vectors)
        _, labels = np.unique(labels, return_inverse=True)  # cells that hold samples only
        cells = int(labels.max()) + 1
        self.order = np.argsort(labels, kind="stable")  # rows, cell by cell
        self.vectors = np.ascontiguousarray(vectors[self.order])
        self.starts = np.searchsorted(labels[self.order], np.arange(cells + 1))
        self.sizes = np.diff(self.starts)
        self.position = np.empty(n, dtype=np.int64)
        self.position[self.order] = np.arange(n)
        wide = self.vectors.astype(np.float64)
        self.norms = (wide**2).sum(axis=1)  # squared
        self.centres = np.add.reduceat(wide, self.starts[:-1], axis=0) / self.sizes[:, None]
        spread = np.sqrt(((wide - np.repeat(self.centres, self.sizes, axis=0)) ** 2).sum(axis=1))
        self.radii = np.maximum.reduceat(spread, self.starts[:-1])
        # a float32 dot product of length d is off by at most d * eps * |x| * |q|
        self.error = 2 * vectors.shape[1] * np.finfo(np.float32).eps * np.sqrt(self.norms)

    def query(self, row: int, k: int) -> list[tuple[int, float]]:
        """The ``k`` samples nearest to ``row`` (itself left out), nearest first, with their
        Euclidean distances; ties go to the lower row."""
        k = min(k, len(self.order) - 1)
        if k <= 0:
            return []
        slot = self.position[row]
        point = self.vectors[slot]
        wide = point.astype(np.float64)
        length = float(np.sqrt(self.norms[slot]))
        bound = np.sqrt(((self.centres - wide) ** 2).sum(axis=1)) - self.radii
        by_bound = np.argsort(bound, kind="stable")
        reach = int(np.searchsorted(np.cumsum(self.sizes[by_bound]), k + 1)) + 1
        slots = self._slots(by_bound[:reach])  # the nearest cells, holding k others at least
        low, high = self._estimates(slots, point, slot, length)
        kth = np.partition(high, k - 1)[k - 1]
        rest = by_bound[reach:]
        rest = rest[bound[rest] <= np.sqrt(kth) * (1 + SLACK) + SLACK]
        if len(rest):
            more = self._slots(rest)
            more_low, more_high = self._estimates(more, point, slot, length)
            slots = np.concatenate([slots, more])
            low, high = np.concatenate([low, more_low]), np.concatenate([high, more_high])
            kth = np.partition(high, k - 1)[k - 1]
        candidates = slots[low <= kth]  # every sample that may be among the k nearest
        distances = np.sqrt(((self.vectors[candidates] - wide) ** 2).sum(axis=1))
        rows = self.order[candidates]
        nearest = np.lexsort((rows, distances))[:k]
        return [(int(r), float(d)) for r, d in zip(rows[nearest], distances[nearest], strict=True)]

    def _slots(self, cells: np.ndarray) -> np.ndarray:
        """Positions in ``vectors`` of every sample in ``cells``."""
        sizes = self.sizes[cells]
        offsets = self.starts[cells] - (np.cumsum(sizes) - sizes)
        return np.repeat(offsets, sizes) + np.arange(int(sizes.sum()))

    def _estimates(
        self, slots: np.ndarray, point: np.ndarray, own: int, length: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the squared distances from ``point`` to ``slots`` (its own
        slot, ``own``, pushed out of reach)."""
        dots = (self.vectors[slots] @ point).astype(np.float64)
        squared = self.norms[slots] - 2 * dots + self.norms[own]
        margin = 2 * self.error[slots] * length + 1e-12 * (self.norms[slots] + self.norms[own])
        low, high = np.maximum(squared - margin, 0.0), squared + margin
        mine = slots == own
        low[mine], high[mine] = np.inf, np.inf
        return low, high
