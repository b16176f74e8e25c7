"""Feature visualization: the images that maximise a channel's mean activation, found by gradient
ascent in input space (Olah et al. 2017), or by MACO (phase only; see ``explain.maco``).

Pixels are not optimised directly, which gives high-frequency noise: the image is a Fourier
spectrum scaled by 1 / frequency (so low frequencies dominate), its colours pass through the
square root of the data's colour covariance (decorrelated colour), and a sigmoid keeps it in
[0, 1]. Each step sees the image under a fresh random jitter, scale and rotation, so only features
that survive small transformations are reinforced. Everything random is drawn from one seeded
generator: the same seed gives the same images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from latentsight.capture.forward import call_model
from latentsight.errors import ExplanationError
from latentsight.explain.maco import MacoSettings, maco, magnitude_template
from latentsight.explain.session import ModelSession, frozen, no_inplace
from latentsight.overlay import enlarge, panel

if TYPE_CHECKING:
    from latentsight.store.run import Run

COLOUR_SAMPLES = 256


@dataclass(frozen=True)
class FilterSettings:
    """How the ascent runs.

    Args:
        steps: optimisation steps.
        learning_rate: Adam's step size on the spectrum.
        size: side of the images (default: the inputs' side).
        jitter: largest random shift per step, in pixels.
        scale: largest relative random zoom per step (0.1 is +-10 %).
        rotation: largest random rotation per step, in degrees.
        decay: how fast the spectrum's amplitude falls with frequency (1 / f ** decay).
        seed: seed of the initial spectrum and of every random transformation.
    """

    steps: int = 256
    learning_rate: float = 0.05
    size: int | None = None
    jitter: int = 2
    scale: float = 0.1
    rotation: float = 10.0
    decay: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ExplanationError(f"steps must be a positive integer, got {self.steps!r}.")
        if self.size is not None and (not isinstance(self.size, int) or self.size < 8):
            raise ExplanationError(f"size must be an integer >= 8, got {self.size!r}.")


@dataclass
class FilterImages:
    """Images that maximise channels of a layer.

    Attributes:
        layer: the layer.
        channels: the channel indices, in the order of the images.
        images: ``K x H x W x 3`` uint8.
        activation: the mean activation each image reaches in its channel (untransformed).
        transparency: ``K x H x W`` in [0, 1], where each image matters to its channel
            (method ``"maco"`` only).
    """

    layer: str
    channels: list[int]
    images: np.ndarray
    activation: np.ndarray
    transparency: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"FilterImages(layer={self.layer!r}, channels={self.channels})"

    def grid(self, *, columns: int | None = None) -> Image.Image:
        """The images side by side, in rows of ``columns``."""
        columns = columns or math.ceil(math.sqrt(len(self.images)))
        return panel(
            [enlarge(Image.fromarray(image), 64) for image in self.images], columns=columns
        )

    def save(self, directory: str | Path) -> list[Path]:
        """One PNG per channel, ``<layer>.<channel>.png``, and the grid ``<layer>.png``."""
        from latentsight.store.files import check_writable, layer_file_stem

        directory = check_writable(directory, folder=True)
        directory.mkdir(parents=True, exist_ok=True)
        stem = layer_file_stem(self.layer)
        written = []
        for channel, image in zip(self.channels, self.images, strict=True):
            path = directory / f"{stem}.{channel}.png"
            enlarge(Image.fromarray(image), 64).save(path)
            written.append(path)
        self.grid().save(directory / f"{stem}.png")
        return [*written, directory / f"{stem}.png"]


def colour_matrix(samples: torch.Tensor) -> torch.Tensor:
    """Square root of the pixels' colour covariance (``C x C``), scaled to a largest column of 1."""
    pixels = samples.permute(1, 0, 2, 3).reshape(samples.shape[1], -1).double()
    covariance = torch.cov(pixels)
    values, vectors = torch.linalg.eigh(covariance)
    root = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    norm = root.norm(dim=0).max()
    if norm <= 0:
        return torch.eye(samples.shape[1], dtype=torch.float32)
    return (root / norm).float()


class FourierImage(torch.nn.Module):
    """A batch of images parameterised by their spectra, with decorrelated colour."""

    def __init__(
        self,
        count: int,
        channels: int,
        size: int,
        colours: torch.Tensor,
        decay: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        fy = torch.fft.fftfreq(size)[:, None]
        fx = torch.fft.rfftfreq(size)[None, :]
        frequency = torch.sqrt(fy * fy + fx * fx).clamp(min=1.0 / size)
        self.register_buffer("amplitude", frequency.pow(-decay) / size)
        self.register_buffer("colours", colours)
        shape = (count, channels, size, size // 2 + 1, 2)
        self.spectrum = torch.nn.Parameter(0.01 * torch.randn(shape, generator=generator))
        self.size = size

    def forward(self) -> torch.Tensor:
        """The images, ``K x C x H x W`` in [0, 1]."""
        spectrum = torch.view_as_complex(self.spectrum) * self.amplitude
        images = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho") * self.size
        images = torch.einsum("kchw,dc->kdhw", images, self.colours)
        return torch.sigmoid(images)


def random_transform(
    images: torch.Tensor, settings: FilterSettings, generator: torch.Generator
) -> torch.Tensor:
    """The images under one random shift, zoom and rotation each (reflection at the borders)."""
    count, _, height, width = images.shape

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, generator=generator)

    angle = uniform(-settings.rotation, settings.rotation) * math.pi / 180.0
    zoom = uniform(1.0 - settings.scale, 1.0 + settings.scale)
    shift_x = uniform(-settings.jitter, settings.jitter) * 2.0 / width
    shift_y = uniform(-settings.jitter, settings.jitter) * 2.0 / height
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1
    ).to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="reflection", align_corners=False)


def visualize_filters(
    run: Run,
    layer: str,
    channels: Sequence[int] | range | None = None,
    *,
    method: str = "fourier",
    settings: FilterSettings | MacoSettings | None = None,
    input_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device | None = None,
) -> FilterImages:
    """Images that maximise each channel's mean activation at ``layer``, all channels at once.

    ``method`` is ``"fourier"`` (spectrum scaled by 1 / frequency, decorrelated colour, with
    :class:`FilterSettings`) or ``"maco"`` (phase only, under the magnitude spectrum of the run's
    inputs, with :class:`~latentsight.explain.maco.MacoSettings`; also returns transparency
    maps). ``input_transform`` maps the fourier method's [0, 1] images to what the model takes
    (e.g. its normalisation); ``channels`` defaults to the first 16.
    """
    expected = {"fourier": FilterSettings, "maco": MacoSettings}
    if method not in expected:
        raise ExplanationError(f"method={method!r}: give 'fourier' or 'maco'.")
    settings = settings or expected[method]()
    if not isinstance(settings, expected[method]):
        raise ExplanationError(
            f"method={method!r} takes {expected[method].__name__}, got "
            f"{type(settings).__name__}: pass settings={expected[method].__name__}(...)."
        )
    if method == "maco" and input_transform is not None:
        raise ExplanationError(
            "method='maco' builds its images from the model's own inputs (their magnitude "
            "spectrum), so they need no input_transform: leave it out."
        )
    session = ModelSession(run, device)
    module = session.module(layer)
    input_channels, height, _ = session.input_shape
    size = (settings.size or height) if isinstance(settings, FilterSettings) else height
    transform = input_transform or (lambda images: images)
    probe = torch.full((1, input_channels, size, size), 0.5, device=session.device)
    output = session.layer_outputs(transform(probe), [layer]).get(layer)
    if not isinstance(output, torch.Tensor) or output.dim() != 4:
        raise ExplanationError(
            f"Layer {layer!r} ({type(module).__name__}) does not output channel maps "
            "(N, C, H, W): choose a convolutional layer."
        )
    width = output.shape[1]
    chosen = list(range(min(16, width))) if channels is None else [int(c) for c in channels]
    if not chosen or min(chosen) < 0 or max(chosen) >= width:
        raise ExplanationError(
            f"Channels {chosen} are not all in layer {layer!r}, which has {width} channels "
            f"(0 to {width - 1})."
        )
    index = torch.tensor(chosen, device=session.device)
    captured: dict[str, torch.Tensor] = {}
    handle = module.register_forward_hook(lambda _m, _i, out: captured.__setitem__("output", out))
    try:
        with frozen(session.model), no_inplace(session.model):
            if isinstance(settings, MacoSettings):
                return _maco_filters(session, layer, chosen, settings, captured, index)
            return _fourier_filters(
                session, layer, chosen, settings, size, transform, captured, index
            )
    finally:
        handle.remove()


def _fourier_filters(
    session: ModelSession,
    layer: str,
    chosen: list[int],
    settings: FilterSettings,
    size: int,
    transform: Callable[[torch.Tensor], torch.Tensor],
    captured: dict[str, torch.Tensor],
    index: torch.Tensor,
) -> FilterImages:
    """Gradient ascent on a 1 / f-scaled spectrum with decorrelated colour."""
    input_channels = session.input_shape[0]
    generator = torch.Generator().manual_seed(settings.seed)
    colours = (
        colour_matrix(session.spread_inputs(COLOUR_SAMPLES).cpu())
        if input_channels == 3
        else torch.eye(input_channels)
    )
    image = FourierImage(len(chosen), input_channels, size, colours, settings.decay, generator)
    image = image.to(session.device)
    optimizer = torch.optim.Adam(image.parameters(), lr=settings.learning_rate)
    with torch.enable_grad():
        for _ in range(settings.steps):
            optimizer.zero_grad(set_to_none=True)
            seen = random_transform(image(), settings, generator)
            call_model(session.model, transform(seen))
            activation = _channel_means(captured["output"], index)
            (-activation.sum()).backward()
            optimizer.step()
    with torch.no_grad():
        final = image()
        call_model(session.model, transform(final))
        reached = _channel_means(captured["output"], index)
    pictures = (final.permute(0, 2, 3, 1).cpu().numpy() * 255.0 + 0.5).clip(0, 255)
    if input_channels == 1:
        pictures = np.repeat(pictures, 3, axis=-1)
    return FilterImages(
        layer=layer,
        channels=chosen,
        images=pictures[..., :3].astype(np.uint8),
        activation=reached.detach().cpu().numpy(),
    )


def _maco_filters(
    session: ModelSession,
    layer: str,
    chosen: list[int],
    settings: MacoSettings,
    captured: dict[str, torch.Tensor],
    index: torch.Tensor,
) -> FilterImages:
    """MACO: phase-only optimisation under the magnitude spectrum of the run's inputs."""
    inputs = session.spread_inputs(settings.template_images)

    def objectives(batch: torch.Tensor) -> torch.Tensor:
        call_model(session.model, batch)
        return captured["output"][:, index].mean(dim=(2, 3))

    result = maco(
        objectives,
        magnitude_template(inputs),
        len(chosen),
        settings=settings,
        pixel_std=float(inputs.std()),
    )
    return FilterImages(
        layer=layer,
        channels=chosen,
        images=session.images(result.images),
        activation=result.final,
        transparency=result.transparency.numpy(),
    )


def _channel_means(output: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """Image k's mean activation in channel ``channels[k]``."""
    rows = torch.arange(len(channels), device=output.device)
    return output[rows, channels].mean(dim=(1, 2))
