"""The error the concepts stage raises on bad input."""

from __future__ import annotations

from latentsight.errors import LatentsightError


class ConceptsError(LatentsightError, ValueError):
    """A concept labelling request that cannot be honoured: bad annotations, layer or settings."""
