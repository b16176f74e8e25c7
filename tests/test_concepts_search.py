"""The beam search: planted formulas found, noise left unlabelled, same result as a per-neuron
implementation of the reference's loops, and the vocabulary built from metadata."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latentsight.concepts import (
    ConceptsError,
    ConceptSettings,
    Literal,
    SearchSettings,
    beam_search,
    build_vocabulary,
    label_activations,
)
from latentsight.concepts.auc import rank_activations
from latentsight.concepts.formulas import extend

BENCHMARK = Path(__file__).parent.parent / "benchmarks" / "invert_speed.py"


def _planted(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """Concepts A..E; neuron 0 is high exactly on A AND NOT B, neuron 1 on C OR D, the rest noise."""
    rng = np.random.default_rng(seed)
    flags = rng.random((n, 5)) < np.array([0.4, 0.35, 0.2, 0.2, 0.3])
    annotations = pd.DataFrame(flags, columns=list("ABCDE"))
    annotations.insert(0, "id", [f"s/{i}" for i in range(n)])
    noise = rng.normal(size=(n, 6))
    activations = noise.copy()
    activations[:, 0] = noise[:, 0] + 4.0 * (flags[:, 0] & ~flags[:, 1])
    activations[:, 1] = noise[:, 1] + 4.0 * (flags[:, 2] | flags[:, 3])
    return activations, annotations


def _label(activations: np.ndarray, annotations: pd.DataFrame, **settings):
    samples = pd.DataFrame({"id": annotations["id"]})
    vocabulary = build_vocabulary(samples, labels=False, annotations=annotations)
    return label_activations(
        {"layer": activations}, samples, vocabulary, settings=ConceptSettings(**settings)
    )


def test_a_planted_formula_is_found_and_noise_gets_no_significant_label():
    activations, annotations = _planted()
    table = _label(activations, annotations).table
    assert table.loc[0, "formula"] == "A AND NOT B"
    assert table.loc[0, "explanation"] == extend(Literal("A"), "AND", Literal("B", negated=True))
    assert table.loc[0, "auc"] > 0.95 and table.loc[0, "significant"]
    assert table.loc[1, "formula"] == "C OR D" and table.loc[1, "significant"]
    assert not table.loc[2:, "significant"].any(), table.loc[2:, ["formula", "p_value", "q_value"]]
    assert (table.loc[2:, "p_adjusted"] >= table.loc[2:, "p_value"]).all()


def test_noise_alone_gets_no_significant_label_on_many_neurons():
    rng = np.random.default_rng(7)
    _, annotations = _planted(n=1500, seed=7)
    table = _label(rng.normal(size=(1500, 40)), annotations).table
    assert not table["significant"].any()


def test_vectorized_search_equals_the_straightforward_reference_loops():
    spec = importlib.util.spec_from_file_location("invert_speed", BENCHMARK)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    activations, matrix = benchmark.synthetic(800, 6, 8, seed=2)
    names = [f"c{i}" for i in range(8)]
    settings = SearchSettings(beam=4, length=3, min_fraction=0.02, max_fraction=0.5)
    fast = beam_search(rank_activations(activations), matrix, tuple(names), settings)
    slow = benchmark.straightforward_search(activations, matrix, names, settings)
    benchmark.check_identical(fast, slow, list(range(6)))


def test_equivalent_formulas_take_one_beam_slot():
    activations, annotations = _planted(n=1000)
    result = _label(activations, annotations, beam=5).labels("layer").search
    for formulas, auc in zip(result.formulas, result.auc, strict=True):
        texts = [str(f) for f in formulas]
        assert len(set(texts)) == len(texts)
        assert len(formulas) == 5 and np.all(np.diff(auc) <= 0)


def test_neurons_for_ranks_every_neuron_by_the_concept():
    activations, annotations = _planted()
    concepts = _label(activations, annotations)
    found = concepts.neurons_for("C")
    assert found.loc[0, "neuron"] == 1 and found.loc[0, "labelled"]
    negated = concepts.neurons_for("NOT B").set_index("neuron")["auc"]
    plain = concepts.neurons_for("B").set_index("neuron")["auc"]
    assert np.allclose(negated + plain, 1.0)
    with pytest.raises(ConceptsError, match=r"No concept named 'F'"):
        concepts.neurons_for("F")


def test_vocabulary_from_metadata_labels_and_annotations():
    samples = pd.DataFrame(
        {
            "id": [f"s/{i}" for i in range(8)],
            "colour": ["red", "blue", "red", "green", "blue", "red", None, "blue"],
            "size": [1.5, 2.5, 3.25, 4.5, 5.5, 6.5, 7.5, np.nan],
            "count": [0, 1, 2, 0, 1, 2, 0, 1],
            "flag": [True, True, False, False, True, False, True, False],
            "target": [0, 1, 0, 1, 0, 1, 0, np.nan],
        }
    )
    vocabulary = build_vocabulary(
        samples,
        metadata_columns=["colour", "size", "count", "flag"],
        thresholds={"size": [3.5]},
        class_names=["cat", "dog"],
    )
    columns = vocabulary.columns()
    assert columns["colour == red"].tolist() == [1, 0, 1, 0, 0, 1, 0, 0]
    assert columns["size < 3.5"].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert columns["size >= 3.5"].tolist() == [0, 0, 0, 1, 1, 1, 1, 0]
    assert columns["count == 2"].tolist() == [0, 0, 1, 0, 0, 1, 0, 0]
    assert "label == cat" in columns and "label == dog" in columns
    assert "flag == False" in columns
    assert vocabulary.dropped["flag == True"] == "the complement of 'flag == False'"
    assert "label == dog" not in vocabulary.dropped  # NaN target: not the complement of cat
    quantiles = build_vocabulary(samples, metadata_columns=["size"], labels=False, bins=2)
    assert quantiles.names == ("size < 4.5", "size >= 4.5")


def test_annotations_must_cover_every_sample_and_be_boolean():
    samples = pd.DataFrame({"id": ["a", "b", "c"]})
    with pytest.raises(ConceptsError, match=r"lack 1 of the 3 samples"):
        build_vocabulary(samples, annotations=pd.DataFrame({"id": ["a", "b"], "x": [True, False]}))
    with pytest.raises(ConceptsError, match=r"not boolean"):
        build_vocabulary(
            samples, annotations=pd.DataFrame({"x": [0.5, 1.0, 0.0]}, index=["a", "b", "c"])
        )
    with pytest.raises(ConceptsError, match=r"No usable concept"):
        build_vocabulary(samples, annotations=pd.DataFrame({"x": [True] * 3}, index=list("abc")))


def test_formula_text_and_evaluation():
    a, b, c = Literal("A"), Literal("B", negated=True), Literal("C")
    formula = extend(extend(a, "OR", b), "AND", c)
    assert str(formula) == "(A OR NOT B) AND C"
    assert str(extend(extend(a, "AND", b), "AND", c)) == "A AND NOT B AND C"
    columns = {
        "A": np.array([1, 0, 0, 1], bool),
        "B": np.array([1, 1, 0, 0], bool),
        "C": np.array([1, 1, 1, 0], bool),
    }
    assert formula.evaluate(columns).tolist() == [True, False, True, False]


def test_bad_settings_are_refused():
    with pytest.raises(ConceptsError, match=r"min_fraction"):
        SearchSettings(min_fraction=0.6, max_fraction=0.5)
    with pytest.raises(ConceptsError, match=r"beam"):
        SearchSettings(beam=0)
