"""latentsight: see your dataset the way your model sees it."""

__version__ = "0.1.0"

from latentsight import losses
from latentsight.api import analyze, check, open_run
from latentsight.capture.pooling import PoolingSettings
from latentsight.concepts import Concepts, ConceptSettings
from latentsight.errors import (
    CaptureError,
    LatentsightError,
    NotRecordedError,
    ProjectError,
    RunStoreError,
)
from latentsight.insights.base import AnalysisSettings, Evidence, Insight
from latentsight.project import Metric, Project
from latentsight.store.run import Run

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
    "Run",
    "RunStoreError",
    "__version__",
    "analyze",
    "check",
    "losses",
    "open_run",
]
