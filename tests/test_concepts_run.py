"""Concepts of a captured run: labels from stored latents, the CLI, and the spurious-feature audit
(planted head with known drivers; the demo model trained with the blue-background shortcut)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TinyCNN, image_items
from torch import nn
from typer.testing import CliRunner

import latentsight as ls
from latentsight.cli import app
from latentsight.concepts import (
    ConceptsError,
    ConceptSettings,
    build_vocabulary,
    label_activations,
)
from latentsight.insights.base import Evidence, Insight
from latentsight.store.concepts import read_table, stored_tables


def _demo_model(run):
    from latentsight.demo.model import load_or_train_demo_model
    from latentsight.demo.shapes import ShapesConfig

    cache = os.environ.get("LATENTSIGHT_CACHE", str(run.path.parent / "cache"))
    model, _ = load_or_train_demo_model(
        ShapesConfig(n_train=3000, n_val=1000, seed=0), cache_dir=cache
    )
    return model


def test_the_audit_finds_the_blue_background_shortcut_of_class_circle(shapes_run):
    concepts = shapes_run.concepts(
        "classifier.3:input", class_names=["circle", "square", "triangle", "cross"]
    )
    audit = concepts.audit(_demo_model(shapes_run))
    circle = next(a for a in audit.classes if a.label == 0)
    driver_concepts = " | ".join(str(d.formula) for d in circle.drivers)
    assert "background == blue" in driver_concepts
    assert circle.likely_shortcut
    assert [a.name for a in audit.classes if a.likely_shortcut] == ["circle"]
    (insight,) = audit.insights
    assert isinstance(insight, Insight) and insight.kind == "spurious_feature"
    assert "background == blue" in insight.title
    (evidence,) = insight.evidence
    assert isinstance(evidence, Evidence) and evidence.q_value < 0.05 and evidence.effect > 0.9
    samples = shapes_run.samples.set_index("id")
    assert (samples.loc[insight.population, "background"] == "blue").all()
    assert (samples.loc[insight.population, "target"] != 0).all()


def test_labels_of_the_demo_run(shapes_run):
    concepts = shapes_run.concepts(["features.2", "classifier.3:input"])
    table = concepts.table
    assert len(table) == 32 + 32
    assert {"formula", "explanation", "auc", "p_value", "q_value", "runner_ups"} <= set(table)
    summary = concepts.layer_summary.set_index("layer")
    assert summary.loc["classifier.3:input", "significant"] > 16
    blue = concepts.neurons_for("background == blue")
    assert blue.loc[0, "auc"] > 0.8 and blue.loc[0, "significant"]
    assert list(concepts.depth.columns) == ["features.2", "classifier.3:input"]


def test_cli_prints_and_stores_the_labels(shapes_run):
    shutil.rmtree(shapes_run.path / "concepts", ignore_errors=True)  # from earlier tests
    result = CliRunner().invoke(
        app, ["concepts", str(shapes_run.path), "--layer", "classifier.3:input", "--top", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "significant concept" in result.output and "Layers" in result.output
    assert "Stored in" in result.output
    stored = {t.name: t for t in stored_tables(shapes_run.path)}
    assert len(read_table(stored["neurons.classifier.3@input"])) == 32
    missing = CliRunner().invoke(app, ["concepts", str(shapes_run.path), "--layer", "nope"])
    assert missing.exit_code == 2 and "was not recorded" in missing.output


def test_planted_drivers_make_one_class_a_shortcut_and_not_the_other():
    """Neuron 0 detects the background (not a class) and drives class 0; neurons 1 and 2
    detect class 1 and drive it. Class 0 is flagged, class 1 is not."""
    rng = np.random.default_rng(0)
    n = 2000
    target = rng.integers(0, 2, n)
    aligned = rng.random(n) < np.where(target == 0, 0.8, 0.1)
    background = np.where(aligned, "blue", "green")
    prediction = np.where(background == "blue", 0, target)
    activations = rng.normal(size=(n, 3))
    activations[:, 0] += 3.0 * (background == "blue")
    activations[:, 1] += 3.0 * (target == 1)
    activations[:, 2] += 2.0 * (target == 1)
    samples = pd.DataFrame(
        {
            "id": [f"s/{i}" for i in range(n)],
            "target": target,
            "prediction": prediction,
            "background": background,
        }
    )
    vocabulary = build_vocabulary(samples, metadata_columns=["background"])
    concepts = label_activations({"fc:input": activations}, samples, vocabulary)
    head = nn.Linear(3, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, -1.0, -1.0], [-1.0, 1.5, 1.0]]))
    model = nn.Sequential()
    model.add_module("fc", head)
    audit = concepts.audit(model)
    verdicts = {a.label: a for a in audit.classes}
    assert verdicts[0].likely_shortcut and not verdicts[1].likely_shortcut
    assert str(verdicts[0].drivers[0].formula) == "background == blue"
    assert [d.neuron for d in verdicts[1].drivers] == [1, 2]
    (insight,) = audit.insights
    assert insight.evidence[0].details["predicted_as_class_with_concept"] == 1.0
    with pytest.raises(ConceptsError, match=r"needs an nn.Linear"):
        concepts.audit(nn.Sequential(nn.Identity()), head="0")


def test_a_projected_mean_view_is_refused(tmp_path):
    project = ls.Project(
        model=TinyCNN(),
        data={"train": image_items(16, seed=0)},
        loss=ls.losses.cross_entropy,
        layers=["features.0", "features.2"],
    )
    run = ls.analyze(
        project,
        tmp_path / "run",
        pooling=ls.PoolingSettings(project_above=8),
        progress=False,
        insights=False,
    )
    with pytest.raises(ConceptsError, match=r"random projection"):
        run.concepts("features.2")
    with pytest.raises(ConceptsError, match=r"No subset 'val'"):
        run.concepts("features.0", subset="val")
    assert len(run.concepts("features.0").table) == 8  # 8 channels, kept as they are


def test_concepts_and_their_audit_are_stored_in_the_run(tmp_path, data, metadata):
    project = ls.Project(
        model=TinyCNN(),
        data=data,
        loss=ls.losses.cross_entropy,
        metadata=metadata,
        layers=["features.2", "fc:input"],
    )
    run = ls.analyze(project, tmp_path / "run", progress=False, insights=False)
    run.concepts("features.2", save=False)
    result = CliRunner().invoke(app, ["concepts", str(run.path), "--no-save"])
    assert result.exit_code == 0, result.output
    assert stored_tables(run.path) == []  # kept in memory only
    concepts = run.concepts(
        ["features.2", "fc:input"], subset="train", settings=ConceptSettings(beam=3)
    )
    stored = stored_tables(run.path)
    assert [t.name for t in stored] == ["neurons.fc@input", "neurons.features.2"]
    for table in stored:
        layer = table.info["layer"]
        assert table.title == f"Neuron concepts at {layer}"
        assert table.info["subset"] == "train" and table.info["settings"]["beam"] == 3
        expected = concepts.table[concepts.table["layer"] == layer].reset_index(drop=True)
        frame = read_table(table)
        assert "explanation" not in frame  # formula objects are kept as their text
        for column in ("neuron", "formula", "significant", "length", "tested"):
            assert frame[column].tolist() == expected[column].tolist()
        for column in ("auc", "p_value", "q_value", "fraction"):
            assert np.allclose(frame[column], expected[column], equal_nan=True)
        assert [list(r) for r in frame["runner_ups"]] == expected["runner_ups"].tolist()
    with pytest.raises(ls.ProjectError, match=r"not the one .* captured with"):
        concepts.audit(TinyCNN(seed=7), layer="fc:input")  # another model's head, refused
    audit = concepts.audit(layer="fc:input")  # the run's attached model
    (audited,) = [t for t in stored_tables(run.path) if t.name == "audit"]
    assert audited.title == "Spurious-feature audit at fc:input"
    frame = read_table(audited)
    assert frame[["class", "neuron", "formula"]].values.tolist() == (
        audit.table[["class", "neuron", "formula"]].values.tolist()
    )
    assert np.allclose(frame["share"], audit.table["share"])
