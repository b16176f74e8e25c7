"""Concept dictionaries on planted latents: recovery of known directions by every method for
non-negative latents (NMF, MiniBatchNMF, the TopK sparse autoencoder), the choice of k, the
Hungarian matching, Semi-NMF's recovery of signed planted directions, the subsample fit of large
latents, the autoencoder's determinism, clear errors."""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pytest

import latentsight.discovery.dictionary as dictionary_module
from latentsight.discovery import DiscoveryError, choose_k, fit_dictionary, matched_cosines

K = 6


def _planted(n: int = 1200, d: int = 40, seed: int = 0, shift: float = 0.0):
    """Latents ``U W + noise`` from K sparse non-negative unit directions W, sparse codes U."""
    rng = np.random.default_rng(seed)
    directions = rng.random((K, d)) * (rng.random((K, d)) < 0.4)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    codes = rng.exponential(1.0, (n, K)) * (rng.random((n, K)) < 0.35)
    latents = codes @ (directions - shift) + rng.normal(0.0, 0.02, (n, d))
    return (latents if shift else np.maximum(latents, 0.0)), directions - shift


@pytest.mark.parametrize("method", ["auto", "minibatch_nmf", "sae"])
def test_each_method_recovers_the_planted_directions_at_k_and_beyond(method):
    latents, directions = _planted()
    codes, exact = fit_dictionary(latents, K, method=method)
    assert exact.method == ("nmf" if method == "auto" else method)
    assert codes.shape == (1200, K) and (codes >= 0).all()
    assert np.allclose(np.linalg.norm(exact.components, axis=1), 1.0)
    assert matched_cosines(directions, exact.components).min() >= 0.95
    _, wider = fit_dictionary(latents, K + 2, method=method)
    assert matched_cosines(directions, wider.components).mean() >= 0.95
    assert exact.error < 0.1


def test_the_sparse_autoencoder_is_sparse_and_seeded():
    latents, _ = _planted(n=600, d=30, seed=3)
    codes, first = fit_dictionary(latents, 4, method="sae", seed=5)
    _, again = fit_dictionary(latents, 4, method="sae", seed=5)
    _, other = fit_dictionary(latents, 4, method="sae", seed=6)
    np.testing.assert_array_equal(first.components, again.components)
    assert not np.array_equal(first.components, other.components)
    assert ((codes > 0).sum(axis=1) <= first.encoder.active).all() and first.encoder.active == 2
    assert (first.components >= 0).all()  # non-negative latents keep a non-negative decoder
    np.testing.assert_allclose(first.encode(latents), codes, rtol=1e-6)  # the encoder's codes


@pytest.mark.parametrize("shift", [0.0, 0.05])
def test_large_latents_are_fitted_on_a_seeded_subsample_and_every_row_encoded(monkeypatch, shift):
    latents, directions = _planted(n=3000, shift=shift)
    monkeypatch.setattr(dictionary_module, "FIT_VALUES", 600 * latents.shape[1])
    codes, dictionary = fit_dictionary(latents, K)
    assert dictionary.method == ("semi_nmf" if shift else "nmf")
    assert dictionary.fit_rows == 600 and codes.shape == (3000, K) and (codes >= 0).all()
    assert matched_cosines(directions, dictionary.components).min() >= 0.95
    np.testing.assert_allclose(dictionary.encode(latents), codes)  # every row: W fixed
    residual = latents - codes @ dictionary.components
    whole = np.linalg.norm(residual) / np.linalg.norm(latents)
    assert dictionary.error == pytest.approx(whole)  # the error is measured on every row
    _, again = fit_dictionary(latents, K)
    np.testing.assert_array_equal(again.components, dictionary.components)
    _, small = fit_dictionary(latents[:600], K)
    assert small.fit_rows == 600  # at the size limit: all rows


def test_auto_k_picks_the_planted_number_and_keeps_the_sweep():
    latents, _ = _planted()
    choice = choose_k(latents, range(2, 10))
    assert choice.k == K, choice.sweep
    sweep = choice.sweep.set_index("k")
    assert list(sweep.index) == list(range(2, 10))
    assert sweep.loc[K, "chosen"] and sweep["chosen"].sum() == 1
    assert sweep.loc[K, "stability"] >= 0.8 and sweep.loc[K, "gain"] < 0.02
    assert sweep.loc[K - 1, "gain"] > 0.1  # one concept short explains much less


def test_matched_cosines_equal_the_best_permutation():
    rng = np.random.default_rng(1)
    first, second = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    cosine = unit(first) @ unit(second).T
    best = max(permutations(range(4)), key=lambda p: sum(cosine[i, j] for i, j in enumerate(p)))
    expected = np.array([cosine[i, j] for i, j in enumerate(best)])
    assert np.allclose(matched_cosines(first, second), expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_signed_latents_get_semi_nmf_which_recovers_the_planted_directions(seed):
    latents, directions = _planted(n=500, seed=seed, shift=0.05)
    assert (latents < 0).any()
    codes, dictionary = fit_dictionary(latents, K)
    assert dictionary.method == "semi_nmf" and (codes >= 0).all()
    assert matched_cosines(directions, dictionary.components).min() >= 0.99
    _, wider = fit_dictionary(latents, K + 2)
    assert matched_cosines(directions, wider.components).mean() >= 0.97
    noise = 0.02 * np.sqrt(latents.size) / np.linalg.norm(latents)
    assert dictionary.error < 1.3 * noise  # fits down to the noise
    encoded = dictionary.encode(latents)
    assert (encoded >= 0).all()
    residual = np.linalg.norm(latents - encoded @ dictionary.components) / np.linalg.norm(latents)
    assert residual < 1.3 * noise
    _, short = fit_dictionary(latents, K - 2)
    assert short.error > 3 * dictionary.error


def test_bad_requests_are_refused_clearly():
    latents, _ = _planted(n=100, shift=0.05)
    with pytest.raises(DiscoveryError, match=r"needs non-negative latents"):
        fit_dictionary(latents, 3, method="nmf")
    with pytest.raises(DiscoveryError, match=r"give 1 <= k <= 40"):
        fit_dictionary(latents, 41)
    with pytest.raises(DiscoveryError, match=r"method='pca'"):
        fit_dictionary(latents, 3, method="pca")
    with pytest.raises(DiscoveryError, match=r"too few to sweep"):
        choose_k(latents[:10], range(2, 8))
