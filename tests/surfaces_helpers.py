"""Helpers shared by the report and dashboard tests: the browser, and a run with extras."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
from PIL import Image

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


def artifact(name: str) -> Path:
    """Where a test keeps a screenshot (git-ignored test-artifacts/)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


def with_extras(run, destination: Path):
    """A copy of ``run`` holding an explanation overlay for every sample and a concept table."""
    import latentsight as ls

    shutil.copytree(run.path, destination)
    folder = destination / "explanations" / "gradcam" / "features.2"
    folder.mkdir(parents=True)
    for sample_id in run.samples["id"]:
        picture = run.render(sample_id).convert("RGB").resize((32, 32))
        ramp = np.linspace(0, 255, 32, dtype=np.uint8)
        heat = np.stack(
            [np.tile(ramp, (32, 1)), np.zeros((32, 32), np.uint8), np.tile(ramp[::-1], (32, 1))], -1
        )
        overlay = Image.blend(picture, Image.fromarray(heat), 0.5)
        buffer = io.BytesIO()
        overlay.save(buffer, format="PNG")
        (folder / (quote(sample_id, safe="") + ".png")).write_bytes(buffer.getvalue())
    concepts = destination / "concepts"
    concepts.mkdir()
    pd.DataFrame(
        {
            "neuron": [0, 1, 2],
            "formula": ["background == blue", "size high", "NOT clutter"],
            "auc": [0.91, 0.8, 0.7],
        }
    ).to_parquet(concepts / "neurons_features.2.parquet")
    return ls.open_run(destination)
