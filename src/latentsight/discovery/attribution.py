"""Concept attribution through any head with the concept decoder, batched over samples and masks.

Methods: ``"gradient"`` (gradient x input: the code times the score's derivative with respect
to it, summed over positions; exact for a linear head), ``"sobol"`` (total indices, Jansen
estimator on a scrambled Sobol design, as CRAFT) and ``"occlusion"`` (the score's drop when one
concept's code is set to 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latentsight.discovery.decoder import ConceptDecoder
from latentsight.discovery.errors import DiscoveryError
from latentsight.discovery.sobol import jansen_total, sobol_design

METHODS = ("gradient", "sobol", "occlusion")
ROW_BUDGET = 2**20  # values of the substituted layer held at once (rows x positions x dims)

Inputs = Callable[[np.ndarray], Any]  # sample indices -> the model's input batch


@dataclass(frozen=True)
class AttributionSettings:
    """``design``: rows of each block of the Sobol design (A, B and the k mixed ones; a power of
    two); ``seed``: the design's scrambling; ``batch_size``: samples per model call (default:
    as many as ``ROW_BUDGET`` holds)."""

    design: int = 32
    seed: int = 0
    batch_size: int | None = None


def occlusion_masks(k: int) -> np.ndarray:
    """All ones, then one row per concept with that concept's mask at 0."""
    return np.vstack([np.ones((1, k)), 1.0 - np.eye(k)])


def _batches(n: int, size: int) -> list[np.ndarray]:
    return [np.arange(start, min(n, start + size)) for start in range(0, n, size)]


def _batch_size(settings: AttributionSettings, masks: int, width: int) -> int:
    return settings.batch_size or max(1, ROW_BUDGET // max(1, masks * width))


def masked_scores(
    decoder: ConceptDecoder,
    inputs: Inputs,
    codes: np.ndarray,
    labels: np.ndarray,
    masks: np.ndarray,
    *,
    batch_size: int,
) -> np.ndarray:
    """Scores (N x M) of every sample under every mask (masks: M x k shared, or N x M x k)."""
    shared = masks.ndim == 2
    out = []
    for rows in _batches(len(codes), batch_size):
        block = masks if shared else masks[rows]
        tensor = torch.as_tensor(block, dtype=torch.float32)
        tensor = tensor.expand(len(rows), *block.shape) if shared else tensor
        with torch.no_grad():
            out.append(decoder.scores(inputs(rows), codes[rows], tensor, labels[rows]).cpu())
    return torch.cat(out).numpy()


def _gradient(
    decoder: ConceptDecoder, inputs: Inputs, codes: np.ndarray, labels: np.ndarray, size: int
) -> np.ndarray:
    out = []
    for rows in _batches(len(codes), size):
        masks = torch.ones(len(rows), 1, decoder.k, dtype=torch.float64, requires_grad=True)
        with torch.enable_grad():
            scores = decoder.scores(inputs(rows), codes[rows], masks, labels[rows])
            if not scores.requires_grad:
                raise DiscoveryError(
                    f"the class logits are not computed from layer {decoder.ref.name!r} (it feeds "
                    "another output, such as a second head), so its concepts have no share in "
                    "them: record a layer the logits are computed from"
                )
            scores.sum().backward()
        out.append(masks.grad[:, 0].numpy())
    return np.concatenate(out)


def concept_attributions(
    decoder: ConceptDecoder,
    inputs: Inputs,
    codes: np.ndarray,
    labels: np.ndarray,
    method: str = "gradient",
    settings: AttributionSettings | None = None,
    *,
    width: int = 1,
) -> np.ndarray:
    """Each sample's attribution (N x k) of class ``labels[n]``'s score to its concepts.

    ``inputs(rows)`` gives the model's inputs of those samples; ``width`` (positions x dims of
    the layer) sizes the batches.
    """
    if method not in METHODS:
        raise DiscoveryError(f"method={method!r}: give one of {list(METHODS)}.")
    settings = settings or AttributionSettings()
    codes = np.asarray(codes, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    k = decoder.k
    if method == "gradient":
        return _gradient(decoder, inputs, codes, labels, _batch_size(settings, 2, width))
    masks = (
        occlusion_masks(k)
        if method == "occlusion"
        else sobol_design(k, settings.design, settings.seed)
    )
    scores = masked_scores(
        decoder, inputs, codes, labels, masks, batch_size=_batch_size(settings, len(masks), width)
    )
    if method == "occlusion":
        return scores[:, :1] - scores[:, 1:]
    return jansen_total(scores, k)
