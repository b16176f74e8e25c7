"""The outlier detector on data where the truth is known: planted far-away points are flagged and
reported when they differ from the rest; clean clouds (with or without duplicates) flag nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import analysis_context

from latentsight.insights.base import AnalysisContext, AnalysisSettings
from latentsight.insights.outliers import Outliers, outlier_scores
from latentsight.latent.neighbors import neighbor_graph
from latentsight.latent.projection import reduce


def synthetic_context(
    latents: np.ndarray, subset: np.ndarray, loss: np.ndarray, seed: int = 0
) -> AnalysisContext:
    """An AnalysisContext over hand-made latents, built with the real PCA and neighbour graph."""
    rng = np.random.default_rng(seed)
    n = len(latents)
    samples = pd.DataFrame(
        {
            "id": [f"s{i}" for i in range(n)],
            "subset": subset,
            "loss": loss,
            "site": rng.choice(["a", "b", "c"], n),
            "age": rng.uniform(20, 80, n),
        }
    )
    settings = AnalysisSettings(map_method="pca")
    reduced = reduce(latents.astype(np.float32), settings.pca_components, seed=0)
    return AnalysisContext(
        samples=samples,
        layer="synthetic",
        latents=latents,
        reduced=reduced,
        coords=reduced[:, :2],
        clusters=np.zeros(n, dtype=np.int64),
        noise=np.zeros(n, bool),
        neighbors=neighbor_graph(reduced, settings.n_neighbors, seed=0),
        loss_columns=["loss"],
        metrics={},
        metadata_columns=["site", "age"],
        task="classification",
        settings=settings,
    )


def planted(
    n: int = 1500, d: int = 16, n_far: int = 25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian cloud followed by ``n_far`` points at three times its typical radius, in random
    directions (each far from the cloud and from each other); returns (points, is_planted)."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n_far, d))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    points = np.vstack([rng.normal(size=(n, d)), 3 * np.sqrt(d) * directions])
    return points, np.arange(n + n_far) >= n


def test_planted_far_points_are_flagged_and_reported():
    points, truth = planted()
    rng = np.random.default_rng(1)
    subset = np.where(truth, "val", rng.choice(["train", "val"], len(truth), p=[0.75, 0.25]))
    loss = rng.exponential(0.3, len(truth)) * np.where(truth, 5.0, 1.0)
    result = Outliers().run(synthetic_context(points, subset, loss))
    flags = result.scores["is_outlier"].to_numpy()
    assert (flags & truth).sum() == truth.sum() and (flags & ~truth).sum() == 0
    assert list(result.scores.columns) == ["id", "outlier_score", "is_outlier"]
    assert result.scores["outlier_score"][truth].min() > result.info["z_threshold"]
    [insight] = result.insights
    assert insight.kind == "outliers" and set(insight.population) == {
        f"s{i}" for i in np.flatnonzero(truth)
    }
    tests = {e.details["test"]: e for e in insight.evidence}
    assert {"loss", "outside_training"} <= set(tests)
    assert tests["loss"].effect > 3 and tests["loss"].q_value < 1e-6
    assert all(e.effect >= 1 for e in insight.evidence)
    assert "data errors" in insight.action


def test_outliers_like_the_rest_raise_no_insight():
    points, truth = planted(seed=2)
    rng = np.random.default_rng(3)
    subset = rng.choice(["train", "val"], len(truth), p=[0.75, 0.25])
    loss = rng.exponential(0.3, len(truth))
    result = Outliers().run(synthetic_context(points, subset, loss))
    assert result.scores["is_outlier"].sum() == truth.sum()  # still flagged per sample
    assert result.insights == []


def test_clean_gaussian_flags_nothing():
    for d, seed in [(4, 0), (16, 1), (64, 2)]:
        rng = np.random.default_rng(seed)
        points = rng.normal(size=(2000, d))
        subset = rng.choice(["train", "val"], 2000)
        result = Outliers().run(synthetic_context(points, subset, rng.exponential(1, 2000)))
        assert result.scores["is_outlier"].sum() == 0, (d, result.scores["outlier_score"].max())
        assert result.insights == []


def test_duplicates_do_not_turn_the_rest_into_outliers():
    rng = np.random.default_rng(4)
    cloud = rng.normal(size=(1500, 16))
    copies = cloud[rng.integers(0, 12, 500)] + rng.normal(scale=1e-3, size=(500, 16))
    _, flags, _ = outlier_scores(
        neighbor_graph(np.vstack([cloud, copies]).astype(np.float32), 15).distances
    )
    assert flags.sum() == 0


def test_demo_run_has_no_outlier_population(shapes_run):
    ctx = analysis_context(shapes_run)
    result = Outliers().run(ctx)
    assert result.scores["is_outlier"].mean() < 0.01
    assert result.insights == []
