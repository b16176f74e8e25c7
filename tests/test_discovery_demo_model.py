"""Concept importance, heatmaps and fidelity on the demo CNN: the decoder reproduces the real
model at the linear head's input and through the pooled head of a convolutional layer, heatmaps
average to the codes, and deleting concepts in importance order beats random orders."""

from __future__ import annotations

import numpy as np
import pytest

from latentsight.discovery import DiscoveryError
from latentsight.discovery.fidelity import order_masks

HEAD_INPUT = "classifier.3:input"  # read by a linear head: closed form
MAP = "features.2"  # a 32-channel map, pooled then read by Linear-ReLU-Linear


@pytest.fixture(scope="module")
def linear_bank(attached_shapes_run):
    return attached_shapes_run.discover_concepts(HEAD_INPUT, k=4)


@pytest.fixture(scope="module")
def map_bank(attached_shapes_run):
    return attached_shapes_run.discover_concepts(MAP, per_class=False, k=4, subset="val")


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def test_deleting_concepts_in_importance_order_beats_random_orders(linear_bank):
    fidelity = linear_bank.fidelity(orders=20, samples=400)
    table = fidelity.table.set_index("metric")
    assert fidelity.method == "closed_form" and fidelity.samples == 400
    deletion = table.loc["c_deletion"]
    assert deletion["beats_random"] and deletion["p_value"] < 0.05
    assert deletion["importance"] < deletion["random_mean"] - 2 * deletion["random_std"]
    assert table.loc["c_insertion", "importance"] > table.loc["c_insertion", "random_mean"]
    assert table.loc["c_mufidelity", "importance"] > table.loc["c_mufidelity", "random_mean"]
    curves = fidelity.curves
    start = curves[(curves["metric"] == "c_deletion") & (curves["fraction"] == 0.0)]["score"]
    assert np.allclose(start, start.iloc[0])  # both orders start from the full model


def test_the_decoder_reproduces_the_real_model_under_concept_masks(linear_bank):
    """Through the model (a pre-hook on classifier.3) the masked scores equal the closed form."""
    group = linear_bank.banks[1]
    rows = group.rows[:40]
    labels = np.full(len(rows), group.label)
    rng = np.random.default_rng(0)
    order = np.argsort(rng.random((len(rows), group.dictionary.k)), axis=1)
    masks = np.concatenate([order_masks(order, False), rng.random((len(rows), 5, 4))], axis=1)
    through = linear_bank.concept_model("test").scores(group, rows, labels, masks)
    phi = linear_bank.attributions(group, rows, labels)
    full = linear_bank.head.logits(linear_bank._latents[rows])[:, group.label]
    closed = np.einsum("nmk,nk->nm", masks - 1.0, phi) + full[:, None]
    assert np.allclose(through, closed, atol=1e-4)


def test_importance_through_the_pooled_head_of_a_map_reproduces_the_probabilities(map_bank):
    assert map_bank.head is None and not map_bank.table["importance"].isna().any()
    samples = map_bank.samples.set_index("id")
    for sample_id in samples.index[[0, 500]]:
        for method in ("gradient", "occlusion"):
            logits = np.array(
                [map_bank.importance(sample_id, label, method).logit for label in range(4)]
            )
            stored = samples.loc[sample_id, "probabilities"]
            assert np.allclose(_softmax(logits), stored, atol=1e-4), method
    sobol = map_bank.importance(samples.index[0], method="sobol")
    assert sobol.method == "sobol" and (sobol.table["phi"] >= 0).all()


def test_fidelity_through_the_model_beats_random_orders(map_bank):
    fidelity = map_bank.fidelity(orders=20, samples=100, subsets=16)
    table = fidelity.table.set_index("metric")
    assert fidelity.method == "gradient" and fidelity.samples == 100
    assert table["beats_random"].all(), table


def test_heatmaps_average_to_the_codes_and_are_saved(map_bank, tmp_path):
    concept = int(map_bank.table["importance"].idxmax())
    top = map_bank.top_samples(concept, n=4)
    maps = map_bank.heatmaps(top.ids, concept)
    assert maps.source == MAP and maps.maps.shape == (4, 32, 32)
    assert np.allclose(maps.maps.mean(axis=(1, 2)), top.codes, rtol=1e-9)
    assert np.allclose(maps.codes, top.codes) and (maps.maps >= 0).all()
    # the position codes already average close to the code: the rescaling is mild
    assert np.all(np.abs(maps.scale - 1.0) < 0.5), maps.scale
    assert len(maps.save(tmp_path)) == 4 and maps.panel(columns=2).size[0] > 0


def test_heatmaps_of_a_vector_layer_name_the_map_to_use(linear_bank):
    sample_id = linear_bank.samples["id"].iloc[0]
    with pytest.raises(DiscoveryError, match=r"convolutional layer such as .*features\.2"):
        linear_bank.heatmaps([sample_id], 0)
    with pytest.raises(DiscoveryError, match="not among the discovered samples"):
        linear_bank.heatmaps(["nope/1"], 0)
