"""The error the concept-discovery stage raises on bad input."""

from __future__ import annotations

from latentsight.errors import LatentsightError


class DiscoveryError(LatentsightError, ValueError):
    """A concept-discovery request that cannot be honoured: bad layer, k, samples or settings."""
