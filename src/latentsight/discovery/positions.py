"""Codes of every spatial position of a feature map over a fixed dictionary.

A concept's code was fitted on the spatial mean of a map; each position's vector is encoded with
the same directions W by non-negative least squares (FISTA, batched in torch), and the
position codes of a concept are then rescaled so that their spatial mean is the sample's code:
the encoding is non-linear, so without the rescaling the mean of the position codes would only
approximate the code of the mean.
"""

from __future__ import annotations

import torch

FISTA_STEPS = 300


def nnls_codes(
    vectors: torch.Tensor, components: torch.Tensor, steps: int = FISTA_STEPS
) -> torch.Tensor:
    """Non-negative ``V`` (... x k) minimising ``||vectors - V components||`` (FISTA)."""
    gram = components @ components.T
    step = 1.0 / float(torch.linalg.eigvalsh(gram).max().clamp(min=1e-12))
    target = vectors @ components.T
    codes = (target @ torch.linalg.pinv(gram)).clamp(min=0.0)
    momentum, previous, t = codes, codes, 1.0
    for _ in range(steps):
        codes = (momentum - step * (momentum @ gram - target)).clamp(min=0.0)
        t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
        momentum = codes + ((t - 1.0) / t_next) * (codes - previous)
        previous, t = codes, t_next
    return codes


def match_mean(position_codes: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Rescale each concept's position codes (B x P x k) so their mean over P is ``codes`` (B x k);
    a concept absent from every position gets its code spread evenly."""
    mean = position_codes.mean(dim=1, keepdim=True)
    scaled = position_codes * (codes[:, None, :] / mean.clamp(min=1e-12))
    even = codes[:, None, :].expand_as(position_codes)
    return torch.where(mean > 1e-12, scaled, even)


def position_codes(
    flat: torch.Tensor, components: torch.Tensor, codes: torch.Tensor
) -> torch.Tensor:
    """Codes (B x P x k) of a map's positions (``flat``: B x P x D) whose spatial mean is
    ``codes``; a vector layer (P = 1) keeps its codes as they are."""
    if flat.shape[1] == 1:
        return codes[:, None, :]
    return match_mean(nnls_codes(flat, components), codes)
