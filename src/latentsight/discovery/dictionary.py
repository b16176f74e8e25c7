"""A concept dictionary A ~ U W of pooled latents, and the encoding of new latents with a fixed W.

Non-negative (post-ReLU) latents get scikit-learn's NMF (``nndsvda`` init, seeded), signed
latents Semi-NMF. Latents of more than ``FIT_VALUES`` values (N x D) are fitted on a seeded
subsample of rows of that size, and every row is then encoded with W fixed: W has k x D unknowns,
which ten thousand rows of a 2,048-wide layer pin down as well as all of them (on 100,000 planted
rows the error and the match to the planted directions are those of the full fit, in under half
its time), and only the subsample is copied to float64. Measured there, scikit-learn's
MiniBatchNMF and the TopK sparse autoencoder (torch, on the GPU when present) are slower; both
stay as explicit methods. The rows of W are scaled to unit norm (the codes take the scale), so a
code is the length of the concept's part of a latent and dictionaries of different fits compare
by cosine.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import NMF, MiniBatchNMF
from sklearn.exceptions import ConvergenceWarning

from latentsight.discovery.errors import DiscoveryError
from latentsight.discovery.residual import CHUNK, squared_error
from latentsight.discovery.sae import TopKEncoder, fit_sae
from latentsight.discovery.seminmf import semi_nmf, update_codes

FIT_VALUES = 20_000_000  # values (N x D) above which NMF and Semi-NMF fit on a subsample of rows
_MIN_FIT_ROWS = 20  # per concept: the subsample's rows at least, however wide the layer
METHODS = ("auto", "nmf", "minibatch_nmf", "semi_nmf", "sae")
_MAX_ITER = 1000
_ENCODE_ITER = 200
_ENCODE_TOL = 1e-7  # a sweep changing the codes by less than this (relative) ends the encoding


@dataclass(frozen=True)
class Dictionary:
    """Concept directions ``components`` (k x D, unit rows) and how they were fitted."""

    components: np.ndarray
    method: str
    error: float  # relative reconstruction error ||A - U W|| / ||A|| on every row given
    encoder: TopKEncoder | None = None  # the sparse autoencoder's encoder (method "sae")
    fit_rows: int = 0  # the rows W was fitted on (all of them, or a seeded subsample)

    @property
    def k(self) -> int:
        """Number of concepts."""
        return self.components.shape[0]

    def encode(self, latents: np.ndarray) -> np.ndarray:
        """Non-negative codes U (N x k): the least-squares ones with W fixed, or the sparse
        autoencoder's encoder."""
        if self.encoder is not None:
            return self.encoder(latents).astype(np.float64)
        return encode(latents, self.components)


def resolve_method(latents: np.ndarray, method: str) -> str:
    """The factorisation to use: the given one, or by the sign of the latents."""
    if method not in METHODS:
        raise DiscoveryError(f"method={method!r}: give one of {list(METHODS)}.")
    negative = bool((np.asarray(latents) < 0).any())
    if method in ("nmf", "minibatch_nmf") and negative:
        raise DiscoveryError(
            f"method={method!r} needs non-negative latents, but this layer has negative values "
            "(it is not post-ReLU): use method='semi_nmf' (or 'auto')."
        )
    if method != "auto":
        return method
    return "semi_nmf" if negative else "nmf"


def _unit_rows(codes: np.ndarray, components: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(components, axis=1)
    norms = np.where(norms > 0, norms, 1.0)
    return codes * norms, components / norms[:, None]


def encode(latents: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Non-negative least-squares codes of ``latents`` over fixed ``components``, in float64
    blocks of rows (a large layer is never copied whole)."""
    codes = np.empty((latents.shape[0], components.shape[0]))
    for start in range(0, latents.shape[0], CHUNK):
        block = np.asarray(latents[start : start + CHUNK], dtype=np.float64)
        codes[start : start + CHUNK] = _encode_block(block, components)
    return codes


def _encode_block(latents: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Non-negative least squares by coordinate descent from the clipped least-squares codes."""
    start = np.maximum(latents @ np.linalg.pinv(components), 0.0)
    return update_codes(latents, components, start, _ENCODE_ITER, tol=_ENCODE_TOL)


def relative_error(latents: np.ndarray, codes: np.ndarray, components: np.ndarray) -> float:
    """``||A - U W|| / ||A||``, in blocks of rows (no N x D temporary)."""
    residual, total = squared_error(latents, codes, components)
    return float(np.sqrt(residual / max(total, 1e-24)))


def fit_dictionary(
    latents: np.ndarray, k: int, *, method: str = "auto", seed: int = 0
) -> tuple[np.ndarray, Dictionary]:
    """Fit ``A ~ U W`` with k concepts (NMF and Semi-NMF on a seeded subsample of rows above
    ``FIT_VALUES``); returns the codes U (N x k) of every row and the dictionary."""
    latents = np.asarray(latents)
    if latents.ndim != 2:
        raise DiscoveryError(f"Latents must be N x D; got shape {latents.shape}.")
    if not 1 <= k <= min(latents.shape):
        raise DiscoveryError(
            f"k={k} concepts for {latents.shape[0]} samples of {latents.shape[1]} dimensions: "
            f"give 1 <= k <= {min(latents.shape)}."
        )
    if not np.isfinite(latents.sum(dtype=np.float64)):  # one NaN or infinity makes the sum so
        raise DiscoveryError("The latents contain NaN or infinite values; re-capture the run.")
    method = resolve_method(latents, method)
    n = latents.shape[0]
    encoder = None
    if method == "sae":
        non_negative = not bool((latents < 0).any())
        codes, components, encoder = fit_sae(latents, k, non_negative=non_negative, seed=seed)
        codes, fit_rows = codes.astype(np.float64), n
    else:
        rows = _fit_rows(latents.shape, k, method, seed)
        fit_rows = n if rows is None else rows.size
        sample = np.asarray(latents if rows is None else latents[rows], dtype=np.float64)
        codes, components = _unit_rows(*_factorise(sample, k, method, seed))
        if rows is not None:
            codes = encode(latents, components)
    error = relative_error(latents, codes, components)
    return codes, Dictionary(components.astype(np.float64), method, error, encoder, fit_rows)


def _fit_rows(shape: tuple[int, int], k: int, method: str, seed: int) -> np.ndarray | None:
    """The seeded, sorted subsample of rows NMF or Semi-NMF fits on, or None for all rows."""
    n, d = shape
    rows = max(-(-FIT_VALUES // d), _MIN_FIT_ROWS * k)
    if method not in ("nmf", "semi_nmf") or n <= rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, rows, replace=False))


def _factorise(latents: np.ndarray, k: int, method: str, seed: int) -> tuple[np.ndarray, ...]:
    """Codes and components of float64 latents by NMF, MiniBatchNMF or Semi-NMF."""
    if method == "semi_nmf":
        return semi_nmf(latents, k, seed=seed)
    kind = MiniBatchNMF if method == "minibatch_nmf" else NMF
    model = kind(k, init="nndsvda", random_state=seed, max_iter=_MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        codes = model.fit_transform(latents)
    return codes, model.components_
