"""Insight detectors: each finds one kind of failure population, backed by statistics."""

from latentsight.insights import (  # noqa: F401 - importing a detector module registers it
    aggressors,
    duplicates,
    label_issues,
    metadata_trends,
    outliers,
    overfitting,
    representation,
    spurious,
)
