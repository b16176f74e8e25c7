"""Helpers shared by the report and dashboard tests: the browser, and a run with extras."""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
GRADCAM_LAYER = "features.2"
CONCEPT_LAYER = "classifier.3:input"
CLASS_NAMES = ["circle", "square", "triangle", "cross"]


def artifact(name: str) -> Path:
    """Where a test keeps a screenshot (git-ignored test-artifacts/)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


def with_extras(run, destination: Path):
    """A copy of ``run`` (with its model attached) holding what the explain and concepts packages
    store: Grad-CAM at features.2 of every sample, computed by ``run.explain`` into the run's
    cache, and the INVERT labels of the linear head's input with their audit."""
    import latentsight as ls

    shutil.copytree(run.path, destination)
    copy = ls.open_run(destination, project=run.project)
    copy.explain(list(copy.samples["id"]), method="gradcam", layer=GRADCAM_LAYER)
    copy.concepts(CONCEPT_LAYER, class_names=CLASS_NAMES).audit()
    return copy
