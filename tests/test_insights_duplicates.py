"""Near-duplicates and leakage on data whose duplicates are known: the demo's easy copies are found
as redundancy, planted train->val copies as leakage (exactly), and clean data raises nothing."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from conftest import analysis_context
from scipy import stats

import latentsight as ls
from latentsight.insights.base import AnalysisContext, AnalysisSettings
from latentsight.insights.duplicates import (
    NearDuplicates,
    intrinsic_dimension,
    typical_distance,
)
from latentsight.insights.stats import binomial_test_greater, simes
from latentsight.latent.neighbors import neighbor_graph

ALPHA = AnalysisSettings().alpha
FAST = AnalysisSettings(map_method="pca", cluster_method="kmeans")


# --- the parts, against known answers ------------------------------------------------------------


def test_binomial_test_greater_matches_scipy():
    k, n, p0 = (
        np.array([0, 1, 5, 40]),
        np.array([10, 100, 240, 100]),
        np.array([0.1, 0.01, 1e-4, 0.3]),
    )
    expected = [
        stats.binomtest(int(a), int(b), c, alternative="greater").pvalue
        for a, b, c in zip(k, n, p0, strict=True)
    ]
    np.testing.assert_allclose(binomial_test_greater(k, n, p0), expected, rtol=1e-9)


def test_intrinsic_dimension_of_known_clouds():
    rng = np.random.default_rng(0)
    for dim in (2, 4, 8):
        cloud = rng.uniform(size=(3000, dim))
        graph = neighbor_graph(cloud, 15)
        assert intrinsic_dimension(graph.distances) == pytest.approx(dim, rel=0.2), dim
    flat = np.zeros((3000, 10))
    flat[:, :3] = rng.uniform(size=(3000, 3))  # a 3-D sheet in 10 dimensions
    assert intrinsic_dimension(neighbor_graph(flat, 15).distances) == pytest.approx(3, rel=0.2)


def test_simes_combination():
    assert simes(np.array([0.01, 0.04]), 4) == pytest.approx(min(4 * 0.01, 4 * 0.04 / 2))
    assert simes(np.array([]), 10) == 1.0
    assert simes(np.array([0.5]), 10) == 1.0


def test_typical_distance_ignores_a_quarter_of_copies():
    rng = np.random.default_rng(0)
    first = rng.uniform(0.8, 1.2, 3000)
    first[:1000] = rng.uniform(0.0, 0.05, 1000)  # a third of the samples are copies
    assert typical_distance(first, 0.25) == pytest.approx(1.0, abs=0.02)


# --- hand-made latent space: exact answers ---------------------------------------------------------


def _context(
    latents: np.ndarray,
    subsets: list[str],
    targets: np.ndarray | None = None,
    task: str = "classification",
) -> AnalysisContext:
    """An AnalysisContext over given latent vectors (reduced = latents), nothing else analysed."""
    n = len(latents)
    samples = pd.DataFrame(
        {"id": [f"s{i}" for i in range(n)], "subset": subsets, "loss": np.ones(n)}
    )
    if targets is not None:
        samples["target"] = targets
    return AnalysisContext(
        samples=samples,
        layer="toy",
        latents=latents,
        reduced=latents,
        coords=np.zeros((n, 2)),
        clusters=np.zeros(n, dtype=int),
        noise=np.zeros(n, dtype=bool),
        neighbors=neighbor_graph(latents, 15),
        loss_columns=["loss"],
        metrics={},
        metadata_columns=[],
        task=task,
        settings=AnalysisSettings(),
    )


def test_hand_made_leakage_and_redundancy_found_exactly():
    rng = np.random.default_rng(1)
    latents = rng.normal(size=(800, 6))
    subsets = ["train"] * 600 + ["val"] * 200
    group = np.arange(20)  # train 1..19 are jittered copies of train 0
    latents[group] = latents[0] + rng.normal(scale=0.01, size=(20, 6))
    leaked = {600: 100, 601: 200, 602: 300}  # val copies of train samples (one jittered)
    for val, train in leaked.items():
        latents[val] = latents[train]
    latents[602] += rng.normal(scale=0.01, size=6)
    result = NearDuplicates().run(_context(latents, subsets))
    by_kind = {insight.kind: insight for insight in result.insights}
    assert set(by_kind) == {"leakage", "redundancy"}
    leak = by_kind["leakage"]
    assert set(leak.population) == {f"s{i}" for pair in leaked.items() for i in pair}
    assert leak.evidence[0].counts == {"train": 3, "val": 3}
    assert leak.q_value < ALPHA and leak.evidence[0].effect > 4
    assert set(by_kind["redundancy"].population) == {f"s{i}" for i in group}
    assert by_kind["redundancy"].q_value < 1e-10
    scores = result.scores.set_index("id")
    assert scores.loc["s600", "duplicate_group"] == scores.loc["s100", "duplicate_group"] >= 0
    assert (scores["duplicate_group"] >= 0).sum() == 26


def _copies_of_several_classes() -> tuple[np.ndarray, list[str], np.ndarray]:
    """Random latents with planted near-copy groups, some of one class and some of several."""
    rng = np.random.default_rng(2)
    latents = rng.normal(size=(800, 6))
    subsets = ["train"] * 600 + ["val"] * 200
    targets = rng.integers(0, 4, 800)
    copies = {600: 100, 601: 200, 602: 300}  # val copies of train samples
    for val, train in copies.items():
        latents[val] = latents[train] + rng.normal(scale=0.01, size=6)
        targets[val] = targets[train]
    targets[602] = (targets[300] + 1) % 4  # a copy labelled as another class
    # Look-alikes of two classes in train, and a val sample among them: not copies of one image.
    latents[[400, 401, 603]] = latents[400] + rng.normal(scale=0.01, size=(3, 6))
    targets[[400, 401, 603]] = [0, 1, 0]
    # Three training copies, one of them mislabelled, and a val copy: the majority label leaks.
    latents[[500, 501, 502, 604]] = latents[500] + rng.normal(scale=0.01, size=(4, 6))
    targets[[500, 501, 502, 604]] = [1, 1, 2, 1]
    # Inside train: 30 copies of one image, one of them mislabelled (redundancy without it), and
    # two look-alikes of different classes (not copies: no redundancy).
    latents[:30] = latents[0] + rng.normal(scale=0.01, size=(30, 6))
    targets[:30], targets[7] = 3, 0
    latents[[450, 451]] = latents[450] + rng.normal(scale=0.01, size=(2, 6))
    targets[[450, 451]] = [2, 3]
    return latents, subsets, targets


def test_near_copies_of_another_class_are_not_leakage():
    latents, subsets, targets = _copies_of_several_classes()
    result = NearDuplicates().run(_context(latents, subsets, targets))
    [leak] = [i for i in result.insights if i.kind == "leakage"]
    assert set(leak.population) == {f"s{i}" for i in (100, 600, 200, 601, 500, 501, 502, 604)}
    assert leak.evidence[0].counts == {"train": 5, "val": 3}
    assert result.info["leaking_groups"] == 3 and result.info["conflicting_groups"] == 3
    [redundancy] = [i for i in result.insights if i.kind == "redundancy"]
    assert set(redundancy.population) == {f"s{i}" for i in range(30) if i != 7}
    # Without class labels (regression) every group spanning train and val is leakage.
    result = NearDuplicates().run(_context(latents, subsets, targets, task="regression"))
    [leak] = [i for i in result.insights if i.kind == "leakage"]
    assert {i for i in leak.population if i.startswith("s6")} == {f"s60{i}" for i in range(5)}
    assert "collapsed_classes" not in {i.kind for i in result.insights}


def test_groups_of_several_classes_are_collapsed_classes_with_their_likely_errors():
    latents, subsets, targets = _copies_of_several_classes()
    result = NearDuplicates().run(_context(latents, subsets, targets))
    [collapsed] = [i for i in result.insights if i.kind == "collapsed_classes"]
    mixed = {
        (300, 602): {300, 602},  # one copy each of two classes: no majority, both suspect
        (400, 401, 603): {401},
        (500, 501, 502, 604): {502},
        tuple(range(30)): {7},
        (450, 451): {450, 451},
    }
    assert set(collapsed.population) == {f"s{i}" for group in mixed for i in group}
    assert result.info["collapsed_groups"] == 5 and collapsed.q_value < ALPHA
    groups = collapsed.evidence[0].details["groups"]
    assert len(groups) == len(mixed)
    for group, suspects in mixed.items():  # ids are listed up to IDS_LISTED per group
        [listed] = [g for g in groups if set(g["ids"]) <= {f"s{i}" for i in group}]
        assert listed["size"] == len(group)
        assert set(listed["minority_ids"]) == {f"s{i}" for i in suspects}
    [whole] = [g for g in groups if g["size"] == 30]
    assert whole["classes"] == {"3": 29, "0": 1} and whole["majority_class"] == 3
    assert "5 classes" not in collapsed.title and "4 classes" in collapsed.title


def _cloud(rng: np.random.Generator, kind: str, dim: int, n: int = 1200) -> np.ndarray:
    """A point cloud without duplicates: Gaussian, uniform, or a Gaussian plus a cluster 5x
    tighter (dense regions have small neighbour distances too; they are not duplicates)."""
    if kind == "normal":
        return rng.normal(size=(n, dim))
    if kind == "uniform":
        return rng.uniform(size=(n, dim))
    tight = n // 4
    return np.concatenate(
        [rng.normal(size=(n - tight, dim)), 3.0 + 0.2 * rng.normal(size=(tight, dim))]
    )


def test_clouds_without_duplicates_rarely_raise_anything():
    rng = np.random.default_rng(3)
    alarms, candidates = [], 0
    for kind in ("normal", "uniform", "dense cluster"):
        for dim in (3, 6, 20):
            for _ in range(2):
                ctx = _context(_cloud(rng, kind, dim), ["train"] * 900 + ["val"] * 300)
                result = NearDuplicates().run(ctx)
                candidates += result.info["candidate_groups"]
                if any(i.q_value < ALPHA for i in result.insights):
                    alarms.append((kind, dim))
    assert candidates > 50  # close pairs do occur by chance (low dimension, the dense cluster)
    assert len(alarms) <= 1, alarms  # the false-alarm rate of a run is about alpha


# --- the demo's easy copies --------------------------------------------------------------------------


def _truth(run) -> tuple[set[str], set[str]]:
    """(easy copies, easy copies and their sources) of a shapes run."""
    truth = pd.read_parquet(run.path / "extras/ground_truth.parquet")
    copies = set(truth.loc[truth["easy_copy"], "id"])
    sources = {f"train/{i}" for i in truth.loc[truth["easy_copy"], "easy_source"].unique()}
    return copies, copies | sources


@pytest.mark.parametrize(
    ("layer", "view", "min_recall"),
    [(None, "mean", 0.5), ("features.1.0", "mean", 0.95), ("features.2", "grid", 0.95)],
)
def test_easy_copies_are_found_as_redundancy(shapes_run, layer, view, min_recall):
    ctx = analysis_context(shapes_run, layer, view)
    result = NearDuplicates().run(ctx)
    copies, duplicated = _truth(shapes_run)
    [redundancy] = [i for i in result.insights if i.kind == "redundancy"]
    population = set(redundancy.population)
    precision = len(population & copies) / len(population)
    recall = len(population & copies) / len(copies)
    assert precision >= 0.95 and recall >= min_recall, (precision, recall)
    assert population <= duplicated  # every false positive is one of the copied sources
    assert redundancy.q_value < 1e-10 and redundancy.evidence[0].effect > 3
    assert redundancy.evidence[0].counts == {"train": len(population)}
    # Any leakage here is a val image drawn near-identical to an easy source by chance.
    for leak in (i for i in result.insights if i.kind == "leakage"):
        assert {s for s in leak.population if s.startswith("train/")} <= duplicated
    scores = result.scores.set_index("id").loc[ctx.samples["id"]]
    is_copy = ctx.samples["id"].isin(copies).to_numpy()
    auc = stats.mannwhitneyu(
        scores["duplicate_score"][is_copy], scores["duplicate_score"][~is_copy]
    ).statistic / (is_copy.sum() * (~is_copy).sum())
    assert auc > 0.9


# --- planted leakage in a captured run, and its clean control ----------------------------------


@pytest.fixture(scope="module")
def demo_model(shapes_run):
    """The demo CNN that ``shapes_run`` was captured with, from the fixture's weight cache."""
    from latentsight.demo.model import load_or_train_demo_model
    from latentsight.demo.shapes import ShapesConfig

    cache = os.environ.get("LATENTSIGHT_CACHE", str(shapes_run.path.parent / "cache"))
    config = ShapesConfig(n_train=3000, n_val=1000, seed=0)
    model, loaded = load_or_train_demo_model(config, cache_dir=cache)
    assert loaded, "the shapes_run fixture's cached model was not found"
    return model


def _captured(tmp_path, model, plant: bool) -> tuple[ls.Run, set[str]]:
    """A clean small shapes run; with ``plant``, six val images replaced by copies of train ones
    (three exact, three with fresh pixel noise). Returns the run and the planted ids."""
    from latentsight.demo.run import demo_project
    from latentsight.demo.shapes import PIXEL_NOISE, ShapesConfig, generate_shapes

    subsets = generate_shapes(ShapesConfig(n_train=600, n_val=240, seed=1).clean())
    planted: set[str] = set()
    if plant:
        train, val = subsets["train"], subsets["val"]
        rng = np.random.default_rng(0)
        sources = rng.choice(len(train), 6, replace=False)
        targets = rng.choice(len(val), 6, replace=False)
        columns = [c for c in val.metadata.columns if c != "id"]
        for k, (i, j) in enumerate(zip(sources, targets, strict=True)):
            image = train.images[i].astype(np.float32)
            if k % 2:
                image += rng.normal(0.0, PIXEL_NOISE, image.shape)
            val.images[j] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
            val.targets[j] = train.targets[i]
            val.metadata.loc[j, columns] = train.metadata.loc[i, columns].to_numpy()
            planted |= {f"train/{i}", f"val/{j}"}
    run = ls.analyze(demo_project(subsets, model), tmp_path / "run", progress=False, insights=False)
    return run, planted


def test_planted_leakage_is_found_exactly(tmp_path, demo_model):
    run, planted = _captured(tmp_path, demo_model, plant=True)
    result = NearDuplicates().run(analysis_context(run, "features.2", "grid"))
    [leak] = result.insights
    assert leak.kind == "leakage" and set(leak.population) == planted
    assert leak.evidence[0].counts == {"train": 6, "val": 6}
    assert leak.q_value < 1e-6
    assert "evaluation scores are inflated" in leak.action
    # Through the analysis stage on the default (last) layer: the exact copies are found there
    # too (the pixel-noise copies are harder to tell from look-alikes near the output).
    insights = run.analyze(settings=FAST, detectors=["duplicate"], progress=False)
    [leak] = insights
    exact = {i for i in planted if i.startswith("val/")} & {
        i for i in leak.population if i.startswith("val/")
    }
    assert set(leak.population) <= planted and len(exact) >= 3
    assert json.loads(json.dumps(asdict(leak)))["kind"] == "leakage"
    scores = run.scores.set_index("id")
    assert (scores.loc[sorted(planted), "duplicate_group"] >= 0).sum() >= 6


def test_clean_shapes_raise_no_duplicates(tmp_path, demo_model):
    run, _ = _captured(tmp_path, demo_model, plant=False)
    for layer, view in [(None, "mean"), ("features.1.0", "mean"), ("features.2", "grid")]:
        result = NearDuplicates().run(analysis_context(run, layer, view))
        assert result.insights == [], (layer, view, [i.title for i in result.insights])
        assert result.info["grouped_samples"] == 0, (layer, view)
        assert result.info["candidate_samples"] <= 4, (layer, view)
