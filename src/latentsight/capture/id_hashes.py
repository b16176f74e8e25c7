"""Hashes of the sample ids captured so far, so that a repeated id stops the capture at the chunk
that repeats it rather than after the whole pass, at 8 bytes of memory a sample."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


class IdHashes:
    """A sorted array of the 64-bit hashes of every id taken in."""

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)

    def add(self, ids: Sequence[str]) -> bool:
        """Take in one chunk's ids; whether one of them may repeat another or an earlier id.

        Equal hashes only say "may": the caller confirms on the ids themselves.
        """
        hashes = np.sort(pd.util.hash_array(np.asarray(ids, dtype=object)))
        repeated = bool(np.any(hashes[1:] == hashes[:-1]))
        positions = np.searchsorted(self._sorted, hashes)
        if len(self._sorted):
            nearest = self._sorted[np.minimum(positions, len(self._sorted) - 1)]
            repeated = repeated or bool(np.any(nearest == hashes))
        self._sorted = np.insert(self._sorted, positions, hashes)
        return repeated
