"""Exact nearest neighbours of one sample in latent space, in a fraction of a full scan.

The latents are grouped into k-means cells (``latentsight.latent.cells``). A query looks only at
the cells the triangle inequality cannot rule out: first the nearest cells, to bound the k-th
distance, then every other cell within that bound. In those cells, float32 dot products give
every distance with a proven error bound, and exact float64 distances are computed for the few
samples that bound cannot rule out. On clustered latents that is a few cells; on latents with no
structure it degrades to the full scan, never to a wrong answer.
"""

from __future__ import annotations

import numpy as np

from latentsight.latent.cells import partition

SLACK = 1e-9  # relative: rounding in a cell's bound must never leave out a true neighbour


class NearestIndex:
    """The latent vectors, grouped by cell, for exact k-nearest-neighbour queries by row."""

    def __init__(self, latents: np.ndarray, seed: int = 0) -> None:
        self.cells = cells = partition(latents, seed)
        self.order, self.vectors, self.norms = cells.order, cells.vectors, cells.norms
        self.sizes, self.centres, self.radii = cells.sizes, cells.centres, cells.radii
        self.position = np.empty(len(self.order), dtype=np.int64)
        self.position[self.order] = np.arange(len(self.order))
        # a float32 dot product of length d is off by at most d * eps * |x| * |q|
        self.error = 2 * self.vectors.shape[1] * np.finfo(np.float32).eps * np.sqrt(self.norms)

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
        slots = self.cells.slots(by_bound[:reach])  # the nearest cells, holding k others at least
        low, high = self._estimates(slots, point, slot, length)
        kth = np.partition(high, k - 1)[k - 1]
        rest = by_bound[reach:]
        rest = rest[bound[rest] <= np.sqrt(kth) * (1 + SLACK) + SLACK]
        if len(rest):
            more = self.cells.slots(rest)
            more_low, more_high = self._estimates(more, point, slot, length)
            slots = np.concatenate([slots, more])
            low, high = np.concatenate([low, more_low]), np.concatenate([high, more_high])
            kth = np.partition(high, k - 1)[k - 1]
        candidates = slots[low <= kth]  # every sample that may be among the k nearest
        distances = np.sqrt(((self.vectors[candidates] - wide) ** 2).sum(axis=1))
        rows = self.order[candidates]
        nearest = np.lexsort((rows, distances))[:k]
        return [(int(r), float(d)) for r, d in zip(rows[nearest], distances[nearest], strict=True)]

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
