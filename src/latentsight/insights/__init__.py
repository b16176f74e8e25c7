"""Insight detectors: each finds one kind of failure population, backed by statistics.

The engine (:mod:`latentsight.insights.engine`) imports every detector module, which registers
it; reading a run's stored insights needs none of them.
"""
