"""Concept importance through a linear head: the exact logit decomposition, a planted driving
concept ranked first, and the naming of concepts with the INVERT engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from latentsight.concepts import ConceptSettings, build_vocabulary
from latentsight.discovery import (
    decompose_logit,
    find_linear_head,
    fit_dictionary,
    matched_cosines,
    name_concepts,
)


def _planted(n: int = 800, d: int = 24, k: int = 4, seed: int = 0):
    """Latents from k sparse non-negative unit directions; the directions; the planted codes."""
    rng = np.random.default_rng(seed)
    directions = rng.random((k, d)) * (rng.random((k, d)) < 0.5)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    present = rng.random((n, k)) < 0.3
    codes = rng.exponential(1.0, (n, k)) * present
    latents = np.maximum(codes @ directions + rng.normal(0.0, 0.02, (n, d)), 0.0)
    return latents.astype(np.float32), directions, codes


def _head_model(weight: np.ndarray, bias: np.ndarray) -> nn.Module:
    head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.tensor(weight))
        head.bias.copy_(torch.tensor(bias))
    return nn.Sequential(nn.Identity(), head)


def test_concept_terms_residual_and_bias_sum_to_the_models_logit():
    latents, _, _ = _planted()
    rng = np.random.default_rng(2)
    model = _head_model(rng.normal(size=(3, 24)), rng.normal(size=3))
    head = find_linear_head(model, "1:input", 24)
    assert not isinstance(head, str)
    codes, dictionary = fit_dictionary(latents, 3)  # too few concepts: a real residual
    with torch.no_grad():
        logits = model(torch.from_numpy(latents)).double().numpy()
    for label in range(3):
        parts = decompose_logit(latents, codes, dictionary.components, head, label)
        assert np.abs(parts.residual).max() > 0.01
        assert np.allclose(parts.logit, logits[:, label], atol=1e-5)
        # phi is the concept's code times its direction's projection on the class weights
        expected = codes[:, 0] * float(dictionary.components[0] @ head.weight[label])
        assert np.allclose(parts.phi[:, 0], expected)


def test_a_planted_driving_concept_ranks_first():
    latents, directions, planted = _planted()
    weight = np.zeros((2, 24))
    weight[1] = 3.0 * directions[2]  # class 1 reads planted concept 2 only
    head = find_linear_head(_head_model(weight, np.zeros(2)), "1:input", 24)
    codes, dictionary = fit_dictionary(latents, 4)
    cosine = dictionary.components @ directions[2]
    parts = decompose_logit(latents, codes, dictionary.components, head, 1)
    ranked = np.argsort(-np.abs(parts.phi).mean(axis=0))
    assert ranked[0] == int(np.argmax(cosine)) and cosine.max() > 0.95
    # its term follows the planted concept's own contribution, 3 x its code
    assert np.corrcoef(parts.phi[:, ranked[0]], 3.0 * planted[:, 2])[0, 1] > 0.99


def test_the_head_is_found_only_where_it_reads_the_layer():
    model = _head_model(np.ones((2, 24)), np.zeros(2))
    assert "not the input of a module" in find_linear_head(model, "1", 24)
    assert "not nn.Linear" in find_linear_head(model, "0:input", 24)
    assert "reads 24 values" in find_linear_head(model, "1:input", 8)


def test_concepts_are_named_by_the_metadata_that_plants_them():
    latents, directions, planted = _planted()
    present = planted > 0
    rng = np.random.default_rng(5)
    other = rng.choice(["plain", "dotted"], len(latents))
    samples = pd.DataFrame(
        {
            "id": [f"s/{i}" for i in range(len(latents))],
            "texture": np.where(present[:, 1], "striped", other),
            "noise": rng.choice(["a", "b", "c"], len(latents)),
        }
    )
    vocabulary = build_vocabulary(samples, metadata_columns=["texture", "noise"], labels=False)
    _, dictionary = fit_dictionary(latents, 4)
    codes = dictionary.encode(latents)
    names = name_concepts(codes, samples, vocabulary, settings=ConceptSettings(length=1))
    striped = int(np.argmax(dictionary.components @ directions[1]))
    assert names.loc[striped, "name"] == "texture == striped"
    assert names.loc[striped, "auc"] > 0.95
    others = names.drop(index=striped)
    assert not others["name"].str.contains("noise").any()
    assert matched_cosines(directions, dictionary.components).min() > 0.9
