"""Whether a map says what the model uses: deletion and insertion curves against a random pixel
order (Petsiuk et al. 2018), and Captum's infidelity and max-sensitivity (Yeh et al. 2019).

Deletion replaces the pixels a map ranks highest first by a baseline (the image heavily blurred by
default) and records the explained score; a faithful map makes it fall fast (low area under the
curve). Insertion starts from the baseline and puts the pixels back in the same order; a faithful
map makes the score rise fast (high area). A random order of the same pixels is the reference.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from captum.metrics import infidelity, sensitivity_max

from latentsight.explain.attribution import Baseline, baseline_of

Scorer = Callable[[torch.Tensor], torch.Tensor]


def area(curves: np.ndarray) -> np.ndarray:
    """Area under each curve sampled at evenly spaced fractions of 0..1 (trapezoids)."""
    steps = curves.shape[-1] - 1
    return (curves[..., 1:] + curves[..., :-1]).sum(axis=-1) / (2.0 * steps)


def perturbation_curves(
    score: Scorer,
    inputs: torch.Tensor,
    maps: torch.Tensor,
    *,
    steps: int = 20,
    baseline: Baseline = "blur",
) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion curves, each ``N x (steps + 1)``, for pixels ranked by ``maps``.

    Ties are broken by position, so a constant map deletes in raster order.
    """
    count, _, height, width = inputs.shape
    pixels = height * width
    order = torch.argsort(maps.reshape(count, -1), dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(pixels, device=order.device).expand(count, -1))
    reference = baseline_of(inputs, baseline)
    deletion, insertion = [], []
    with torch.inference_mode():
        for step in range(steps + 1):
            shown = (ranks < round(step / steps * pixels)).reshape(count, 1, height, width)
            deletion.append(score(torch.where(shown, reference, inputs)).float().cpu())
            insertion.append(score(torch.where(shown, inputs, reference)).float().cpu())
    return torch.stack(deletion, 1).numpy(), torch.stack(insertion, 1).numpy()


def random_maps(shape: tuple[int, ...], seed: int, device: torch.device) -> torch.Tensor:
    """Uniform random maps: the reference ordering of the deletion and insertion tests."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator).to(device)


def infidelity_of(
    forward: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor | None,
    *,
    noise: float,
    seed: int,
    samples: int = 10,
) -> np.ndarray:
    """Captum's infidelity per sample with Gaussian perturbations of std ``noise``; attributions
    are rescaled by the best factor first (``normalize=True``), so only their shape counts."""
    generator = torch.Generator().manual_seed(seed)

    def perturb(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        drawn = torch.randn(values.shape, generator=generator).to(values.device) * noise
        return drawn, values - drawn

    with torch.no_grad():
        found = infidelity(
            forward,
            perturb,
            inputs,
            attributions,
            target=target,
            n_perturb_samples=samples,
            normalize=True,
        )
    return found.float().cpu().numpy()


def sensitivity_of(
    explain: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    inputs: torch.Tensor,
    target: torch.Tensor | None,
    *,
    radius: float,
    seed: int,
    samples: int = 5,
) -> np.ndarray:
    """Captum's max-sensitivity per sample: the largest relative change of the map under uniform
    input noise of at most ``radius``."""

    def explanation(
        values: torch.Tensor | tuple[torch.Tensor, ...], target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor]:
        values = values[0] if isinstance(values, tuple) else values
        with torch.enable_grad():
            return (explain(values, target),)

    with torch.random.fork_rng(devices=[inputs.device] if inputs.device.type == "cuda" else []):
        torch.manual_seed(seed)
        found = sensitivity_max(
            explanation, inputs, perturb_radius=radius, n_perturb_samples=samples, target=target
        )
    return found.float().cpu().numpy()
