"""How a metadata column is read, as categories or as numbers: one rule for the detectors, the
report and the dashboard (and no statistics library to load for it)."""

from __future__ import annotations

import pandas as pd

MAX_CATEGORIES = (
    50  # a column with more distinct values than this is not tested category by category
)


def is_categorical(series: pd.Series) -> bool:
    """Whether a metadata column is treated as categories rather than numbers."""
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
