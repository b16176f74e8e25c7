"""The overfitting detector on data where the truth is known: the demo's easy copies (jittered
copies of 12 images, a quarter of train) are found as memorised; a clean run raises nothing; a
hand-made overfitting region is found while a region that is merely hard is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import analysis_context
from test_insights_representation import FAST, _iid_run, _precision_recall, hand_context

from latentsight.insights.overfitting import (
    MEMORIZATION,
    OVERFITTING,
    Overfitting,
    permutation_gap_test,
)


def _significant(insights, kind):
    return [i for i in insights if i.kind == kind and i.q_value < FAST.alpha]


def test_demo_easy_copies_are_memorised(shapes_run):
    truth = pd.read_parquet(shapes_run.path / "extras/ground_truth.parquet")
    copies = set(truth.loc[truth["easy_copy"], "id"])
    for layer in ("features.1.0", "classifier.3:input"):
        ctx = analysis_context(shapes_run, layer=layer)
        [memorised] = _significant(Overfitting().run(ctx).insights, MEMORIZATION)
        precision, recall = _precision_recall(memorised.population, copies)
        assert precision >= 0.9 and recall >= 0.7, (layer, precision, recall)
        details = memorised.evidence[0].details
        for group in details["groups"]:
            assert group["n_eval"] <= 0.05 * group["n_train"]
            assert group["q_within_groups"] < FAST.alpha
        assert details["n_train"] == len(memorised.population)
        assert memorised.evidence[0].effect > 2  # far closer than the typical neighbour


def test_clean_run_raises_no_overfitting_insight(tmp_path):
    run = _iid_run(tmp_path)
    for layer in run.layers:
        ctx = analysis_context(run, layer=layer, settings=FAST)
        result = Overfitting().run(ctx)
        flagged = [i.title for i in result.insights if i.q_value < FAST.alpha]
        assert len(flagged) <= 1, (layer, flagged, result.info)


def _hand_made(seed: int = 0):
    """Train / val on one distribution; losses drawn per site: "c" is fitted on train but fails on
    val (overfitting); "d" is merely hard (train and val both 10x the baseline)."""
    rng = np.random.default_rng(seed)
    n = 3000
    latents = rng.normal(size=(n, 6))
    subset = np.where(rng.random(n) < 0.7, "train", "val")
    site = rng.choice(list("abcd"), n, p=[0.4, 0.3, 0.15, 0.15])
    train = subset == "train"
    scale = np.where(train, 0.05, 0.2)  # everywhere: val loss 4x train loss
    scale = np.where(site == "c", np.where(train, 0.01, 2.0), scale)
    scale = np.where(site == "d", np.where(train, 0.5, 2.0), scale)
    loss = rng.exponential(scale)
    return hand_context(latents, subset, loss, {"site": site, "age": rng.uniform(20, 80, n)})


def test_hand_made_overfitting_region_is_found_and_a_hard_one_is_not():
    ctx = _hand_made()
    result = Overfitting().run(ctx)
    overfitting = _significant(result.insights, OVERFITTING)
    titles = [i.title for i in overfitting]
    assert len(overfitting) == 1 and titles[0].startswith("site = c"), titles
    evidence = overfitting[0].evidence[0]
    assert evidence.effect > 10 and evidence.q_value < 1e-4
    assert evidence.details["excess_gap"] > 1
    # site d: its absolute gap is large, but so are its training losses: hard, not overfitting
    assert not any(t.startswith("site = d") for t in titles)
    assert not _significant(result.insights, MEMORIZATION)


def test_hand_made_near_copies_are_memorised():
    rng = np.random.default_rng(1)
    dims = 6
    base = rng.normal(size=(2400, dims))
    subset = np.where(np.arange(2400) < 1600, "train", "val")
    loss = rng.exponential(np.where(subset == "train", 0.1, 0.3))
    sources = rng.normal(size=(5, dims)) * 1.5
    copies = np.repeat(sources, 40, axis=0) + rng.normal(size=(200, dims)) * 0.01
    latents = np.vstack([base, copies])
    subset = np.concatenate([subset, np.full(200, "train")])
    loss = np.concatenate([loss, rng.exponential(1e-4, 200)])
    ctx = hand_context(latents, subset, loss)
    copy_ids = set(ctx.samples["id"].to_numpy()[2400:])

    [memorised] = _significant(Overfitting().run(ctx).insights, MEMORIZATION)
    precision, recall = _precision_recall(memorised.population, copy_ids)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    assert memorised.evidence[0].details["n_groups"] == 5  # one group per copied source


def test_permutation_p_values_are_uniform_under_the_null():
    rng = np.random.default_rng(2)
    n = 2000
    train = rng.random(n) < 0.7
    loss = rng.exponential(np.where(train, 0.1, 0.4))
    masks = rng.random((200, n)) < 0.1  # random regions: no region differs
    test = permutation_gap_test(loss, train, ~train, masks, n_permutations=199, seed=0)
    assert 0.01 <= np.mean(test.p_gap < 0.1) <= 0.2
    assert np.mean(test.p < 0.05) <= 0.06
    # a region whose eval losses are inflated is detected on both scales
    inflated = loss.copy()
    inflated[masks[0] & ~train] *= 5
    planted = permutation_gap_test(inflated, train, ~train, masks[:1], seed=0)
    assert planted.p[0] < 1e-3 and planted.ratio[0] > 3


def _brute_force_p_gap(loss, train, masks, n_permutations, seed):
    """The additive-gap p-values with fully random shuffles within each side (no subgroup)."""
    rng = np.random.default_rng(seed)
    loss_t, loss_e = loss[train], loss[~train]
    in_t, in_e = masks[:, train], masks[:, ~train]

    def gap(values_t, values_e):
        inside = (in_e @ values_e) / in_e.sum(1) - (in_t @ values_t) / in_t.sum(1)
        return inside - (loss_e.mean() - loss_t.mean())

    observed = gap(loss_t, loss_e)
    null = np.stack(
        [gap(rng.permutation(loss_t), rng.permutation(loss_e)) for _ in range(n_permutations)]
    )
    return (1 + (null >= observed).sum(0)) / (n_permutations + 1)


def test_subgroup_permutation_p_values_match_fully_random_shuffles():
    rng = np.random.default_rng(5)
    n = 1500
    train = rng.random(n) < 0.6
    masks = rng.random((30, n)) < 0.15
    loss = rng.exponential(np.where(train, 0.2, 0.3))
    # graded effects, so the p-values spread over (0, 1) rather than sitting at the extremes
    for r in range(30):
        loss[masks[r] & ~train] *= 1 + 0.02 * r
    fast = permutation_gap_test(loss, train, ~train, masks, n_permutations=1999, seed=1)
    brute = _brute_force_p_gap(loss, train, masks, 1999, seed=2)
    # two Monte Carlo estimates of the same p-values: 1999 draws each, sd at most 0.011
    assert np.abs(fast.p_gap - brute).max() < 0.05, np.c_[fast.p_gap, brute]
    assert np.corrcoef(fast.p_gap, brute)[0, 1] > 0.99


def test_tied_losses_count_as_reaching_the_observed_gap():
    n = 600
    train = np.arange(n) < 400
    loss = np.ones(n)  # every shuffle gives exactly the observed gap, through FFT rounding
    masks = np.random.default_rng(0).random((5, n)) < 0.2
    test = permutation_gap_test(loss, train, ~train, masks, n_permutations=99, seed=0)
    assert np.allclose(test.p_gap, 1.0) and np.allclose(test.p_ratio, 1.0)
