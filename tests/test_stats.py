"""The shared statistics agree with scipy's reference implementations on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from latentsight._numbers import probability_text
from latentsight.insights.stats import (
    benjamini_hochberg,
    binomial_test,
    enrichment_test,
    rank_test_greater,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_test_matches_scipy_mannwhitneyu_with_ties(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=60).astype(float)  # many ties
    masks = rng.random((5, 60)) < np.array([[0.1], [0.3], [0.5], [0.7], [0.2]])
    result = rank_test_greater(values, masks)
    for i, mask in enumerate(masks):
        reference = stats.mannwhitneyu(
            values[mask], values[~mask], alternative="greater", method="asymptotic"
        )
        assert result.u[i] == pytest.approx(reference.statistic)
        assert result.p[i] == pytest.approx(reference.pvalue, rel=1e-9)
        assert result.auc[i] == pytest.approx(reference.statistic / (mask.sum() * (~mask).sum()))


def test_rank_test_on_a_hand_made_case():
    values = np.array([1.0, 2.0, 3.0, 10.0, 11.0, 12.0])
    inside = np.array([False, False, False, True, True, True])
    result = rank_test_greater(values, inside[None])
    assert result.u[0] == 9 and result.auc[0] == 1.0  # every inside value beats every outside one
    assert result.p[0] == pytest.approx(
        stats.mannwhitneyu(
            [10, 11, 12], [1, 2, 3], alternative="greater", method="asymptotic"
        ).pvalue
    )
    assert rank_test_greater(values, ~inside[None]).p[0] > 0.9


def test_rank_test_ignores_nan_values():
    values = np.array([1.0, np.nan, 3.0, 10.0, np.nan, 12.0])
    inside = np.array([False, True, False, True, True, True])
    result = rank_test_greater(values, inside[None])
    reference = stats.mannwhitneyu(
        [10.0, 12.0], [1.0, 3.0], alternative="greater", method="asymptotic"
    )
    assert (result.n_in[0], result.n_out[0]) == (2, 2)
    assert result.p[0] == pytest.approx(reference.pvalue)


def test_benjamini_hochberg_matches_scipy_and_a_hand_computation():
    p = np.array([0.01, 0.04, 0.03, 0.20])
    # sorted 0.01, 0.03, 0.04, 0.20 -> 0.01*4/1, 0.03*4/2, 0.04*4/3, 0.2 -> monotone: .04 .0533 .0533 .2
    np.testing.assert_allclose(benjamini_hochberg(p), [0.04, 0.16 / 3, 0.16 / 3, 0.20])
    rng = np.random.default_rng(0)
    many = rng.random(200) ** 3
    np.testing.assert_allclose(benjamini_hochberg(many), stats.false_discovery_control(many))
    assert benjamini_hochberg(np.array([])).size == 0


def test_enrichment_matches_fisher_exact_greater():
    cases = [(8, 10, 12, 100), (3, 20, 30, 100), (0, 5, 10, 50), (15, 15, 20, 200)]
    k_in, n_in, k_total, _n_total = (np.array(column) for column in zip(*cases, strict=True))
    for i, (a, n1, k, n) in enumerate(cases):
        p, ratio = enrichment_test(k_in[i : i + 1], n_in[i : i + 1], k_total[i : i + 1], n)
        table = [[a, n1 - a], [k - a, n - n1 - (k - a)]]
        assert p[0] == pytest.approx(stats.fisher_exact(table, alternative="greater").pvalue)
        share_out = (k - a) / (n - n1)
        assert ratio[0] == pytest.approx((a / n1) / share_out)


def test_binomial_test_matches_scipy():
    k, n = np.array([2, 30, 0]), np.array([100, 100, 10])
    expected = [
        stats.binomtest(2, 100, 0.1).pvalue,
        stats.binomtest(30, 100, 0.1).pvalue,
        stats.binomtest(0, 10, 0.1).pvalue,
    ]
    np.testing.assert_allclose(binomial_test(k, n, 0.1), expected)


def test_a_probability_that_underflowed_is_written_as_the_bound_it_is_below():
    assert probability_text(0.0) == "< 1e-300"
    assert probability_text(5e-324) == "4.9e-324"
    assert probability_text(0.01234) == "0.012"
    assert probability_text(0.0, ".3f") == "< 1e-300"
