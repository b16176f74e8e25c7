"""The label-issue detector on data where the truth is known: a pocket of flipped labels is found
as an inconsistent-labelling region; uniform noise, a chance-level model and a model with random
weights raise no region."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import analysis_context
from torch import nn

import latentsight as ls
from latentsight.insights import label_issues
from latentsight.insights.base import AnalysisContext, AnalysisSettings
from latentsight.insights.label_issues import LabelIssues
from latentsight.insights.ranking import rank_insights
from latentsight.latent.neighbors import neighbor_graph

N_CLASSES = 4


def synthetic_context(
    true_class: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    latents: np.ndarray,
    subset: np.ndarray,
    site: np.ndarray,
    task: str = "classification",
) -> AnalysisContext:
    """An AnalysisContext over hand-made latents with the real neighbour graph; clusters are the
    true classes (what clustering a trained classifier's latents mostly finds)."""
    n = len(labels)
    loss = -np.log(np.maximum(probabilities[np.arange(n), labels], 1e-9))
    samples = pd.DataFrame(
        {
            "id": [f"s{i}" for i in range(n)],
            "subset": subset,
            "target": labels,
            "prediction": probabilities.argmax(axis=1),
            "probabilities": list(probabilities),
            "loss": loss,
            "site": site,
            "age": np.random.default_rng(0).uniform(20, 80, n),
        }
    )
    settings = AnalysisSettings(map_method="pca")
    return AnalysisContext(
        samples=samples,
        layer="synthetic",
        latents=latents,
        reduced=latents,
        coords=latents[:, :2],
        clusters=true_class,
        noise=np.zeros(n, bool),
        neighbors=neighbor_graph(latents, settings.n_neighbors, seed=0),
        loss_columns=["loss"],
        metrics={},
        metadata_columns=["site", "age"],
        task=task,
        settings=settings,
    )


def blobs(n: int = 1600, seed: int = 0):
    """Four Gaussian class blobs in 8-D; the Bayes posterior stands in for a trained model."""
    rng = np.random.default_rng(seed)
    true_class = rng.integers(0, N_CLASSES, n)
    centres = 5.0 * np.eye(8)[:N_CLASSES]
    latents = (centres[true_class] + rng.normal(size=(n, 8))).astype(np.float32)
    logits = -0.5 * ((latents[:, None, :] - centres[None]) ** 2).sum(axis=2)
    posterior = np.exp(logits - logits.max(axis=1, keepdims=True))
    posterior /= posterior.sum(axis=1, keepdims=True)
    subset = rng.choice(["train", "val"], n, p=[0.7, 0.3])
    site = rng.choice(["s1", "s2", "s3"], n)
    return rng, true_class, latents, posterior, subset, site


def flip(rng, true_class: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Labels with the chosen samples moved to a random other class."""
    offset = rng.integers(1, N_CLASSES, len(true_class))
    return np.where(chosen, (true_class + offset) % N_CLASSES, true_class)


def memorised(probabilities, labels, subset):
    """A model that learned its training labels by heart, flipped ones included."""
    out = probabilities.copy()
    train = subset == "train"
    out[train] = 0.02 / (N_CLASSES - 1)
    out[train, labels[train]] = 0.98
    return out


def precision_recall(population: list[str], ids: np.ndarray, truth: np.ndarray):
    """Precision and recall of a population against the samples where ``truth`` holds."""
    population, planted = set(population), set(ids[truth])
    hits = len(population & planted)
    return hits / max(len(population), 1), hits / len(planted)


def test_pocket_of_flipped_labels_is_an_inconsistent_region():
    rng, true_class, latents, posterior, subset, site = blobs()
    pocket = (true_class == 2) & (site == "s3")
    flipped = pocket & (rng.random(len(site)) < 0.4)
    labels = flip(rng, true_class, flipped)
    ctx = synthetic_context(
        true_class, labels, memorised(posterior, labels, subset), latents, subset, site
    )
    result = LabelIssues().run(ctx)
    scores = result.scores
    assert list(scores.columns) == ["id", "label_issue_score", "is_label_issue", "suggested_label"]
    assert scores["label_issue_score"].between(0, 1).all()
    flags = scores["is_label_issue"].to_numpy(bool)
    assert (flags & flipped).sum() / flipped.sum() >= 0.9  # memorised training flips included
    assert (flags & flipped).sum() / flags.sum() >= 0.9
    assert (scores["suggested_label"].to_numpy()[flipped] == 2).mean() >= 0.9
    top = rank_insights(result.insights, ctx.settings.alpha)[0]
    assert top.kind == "inconsistent_labels"
    precision, recall = precision_recall(top.population, ctx.samples["id"].to_numpy(), flipped)
    assert precision >= 0.9 and recall >= 0.9, (top.title, precision, recall)
    assert "neighbours say class 2" in top.description
    assert top.evidence[0].effect > 2 and top.evidence[0].q_value < 1e-6
    assert "relabel" in top.action


def test_uniform_label_noise_is_flagged_per_sample_but_forms_no_region():
    rng, true_class, latents, posterior, subset, site = blobs(seed=1)
    flipped = rng.random(len(site)) < 0.06
    labels = flip(rng, true_class, flipped)
    result = LabelIssues().run(
        synthetic_context(true_class, labels, posterior, latents, subset, site)
    )
    flags = result.scores["is_label_issue"].to_numpy(bool)
    assert (flags & flipped).sum() / flipped.sum() >= 0.9
    assert result.insights == [], [i.title for i in result.insights]


def test_clean_labels_and_chance_level_model_flag_nothing():
    rng, true_class, latents, posterior, subset, site = blobs(seed=2)
    clean = LabelIssues().run(
        synthetic_context(true_class, true_class, posterior, latents, subset, site)
    )
    assert clean.insights == [] and clean.scores["is_label_issue"].sum() <= 2
    # a model at chance: its probabilities carry nothing, so no label is judged against it
    labels = flip(rng, true_class, (true_class == 2) & (rng.random(len(site)) < 0.4))
    chance = rng.dirichlet(np.ones(N_CLASSES), len(labels))
    result = LabelIssues().run(synthetic_context(true_class, labels, chance, latents, subset, site))
    assert result.insights == [] and result.scores["is_label_issue"].sum() == 0
    assert result.info["model_check"]["learned"] is False and "skipped" in result.info


def test_detectors_for_class_labels_do_not_run_on_a_regression_run(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(160, 5)
    project = ls.Project(
        model=nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1)),
        data={
            "train": [(x[i], x[i, :1]) for i in range(100)],
            "val": [(x[i], x[i, :1]) for i in range(100, 160)],
        },
        loss=ls.losses.mse,
    )
    run = ls.analyze(project, tmp_path / "run", progress=False)
    notes = run.analysis_info["detectors"]
    assert run.manifest["task"] == "regression"
    assert notes["label_issues"] == {"not_for_task": "for classification and binary runs"}
    assert notes["multilabel_label_issues"] == {"not_for_task": "for multilabel runs"}
    assert notes["spurious_correlation"] == {"not_for_task": "for classification runs"}
    assert notes["performance_aggressor"]["tested"] > 0


def _ground_truth(run) -> np.ndarray:
    truth = pd.read_parquet(run.path / "extras/ground_truth.parquet").set_index("id")
    return truth.loc[run.samples["id"], "label_flipped"].to_numpy(bool)


def test_demo_flipped_triangles_are_found(shapes_run):
    ctx = analysis_context(shapes_run)  # last layer (classifier.3:input), mean view
    result = LabelIssues().run(ctx)
    flipped = _ground_truth(shapes_run)
    flags = result.scores["is_label_issue"].to_numpy(bool)
    per_sample = ((flags & flipped).sum() / flags.sum(), (flags & flipped).sum() / flipped.sum())
    print(f"per-sample is_label_issue precision {per_sample[0]:.2f} recall {per_sample[1]:.2f}")
    assert per_sample[0] >= 0.4 and per_sample[1] >= 0.5
    found = rank_insights(result.insights, ctx.settings.alpha)
    assert found and found[0].kind == "inconsistent_labels"
    precision, recall = precision_recall(found[0].population, ctx.samples["id"].to_numpy(), flipped)
    print(f"top region {found[0].title!r}: precision {precision:.2f} recall {recall:.2f}")
    assert precision >= 0.7 and recall >= 0.5
    assert "clutter higher" in found[0].description


@pytest.fixture(scope="module")
def random_weights_run(tmp_path_factory):
    """The fixture's data captured through the demo CNN with random (untrained) weights."""
    import torch

    import latentsight as ls
    from latentsight.demo.model import ShapesCNN
    from latentsight.demo.run import demo_project
    from latentsight.demo.shapes import ShapesConfig, generate_shapes

    subsets = generate_shapes(ShapesConfig(n_train=3000, n_val=1000, seed=0))
    torch.manual_seed(0)
    model = ShapesCNN().eval()
    root = tmp_path_factory.mktemp("random-weights")
    return ls.analyze(demo_project(subsets, model), root / "run", progress=False, insights=False)


def test_random_weights_raise_no_label_issue_region(random_weights_run, monkeypatch):
    ctx = analysis_context(random_weights_run)
    result = LabelIssues().run(ctx)
    assert result.insights == []
    assert result.scores["is_label_issue"].sum() == 0
    assert result.info["model_check"]["learned"] is False
    # without the accuracy check, the regions a random network's latents suggest (minority labels
    # among look-alikes, e.g. non-circles on the blue background circles mostly have) are still
    # not backed by the model on held-out samples
    real_check = label_issues._model_has_learned
    monkeypatch.setattr(
        label_issues, "_model_has_learned", lambda *args: {**real_check(*args), "learned": True}
    )
    assert LabelIssues().run(ctx).insights == []
