"""Concept discovery on the demo run: the blue-background concept of class circle is found and
named, importance reproduces the stored probabilities, and the CLI prints the table."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import latentsight as ls
from latentsight.cli import app
from latentsight.discovery import DiscoveryError, DiscoverySettings

LAYER = "classifier.3:input"
NAMES = ["circle", "square", "triangle", "cross"]


@pytest.fixture(scope="module")
def bank(attached_shapes_run):
    settings = DiscoverySettings(ks=range(2, 6))
    return attached_shapes_run.discover_concepts(
        LAYER, k="auto", settings=settings, class_names=NAMES
    )


def test_a_circle_concept_is_named_by_the_blue_background(bank):
    table = bank.table
    assert set(table["class"]) == {0, 1, 2, 3} and not bank.notes
    circle = table[table["class"] == 0]
    blue = circle[circle["name"].str.contains("background == blue", regex=False)]
    assert len(blue) >= 1, circle[["name", "auc"]]
    assert blue["auc"].max() > 0.9
    # the blue concept holds most circles and is the class's most important concept
    assert blue["prevalence"].max() > 0.5
    assert circle["importance"].idxmax() in blue.index
    assert (table["importance"] >= table["signed_importance"].abs() - 1e-12).all()
    assert set(bank.sweeps["k"]) == {2, 3, 4, 5} and bank.sweeps["chosen"].sum() == 4


def test_importance_reproduces_the_stored_probabilities(bank):
    samples = bank.samples.set_index("id")
    for sample_id in samples.index[[0, 1500, 3999]]:
        logits = np.array([bank.importance(sample_id, label).logit for label in range(4)])
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        assert np.allclose(probabilities, samples.loc[sample_id, "probabilities"], atol=1e-5)
    found = bank.importance(samples.index[0])
    assert found.label == samples["prediction"].iloc[0]
    assert list(found.table.columns) == ["concept", "name", "code", "phi"]


def test_top_samples_express_the_concept_most(bank):
    concept = int(bank.table.loc[bank.table["class"] == 0, "importance"].idxmax())
    top = bank.top_samples(concept, n=8)
    assert len(top.ids) == 8 and np.all(np.diff(top.codes) <= 0)
    samples = bank.samples.set_index("id")
    assert (samples.loc[top.ids, "prediction"] == 0).all()
    assert top.grid(columns=4, size=32).size == (128, 64)


def test_a_concept_image_raises_its_direction_above_typical_inputs(bank):
    from latentsight.explain import MacoSettings

    concept = int(bank.table.loc[bank.table["class"] == 0, "importance"].idxmax())
    shown = bank.visualize(concept, settings=MacoSettings(steps=24))
    assert shown.image.shape == (32, 32, 3) and shown.image.dtype == np.uint8
    assert shown.transparency.shape == (32, 32) and shown.transparency.min() >= 0
    assert shown.transparency.max() == pytest.approx(1.0)
    circle = next(b for b in bank.banks if b.label == 0)
    direction = circle.dictionary.components[concept - circle.first]
    median_real = float(np.median(np.asarray(bank.run.latent(LAYER)) @ direction))
    assert shown.final > shown.initial and shown.final > median_real, (
        shown.initial,
        shown.final,
        median_real,
    )
    assert shown.picture(size=64).mode == "RGBA"


def test_without_a_model_importance_says_what_is_missing(shapes_run):
    bare = ls.open_run(shapes_run.path)  # no Project attached
    found = bare.discover_concepts(LAYER, per_class=False, k=3)
    assert found.table["importance"].isna().all() and "run.attach(project)" in found.notes[0]
    with pytest.raises(DiscoveryError, match=r"attach the Project"):
        found.importance(found.samples["id"].iloc[0])
    with pytest.raises(DiscoveryError, match=r"no model attached"):
        found.visualize(0)
    with pytest.raises(DiscoveryError, match=r"k=0"):
        bare.discover_concepts(LAYER, k=0)


def test_cli_prints_the_discovered_concepts(shapes_run, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "concepts",
            "discover",
            str(shapes_run.path),
            "--layer",
            LAYER,
            "--k",
            "3",
            "--grids",
            str(tmp_path / "grids"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "12 concepts in 4 dictionaries" in result.output and "note:" in result.output
    assert len(list((tmp_path / "grids").glob("concept_*.png"))) == 12
