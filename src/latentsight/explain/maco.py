"""MACO feature visualization (Fel et al., NeurIPS 2023): optimise only the Fourier phase of an
image whose magnitude spectrum is fixed to that of natural images.

The magnitude template is the mean magnitude spectrum of the user's own inputs (no download),
per channel, so the images keep the data's energy per frequency and colour and only the phase,
which carries the structure, is searched. The phase is made odd under frequency reflection
before use, so the inverse transform is real and the image's spectrum magnitude is exactly the
template. Each step scores several random crops of each image, resized back and with Gaussian
noise added; the absolute gradients of the objective with respect to the image, summed over the
steps, give a transparency map (where the image matters to the objective). Seeded throughout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from latentsight.errors import ExplanationError

Objectives = Callable[[torch.Tensor], torch.Tensor]  # B x C x H x W inputs -> B x K scores


@dataclass(frozen=True)
class MacoSettings:
    """How the phase optimisation runs.

    Args:
        steps: optimisation steps.
        learning_rate: Adam's step size on the phase (radians).
        crops: random crops scored per image and step.
        crop_scale: smallest and largest side of a crop, as a share of the image's side.
        noise: standard deviation of the noise added to each crop, as a share of the template
            images' pixel standard deviation.
        template_images: inputs of the run averaged into the magnitude template.
        seed: seed of the initial phase, the crops and the noise.
    """

    steps: int = 128
    learning_rate: float = 0.2
    crops: int = 6
    crop_scale: tuple[float, float] = (0.6, 1.0)
    noise: float = 0.05
    template_images: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ExplanationError(f"steps must be a positive integer, got {self.steps!r}.")
        if not isinstance(self.crops, int) or self.crops < 1:
            raise ExplanationError(f"crops must be a positive integer, got {self.crops!r}.")
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ExplanationError(
                f"crop_scale={self.crop_scale!r}: give (smallest, largest) with "
                "0 < smallest <= largest <= 1."
            )


@dataclass(frozen=True)
class MacoResult:
    """K optimised images in the model's input space and what they reach.

    Attributes:
        images: ``K x C x H x W``, image k maximising objective k.
        transparency: ``K x H x W`` in [0, 1], the accumulated gradient magnitude per pixel.
        initial: objective k of the initial (random-phase) image k.
        final: objective k of the final image k (no crop, no noise).
        history: ``steps x K``, the objectives averaged over each step's crops.
    """

    images: torch.Tensor
    transparency: torch.Tensor
    initial: np.ndarray
    final: np.ndarray
    history: np.ndarray


def magnitude_template(inputs: torch.Tensor) -> torch.Tensor:
    """The mean magnitude spectrum (``C x H x W``) of a batch of inputs, per channel."""
    if inputs.dim() != 4 or inputs.shape[0] == 0:
        raise ExplanationError(
            f"The magnitude template needs a batch of images (N, C, H, W); got {tuple(inputs.shape)}."
        )
    return torch.fft.fft2(inputs.double()).abs().mean(dim=0).float()


def _reflect(values: torch.Tensor) -> torch.Tensor:
    """``values`` at the reflected frequencies ``(-u, -v)`` (indices modulo the size)."""
    return torch.roll(torch.flip(values, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))


class PhaseImage(torch.nn.Module):
    """A batch of images with a fixed magnitude spectrum and a free phase."""

    def __init__(self, magnitude: torch.Tensor, count: int, generator: torch.Generator) -> None:
        super().__init__()
        self.register_buffer("magnitude", (magnitude + _reflect(magnitude)) / 2.0)
        start = (torch.rand((count, *magnitude.shape), generator=generator) * 2.0 - 1.0) * math.pi
        self.phase = torch.nn.Parameter(start)

    def forward(self) -> torch.Tensor:
        """The images, ``K x C x H x W``: real because the phase is odd and the magnitude even."""
        odd = (self.phase - _reflect(self.phase)) / 2.0
        return torch.fft.ifft2(torch.polar(self.magnitude.expand_as(odd), odd)).real


def random_crops(
    images: torch.Tensor, settings: MacoSettings, noise: float, generator: torch.Generator
) -> torch.Tensor:
    """``crops`` random square crops of each image, resized back to its size, plus noise;
    crop-major (rows ``j * K + k`` are crop j of image k)."""
    count = images.shape[0]
    total = settings.crops * count
    low, high = settings.crop_scale
    side = low + (high - low) * torch.rand(total, generator=generator)
    centre = (1.0 - side)[:, None] * (2.0 * torch.rand(total, 2, generator=generator) - 1.0)
    zero = torch.zeros(total)
    theta = torch.stack(
        [torch.stack([side, zero, centre[:, 0]], 1), torch.stack([zero, side, centre[:, 1]], 1)],
        1,
    ).to(images.device, images.dtype)
    batch = images.repeat(settings.crops, 1, 1, 1)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    crops = F.grid_sample(batch, grid, mode="bilinear", align_corners=False)
    jitter = torch.randn(crops.shape, generator=generator).to(crops.device, crops.dtype)
    return crops + noise * jitter


def maco(
    objectives: Objectives,
    template: torch.Tensor,
    count: int,
    *,
    settings: MacoSettings | None = None,
    pixel_std: float = 1.0,
) -> MacoResult:
    """Find ``count`` images, image k maximising column k of ``objectives`` (a function of a
    batch of model inputs returning ``B x count`` scores), under the magnitude ``template``
    (on the model's device); ``pixel_std`` scales the crops' noise (the data's pixel std)."""
    settings = settings or MacoSettings()
    generator = torch.Generator().manual_seed(settings.seed)
    image = PhaseImage(template.cpu(), count, generator).to(template.device)
    optimizer = torch.optim.Adam(image.parameters(), lr=settings.learning_rate)
    own = torch.arange(count, device=image.phase.device)
    transparency = torch.zeros(count, *template.shape[1:], device=image.phase.device)
    history = np.empty((settings.steps, count))
    with torch.no_grad():
        initial = objectives(image())[own, own].cpu().numpy()
    with torch.enable_grad():
        for step in range(settings.steps):
            optimizer.zero_grad(set_to_none=True)
            pictures = image()
            pictures.retain_grad()
            crops = random_crops(pictures, settings, settings.noise * pixel_std, generator)
            scores = objectives(crops).reshape(settings.crops, count, count)[:, own, own]
            reached = scores.mean(dim=0)
            (-reached.sum()).backward()
            transparency += pictures.grad.abs().sum(dim=1)
            history[step] = reached.detach().cpu().numpy()
            optimizer.step()
    with torch.no_grad():
        final_images = image()
        final = objectives(final_images)[own, own].cpu().numpy()
    peak = transparency.flatten(1).amax(dim=1).clamp(min=1e-12)
    return MacoResult(
        images=final_images.detach(),
        transparency=(transparency / peak[:, None, None]).cpu(),
        initial=initial,
        final=final,
        history=history,
    )
