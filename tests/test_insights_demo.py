"""The whole analysis stage on the demo, where the truth is known: each planted failure mode is
among the top ten insights with precision >= 0.7 and recall >= 0.5 against the hidden ground
truth, and the demo's scale sensitivity is a significant loss-vs-size trend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentsight.demo.recovery import PLANTED_MODES, masks_of, planted_masks, recovery_table
from latentsight.demo.shapes import SHAPES


@pytest.fixture(scope="module")
def analysed(shapes_run):
    insights = shapes_run.analyze(progress=False)
    truth = pd.read_parquet(shapes_run.path / "extras/ground_truth.parquet")
    return shapes_run, insights, truth


def test_every_planted_mode_is_a_top_ten_insight(analysed):
    run, insights, truth = analysed
    masks = planted_masks(run.samples, truth)
    populations = masks_of([i.population for i in insights], run.samples["id"].tolist())
    hardness = run.samples["loss"].to_numpy()
    table = recovery_table("latentsight", populations, masks, hardness, k=10).set_index("mode")
    assert list(table.index) == list(PLANTED_MODES)
    for mode, row in table.iterrows():
        assert row["rank"] is not None and not np.isnan(row["rank"]), (mode, table)
        assert row["precision"] >= 0.7 and row["recall"] >= 0.5, (mode, row.to_dict())


def test_each_planted_mode_is_found_by_the_detector_meant_for_it(analysed):
    run, insights, truth = analysed
    masks = planted_masks(run.samples, truth)
    populations = masks_of([i.population for i in insights[:10]], run.samples["id"].tolist())
    expected = {
        "spurious correlation": {"spurious_correlation"},
        "under-represented population": {"under_represented"},
        "inconsistent labels": {"inconsistent_labels", "label_issue"},
        "over-represented easy samples": {"redundancy", "memorization", "over_represented"},
    }
    for mode, kinds in expected.items():
        truth_mask = masks[mode]
        f1 = [2 * (m & truth_mask).sum() / (m.sum() + truth_mask.sum()) for m in populations]
        best = insights[int(np.argmax(f1))]
        found_by = {best.kind} | {e.detector for e in best.evidence}
        assert found_by & kinds, (mode, best.title, found_by)


def test_spurious_shortcut_names_the_background_and_the_class(analysed):
    run, insights, _ = analysed
    shortcuts = [i for i in insights if i.kind == "spurious_correlation"]
    assert shortcuts
    details = shortcuts[0].evidence[0].details
    assert details["slice"] == "background = blue" and details["class"] == 0
    assert details["train_share_inside"] > 0.5 > details["train_share_outside"]
    assert details["predicted_as_class_inside"] > details["predicted_as_class_outside"]
    exposed = run.samples[run.samples["id"].isin(shortcuts[0].population)]
    assert (exposed["target"] != 0).all()
    misled = int((exposed["prediction"] == 0).sum())  # the title counts these, not all exposed
    assert shortcuts[0].title.startswith(
        f"Shortcut background = blue -> circle: {misled} of {len(exposed)} other-class "
        "evaluation samples with it predicted circle"
    )
    assert run.class_names == dict(enumerate(SHAPES))


def test_scale_sensitivity_is_a_significant_size_trend(analysed):
    _, insights, _ = analysed
    trends = [
        i
        for i in insights
        if any(
            e.detector == "metadata_trend" and e.details.get("column") == "size" for e in i.evidence
        )
    ]
    assert trends, [i.title for i in insights]
    evidence = next(e for e in trends[0].evidence if e.detector == "metadata_trend")
    assert evidence.q_value < 1e-6 and evidence.details["spearman_rho"] < -0.2


def test_layers_searched_are_recorded_on_the_evidence(analysed):
    run, insights, _ = analysed
    assert run.analysis_info["layers_searched"][0] == run.layers[-1]
    assert set(run.analysis_info["layers_searched"]) == set(run.layers)
    layers = {e.layer for i in insights for e in i.evidence}
    assert None in layers  # metadata findings need no latent space
    assert len(layers & set(run.layers)) >= 2  # latent findings come from more than one layer


def test_the_concept_audit_adds_the_shortcut_when_the_model_is_attached(analysed):
    run, insights, _ = analysed
    assert run.project is not None  # ls.analyze keeps the Project attached
    features = [i for i in insights if i.kind == "spurious_feature"] + [
        i for i in insights if any(e.detector == "spurious_feature" for e in i.evidence)
    ]
    assert features, run.analysis_info["detectors"].get("spurious_feature")
    assert run.analysis_info["detectors"]["spurious_feature"]["classes_flagged"] == ["circle"]
    assert "background == blue" in features[0].title
    blue = set(run.samples.loc[run.samples["background"] == "blue", "id"])
    population = set(features[0].population)
    assert len(population & blue) / len(population) >= 0.9
