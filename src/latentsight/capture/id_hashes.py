"""Hashes of the sample ids captured so far, so that a repeated id stops the capture at the chunk
that repeats it rather than after the whole pass, at 8 bytes of memory a sample."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _holds_any(run: np.ndarray, hashes: np.ndarray) -> bool:
    """Whether the sorted ``run`` holds any of ``hashes``."""
    positions = np.minimum(np.searchsorted(run, hashes), len(run) - 1)
    return bool(np.any(run[positions] == hashes))


class IdHashes:
    """The 64-bit hashes of every id taken in, as sorted runs whose sizes at least halve from
    one to the next: a chunk is checked against O(log n) runs, and merging them costs
    O(n log n) over a capture instead of the O(n^2 / chunk) of one sorted array kept whole."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def add(self, ids: Sequence[str]) -> bool:
        """Take in one chunk's ids; whether one of them may repeat another or an earlier id.

        Equal hashes only say "may": the caller confirms on the ids themselves.
        """
        hashes = np.sort(pd.util.hash_array(np.asarray(ids, dtype=object), categorize=False))
        if not len(hashes):
            return False
        repeated = bool(np.any(hashes[1:] == hashes[:-1])) or any(
            _holds_any(run, hashes) for run in self._runs
        )
        self._runs.append(hashes)
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            last, before = self._runs.pop(), self._runs.pop()
            self._runs.append(np.sort(np.concatenate([before, last]), kind="stable"))
        return repeated
