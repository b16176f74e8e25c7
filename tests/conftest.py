"""Small real models and data sets shared by the tests."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn


class TinyCNN(nn.Module):
    """Two conv blocks, global pooling and a linear classifier."""

    def __init__(self, n_classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def image_items(
    n: int, seed: int, n_classes: int = 3, size: int = 12
) -> list[tuple[torch.Tensor, int]]:
    """``n`` random images in [0, 1] with integer labels."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, size, size, generator=generator)
    labels = torch.randint(0, n_classes, (n,), generator=generator)
    return [(images[i], int(labels[i])) for i in range(n)]


@pytest.fixture
def data() -> dict[str, list[tuple[torch.Tensor, int]]]:
    return {"train": image_items(40, seed=1), "val": image_items(24, seed=2)}


@pytest.fixture
def metadata(data: dict[str, list]) -> pd.DataFrame:
    rows = [
        {"id": f"{subset}/{i}", "brightness": float(x.mean()), "source": f"cam{i % 3}"}
        for subset, items in data.items()
        for i, (x, _) in enumerate(items)
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def shapes_run(tmp_path_factory):
    """A captured (not yet analysed) run of the demo CNN on a medium shapes data set, all failure
    modes planted; the hidden ground truth is in ``extras/ground_truth.parquet``. Built once."""
    import os

    import latentsight as ls
    from latentsight.demo.model import load_or_train_demo_model
    from latentsight.demo.run import demo_project, write_ground_truth
    from latentsight.demo.shapes import ShapesConfig, generate_shapes

    root = tmp_path_factory.mktemp("shapes")
    config = ShapesConfig(n_train=3000, n_val=1000, seed=0)
    subsets = generate_shapes(config)
    cache = os.environ.get("LATENTSIGHT_CACHE", str(root / "cache"))
    model, _ = load_or_train_demo_model(config, subsets, cache_dir=cache)
    run = ls.analyze(demo_project(subsets, model), root / "run", progress=False, insights=False)
    write_ground_truth(subsets, root / "run")
    return run


@pytest.fixture(scope="session")
def attached_shapes_run(shapes_run):
    """``shapes_run`` reopened with its Project (the demo CNN) attached."""
    import os

    import latentsight as ls
    from latentsight.demo.model import load_or_train_demo_model
    from latentsight.demo.run import demo_project
    from latentsight.demo.shapes import ShapesConfig, generate_shapes

    config = ShapesConfig(n_train=3000, n_val=1000, seed=0)
    subsets = generate_shapes(config)
    cache = os.environ.get("LATENTSIGHT_CACHE", str(shapes_run.path.parent / "cache"))
    model, _ = load_or_train_demo_model(config, subsets, cache_dir=cache)
    return ls.open_run(shapes_run.path).attach(demo_project(subsets, model))


def analysis_context(run, layer=None, view="mean", settings=None):
    """The AnalysisContext the detectors see, for a stored run (PCA map for speed)."""
    from latentsight.insights.base import AnalysisSettings
    from latentsight.insights.engine import build_context, default_layer

    settings = settings or AnalysisSettings(map_method="pca")
    return build_context(run, layer or default_layer(run), view, settings, {}, lambda: None)


@pytest.fixture(scope="session")
def dashboard_run(tmp_path_factory):
    """A small analysed shapes run (400 train / 160 val, a briefly trained demo CNN, PCA map)
    with renders, for the report and dashboard tests. Built once, in seconds."""
    import latentsight as ls
    from latentsight.demo.model import train_demo_model
    from latentsight.demo.run import demo_project
    from latentsight.demo.shapes import ShapesConfig, generate_shapes

    root = tmp_path_factory.mktemp("dashboard")
    subsets = generate_shapes(ShapesConfig(n_train=400, n_val=160, seed=3))
    model = train_demo_model(subsets["train"], epochs=2, seed=0)
    run = ls.analyze(
        demo_project(subsets, model),
        root / "run",
        progress=False,
        analysis=ls.AnalysisSettings(map_method="pca"),
    )
    assert run.insights, "the dashboard tests need at least one insight"
    return run


@pytest.fixture(scope="session")
def unnamed_dashboard_run(dashboard_run, tmp_path_factory):
    """``dashboard_run`` as a Project that gave no class names would have stored it."""
    import json
    import shutil

    import latentsight as ls
    from latentsight.store.manifest import MANIFEST

    destination = tmp_path_factory.mktemp("unnamed") / "run"
    shutil.copytree(dashboard_run.path, destination)
    manifest = json.loads((destination / MANIFEST).read_text())
    manifest["classes"] = None
    (destination / MANIFEST).write_text(json.dumps(manifest))
    return ls.open_run(destination)
