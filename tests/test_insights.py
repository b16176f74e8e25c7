"""The analysis stage on data where the truth is known: a planted failing population is found,
described and ranked; on clean data nothing is flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import latentsight as ls

FAST = ls.AnalysisSettings(map_method="pca")


def _data(n: int, planted: bool, seed: int):
    """Two classes split by x0 > 0; at site "c" (planted) the labels follow x0 < 0 instead."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    site = rng.choice(["a", "b", "c", "d"], size=n, p=[0.4, 0.3, 0.15, 0.15])
    y = (x[:, 0] > 0).astype(int)
    if planted:
        y = np.where(site == "c", 1 - y, y)
    metadata = {
        "site": site,
        "age": rng.uniform(20, 80, n),
        "shift": rng.choice(["day", "night"], n),
    }
    return x, y, metadata


def _trained_model(x: np.ndarray, y: np.ndarray) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    return model.eval()


def _run(tmp_path, planted: bool) -> ls.Run:
    x, y, meta = _data(1600, planted, seed=0)
    model = _trained_model(x[:1000], (x[:1000, 0] > 0).astype(int))  # learns the majority rule
    subsets = {"train": range(0, 1000), "val": range(1000, 1600)}
    data = {
        name: [(torch.from_numpy(x[i]), int(y[i])) for i in rows] for name, rows in subsets.items()
    }
    ids = [f"{name}/{j}" for name, rows in subsets.items() for j in range(len(rows))]
    metadata = pd.DataFrame({"id": ids, **meta})
    project = ls.Project(model=model, data=data, loss=ls.losses.cross_entropy, metadata=metadata)
    return ls.analyze(project, tmp_path / "run", progress=False, analysis=FAST)


def test_planted_failing_population_is_the_top_insight(tmp_path):
    run = _run(tmp_path, planted=True)
    top = run.insights[0]
    assert top.kind == "performance_aggressor"
    samples = run.samples.set_index("id")
    planted = set(
        samples.index[(samples["site"] == "c") & samples["subset"].isin(["train", "val"])]
    )
    population = set(top.population)
    precision = len(population & planted) / len(population)
    recall = len(population & planted) / len(planted)
    assert precision >= 0.7 and recall >= 0.5, (top.title, precision, recall)
    evidence = top.evidence[0]
    assert evidence.q_value < 1e-6 and evidence.effect > 2
    flagged_columns = {i.title.split(" ")[0] for i in run.insights}
    assert "age" not in flagged_columns and "shift" not in flagged_columns
    # the means are of the validation samples: the description counts them apart
    assert evidence.details["tested_on"] == "evaluation subsets"
    in_val = int(samples.loc[list(population), "subset"].eq("val").sum())
    tested = samples.loc[samples["subset"] == "val"]
    loss_in = tested.loc[tested.index.isin(population), "loss"].mean()
    assert f"{len(population)} samples, {in_val} of them in the evaluation" in top.description
    assert f"mean loss {loss_in:.3g} against" in top.description


def test_clean_data_raises_no_aggressor_overfitting_or_representation_insight(tmp_path):
    run = _run(tmp_path, planted=False)
    assert run.analysis_info["layers_searched"] == run.layers[::-1]  # every layer was searched
    assert run.analysis_info["detectors"]["concept_aggressor"]["concepts"] >= 4  # discovery ran
    for kinds in (
        {"performance_aggressor"},
        {"overfitting", "memorization"},
        {"over_represented", "under_represented"},
        {"spurious_correlation"},
        {"concept_aggressor"},
    ):
        flagged = [i.title for i in run.insights if i.kind in kinds]
        assert len(flagged) <= 1, flagged


def test_map_clusters_and_stored_analysis(tmp_path):
    run = _run(tmp_path, planted=True)
    reopened = ls.open_run(run.path)
    assert list(reopened.map.columns) == ["id", "x", "y", "cluster", "noise"]
    assert list(reopened.map["id"]) == list(reopened.samples["id"])
    assert reopened.map["cluster"].min() >= 0
    clusters = reopened.clusters
    assert clusters["size"].sum() == len(reopened.samples)
    assert {"mean_loss", "accuracy", "n_train", "n_val", "enriched"} <= set(clusters.columns)
    assert [i.title for i in reopened.insights] == [i.title for i in run.insights]
    info = reopened.analysis_info
    assert info["layer"] == "2:input" and info["settings"]["map_method"] == "pca"
    # re-running with the same settings gives the same result (seeded, deterministic)
    again = reopened.analyze(settings=FAST, progress=False)
    assert [(i.title, i.population) for i in again] == [
        (i.title, i.population) for i in run.insights
    ]


def test_unanalysed_run_says_how_to_analyse(tmp_path, data):
    from conftest import TinyCNN

    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy)
    run = ls.analyze(project, tmp_path / "run", progress=False, insights=False)
    with pytest.raises(ls.NotRecordedError, match=r"run.analyze\(\)"):
        _ = run.insights
    with pytest.raises(ls.NotRecordedError, match="Layer 'nope' was not recorded"):
        run.analyze(layer="nope")
