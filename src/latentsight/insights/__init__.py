"""Insight detectors: each finds one kind of failure population, backed by statistics."""

from latentsight.insights import aggressors  # noqa: F401 - importing registers the detector
