"""AUC and p-values of every neuron x concept equal scikit-learn's and scipy's, ties included."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from latentsight.concepts.auc import rank_activations, score_concepts
from latentsight.concepts.errors import ConceptsError


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    activations = np.column_stack(
        [
            rng.integers(0, 4, n),  # heavy ties
            np.maximum(rng.normal(size=n), 0.0),  # ReLU: a block of zeros
            rng.normal(size=n).round(1),  # rounding ties
            rng.normal(size=n),  # no ties
            np.zeros(n),  # a dead neuron
        ]
    ).astype(np.float64)
    concepts = rng.random((n, 6)) < np.array([0.5, 0.3, 0.1, 0.7, 0.02, 0.9])
    return activations, concepts


def test_auc_and_p_match_sklearn_and_scipy_for_every_pair():
    activations, concepts = _data(700, seed=0)
    scores = score_concepts(
        rank_activations(activations, columns_per_chunk=2), concepts, rows_per_chunk=128
    )
    for k in range(activations.shape[1]):
        for c in range(concepts.shape[1]):
            a, mask = activations[:, k], concepts[:, c]
            assert scores.auc[k, c] == pytest.approx(roc_auc_score(mask, a), abs=1e-12)
            expected = stats.mannwhitneyu(a[~mask], a[mask], alternative="two-sided").pvalue
            assert scores.p[k, c] == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert scores.counts.tolist() == concepts.sum(axis=0).tolist()


def test_small_groups_use_the_exact_test_like_scipy():
    rng = np.random.default_rng(3)
    activations = rng.normal(size=(40, 3))
    concepts = np.zeros((40, 2), dtype=bool)
    concepts[rng.choice(40, 5, replace=False), 0] = True
    concepts[np.argsort(activations[:, 0])[-3:], 1] = True  # the three largest of neuron 0
    scores = score_concepts(rank_activations(activations), concepts)
    for k in range(3):
        for c in range(2):
            a, mask = activations[:, k], concepts[:, c]
            expected = stats.mannwhitneyu(a[~mask], a[mask]).pvalue
            assert scores.p[k, c] == pytest.approx(expected, rel=1e-9)
    assert scores.auc[0, 1] == 1.0


def test_ranks_are_scipy_average_ranks():
    activations, _ = _data(300, seed=1)
    ranks = rank_activations(activations, columns_per_chunk=3)
    assert np.array_equal(ranks.doubled, 2 * stats.rankdata(activations, axis=0))
    _, counts = np.unique(activations[:, 0], return_counts=True)
    assert ranks.tie_term[0] == float((counts**3 - counts).sum())


def test_non_finite_activations_are_refused():
    activations = np.ones((10, 2))
    activations[3, 1] = np.nan
    with pytest.raises(ConceptsError, match=r"NaN or infinite"):
        rank_activations(activations)
