"""latentsight: see your dataset the way your model sees it.

The names below are imported when first used, so that reading a run or asking the command line
for help does not wait for PyTorch and scikit-learn to load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_HOMES = {
    "analyze": "latentsight.api",
    "check": "latentsight.api",
    "open_run": "latentsight.api",
    "PoolingSettings": "latentsight.capture.pooling",
    "Concepts": "latentsight.concepts",
    "ConceptSettings": "latentsight.concepts",
    "CaptureError": "latentsight.errors",
    "LatentsightError": "latentsight.errors",
    "NotRecordedError": "latentsight.errors",
    "ProjectError": "latentsight.errors",
    "QueryError": "latentsight.errors",
    "RunStoreError": "latentsight.errors",
    "AnalysisSettings": "latentsight.insights.base",
    "Evidence": "latentsight.insights.base",
    "Insight": "latentsight.insights.base",
    "Metric": "latentsight.project",
    "Project": "latentsight.project",
    "Run": "latentsight.store.run",
}

__all__ = [
    "AnalysisSettings",
    "CaptureError",
    "ConceptSettings",
    "Concepts",
    "Evidence",
    "Insight",
    "LatentsightError",
    "Metric",
    "NotRecordedError",
    "PoolingSettings",
    "Project",
    "ProjectError",
    "QueryError",
    "Run",
    "RunStoreError",
    "__version__",
    "analyze",
    "check",
    "losses",
    "open_run",
]

if TYPE_CHECKING:
    from latentsight import losses
    from latentsight.api import analyze, check, open_run
    from latentsight.capture.pooling import PoolingSettings
    from latentsight.concepts import Concepts, ConceptSettings
    from latentsight.errors import (
        CaptureError,
        LatentsightError,
        NotRecordedError,
        ProjectError,
        QueryError,
        RunStoreError,
    )
    from latentsight.insights.base import AnalysisSettings, Evidence, Insight
    from latentsight.project import Metric, Project
    from latentsight.store.run import Run


def __getattr__(name: str) -> Any:
    if name == "losses":
        return importlib.import_module("latentsight.losses")
    if name not in _HOMES:
        raise AttributeError(f"module 'latentsight' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
