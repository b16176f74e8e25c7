"""Discovered concepts tied to the loss: a concept the model is confidently wrong on is reported,
with its samples; label noise spread over every concept raises nothing; the table is kept in
the run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

import latentsight as ls
from latentsight.discovery.performance import concept_loss_insights, dominant_concepts
from latentsight.insights.engine import concept_settings
from latentsight.store.concepts import discovered_file, stored_tables

LAYER = "head:input"
HARD = 2  # the planted concept whose samples cost more


class Head(nn.Module):
    """A linear head that reads the concept a sample is made of: logit c = 3 (x . direction c)."""

    def __init__(self, directions: np.ndarray) -> None:
        super().__init__()
        self.head = nn.Linear(16, 4)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor(3.0 * directions, dtype=torch.float32))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


def _run(tmp_path, *, planted: bool):
    """Samples made of one dominant concept of four; the label is that concept, except for 10%
    of the samples everywhere (label noise), and, when ``planted``, for the evaluation samples of
    concept 2, labelled as concept 3: the model is confidently wrong on them."""
    rng = np.random.default_rng(7)
    directions = np.zeros((4, 16))
    for i in range(4):
        directions[i, 4 * i : 4 * i + 4] = 0.5
    n = 1200
    dominant = rng.integers(0, 4, n)
    codes = rng.uniform(0.0, 0.2, (n, 4))
    codes[np.arange(n), dominant] = rng.uniform(1.0, 2.0, n)
    latents = codes @ directions + rng.uniform(0.0, 0.02, (n, 16))
    labels = np.where(rng.random(n) < 0.1, rng.integers(0, 4, n), dominant)
    evaluation = np.arange(n) >= 800
    if planted:
        labels = np.where(evaluation & (dominant == HARD), (HARD + 1) % 4, labels)
    items = [(torch.tensor(latents[i], dtype=torch.float32), int(labels[i])) for i in range(n)]
    project = ls.Project(
        model=Head(directions),
        data={"train": items[:800], "val": items[800:]},
        loss=ls.losses.cross_entropy,
        layers=[LAYER],
    )
    run = ls.analyze(project, tmp_path / "run", progress=False, insights=False)
    ids = [f"train/{i}" for i in range(800)] + [f"val/{i}" for i in range(400)]
    return run, pd.Series(dominant == HARD, index=ids)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("planted"), planted=True)


def test_the_planted_hard_concept_is_reported_with_its_samples(planted):
    run, truth = planted
    bank = run.discover_concepts(LAYER, per_class=False, k=4)
    found = concept_loss_insights(bank, alpha=0.05, min_population=10, metadata_columns=[])
    assert len(found) == 1, [i.title for i in found]
    insight = found[0]
    members = truth.reindex(insight.population)
    assert all(sample_id.startswith("val/") for sample_id in insight.population)
    assert members.mean() >= 0.95  # precision against the planted concept's samples
    assert members.sum() >= 0.95 * truth[truth.index.str.startswith("val/")].sum()  # recall
    evidence = insight.evidence[0]
    assert evidence.effect > 2.0 and evidence.q_value < 1e-6 and evidence.layer == LAYER


def test_the_analysis_discovers_per_class_and_keeps_the_table_in_the_run(planted):
    run, _ = planted
    run.analyze(settings=ls.AnalysisSettings(map_method="pca"), progress=False)
    notes = run.analysis_info["detectors"]["concept_aggressor"]
    assert notes["concepts"] >= 4 and "flagged" in notes
    stored = pq.read_table(discovered_file(run.path, LAYER)).to_pandas()
    settings = concept_settings(16, seed=0)
    bank = run.discover_concepts(LAYER, settings=settings, save=False)
    assert set(stored["class"]) == {0, 1, 2, 3}  # one dictionary per predicted class
    assert list(stored["concept"]) == list(bank.table["concept"])
    first = int(stored["concept"].iloc[0])
    assert list(stored["top_samples"].iloc[0]) == bank.top_samples(first).ids
    titles = [table.title for table in stored_tables(run.path)]
    assert f"Discovered concepts at {LAYER}" in titles


def test_nothing_is_reported_when_errors_do_not_depend_on_the_concept(tmp_path):
    run, _ = _run(tmp_path, planted=False)
    bank = run.discover_concepts(LAYER, per_class=False, k=4, save=False)
    dominant = dominant_concepts(bank)
    assert (dominant >= 0).all() and np.bincount(dominant).min() > 200  # each concept has many
    found = concept_loss_insights(bank, alpha=0.05, min_population=10, metadata_columns=[])
    assert found == []
    assert not discovered_file(run.path, LAYER).exists()
