"""Attribution methods on Captum, one class per method with one verb: ``attribute(inputs, target)``.

Input methods (saliency, input x gradient, Integrated Gradients, SmoothGrad, GradientSHAP,
occlusion) give one value per input pixel and channel; layer methods (Grad-CAM, LayerCAM) one per
position of a convolutional layer's map. ``to_maps`` turns either into one ``H x W`` map per sample
at input resolution: signed methods sum over channels (so Integrated Gradients keeps its
completeness), gradient magnitudes take the channel maximum (as Simonyan et al. 2013), layer maps
are upsampled bilinearly.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from captum._utils.gradient import compute_layer_gradients_and_eval
from captum.attr import (
    GradientShap,
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import nn

from latentsight.attribution_methods import KINDS, method_name
from latentsight.errors import ExplanationError

Baseline = Literal["zero", "blur", "mean"]
Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AttributionSettings:
    """Options of the attribution methods; each method reads the ones it uses.

    Args:
        steps: Integrated Gradients' interpolation steps ``m``.
        samples: noisy samples of SmoothGrad, baseline samples of GradientSHAP.
        noise: SmoothGrad's (and GradientSHAP's) noise, as a fraction of the input's value range.
        baseline: the reference input of Integrated Gradients, GradientSHAP and occlusion:
            ``"zero"`` (black), ``"blur"`` (the image blurred) or ``"mean"`` (its mean colour).
        window: occlusion's square patch side in pixels (default: an eighth of the image side).
        stride: occlusion's step (default: half the window).
        seed: seed of the random parts (SmoothGrad noise, GradientSHAP draws).
    """

    steps: int = 32
    samples: int = 16
    noise: float = 0.15
    baseline: Baseline = "zero"
    window: int | None = None
    stride: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "samples"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ExplanationError(
                    f"{name} must be a positive integer, got {getattr(self, name)!r}."
                )
        if self.baseline not in ("zero", "blur", "mean"):
            raise ExplanationError(
                f"baseline must be 'zero', 'blur' or 'mean', got {self.baseline!r}."
            )
        if not self.noise >= 0:
            raise ExplanationError(f"noise must be >= 0, got {self.noise!r}.")

    def used_by(self, method: type[Method]) -> dict[str, Any]:
        """The settings a method reads, to key its cached results."""
        values = dataclasses.asdict(self)
        return {name: values[name] for name in method.options}


def baseline_of(inputs: torch.Tensor, kind: Baseline) -> torch.Tensor:
    """The reference inputs: black, heavily blurred (sigma = side / 8), or each image's mean colour."""
    if kind == "zero":
        return torch.zeros_like(inputs)
    if kind == "mean":
        return inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs).contiguous()
    sigma = max(inputs.shape[-2:]) / 8.0
    radius = int(3 * sigma)
    offsets = torch.arange(-radius, radius + 1, device=inputs.device, dtype=inputs.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = inputs.shape[1]
    blurred = F.pad(inputs, (radius, radius, radius, radius), mode="replicate")
    blurred = F.conv2d(blurred, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(blurred, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


class Method(ABC):
    """An attribution method bound to a scoring function (and, for layer methods, a layer);
    whether it is signed and layered is read from its name's entry in the torch-free
    :data:`latentsight.attribution_methods.KINDS`."""

    name: ClassVar[str]
    layered: ClassVar[bool]
    signed: ClassVar[bool]
    options: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Take a named method's kind from the one table that the readers of cached maps share."""
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            kind = KINDS[cls.name]
            cls.signed, cls.layered = kind.signed, kind.layered

    def __init__(
        self, forward: Forward, settings: AttributionSettings, layer: nn.Module | None = None
    ) -> None:
        self.forward = forward
        self.settings = settings
        self.layer = layer

    @abstractmethod
    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """The raw attribution: ``N x C x H x W`` for input methods, ``N x h x w`` for layer ones."""

    def to_maps(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """One ``H x W`` map per sample at input resolution."""
        return raw.sum(dim=1) if self.signed else raw.amax(dim=1)


class SaliencyMethod(Method):
    """Absolute input gradient (Simonyan et al. 2013)."""

    name = "saliency"

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        return Saliency(self.forward).attribute(inputs, target=target, abs=True)


class InputXGradientMethod(Method):
    """Input times its gradient."""

    name = "input_x_gradient"

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        return InputXGradient(self.forward).attribute(inputs, target=target)


class IntegratedGradientsMethod(Method):
    """Integrated Gradients (Sundararajan et al. 2017) from the chosen baseline, ``steps`` steps."""

    name = "integrated_gradients"
    options = ("steps", "baseline")

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        return IntegratedGradients(self.forward).attribute(
            inputs,
            baselines=baseline_of(inputs, self.settings.baseline),
            target=target,
            n_steps=self.settings.steps,
            internal_batch_size=len(inputs),
        )


def _noise_std(inputs: torch.Tensor, fraction: float) -> float:
    return float(fraction * (inputs.max() - inputs.min()).detach().clamp(min=1e-12))


class SmoothGradMethod(Method):
    """SmoothGrad (Smilkov et al. 2017): saliency averaged over noisy copies (Captum NoiseTunnel)."""

    name = "smoothgrad"
    options = ("samples", "noise", "seed")

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        with _seeded(self.settings.seed, inputs.device):
            return NoiseTunnel(Saliency(self.forward)).attribute(
                inputs,
                nt_type="smoothgrad",
                nt_samples=self.settings.samples,
                nt_samples_batch_size=len(inputs),
                stdevs=_noise_std(inputs, self.settings.noise),
                target=target,
                abs=True,
            )


class GradientShapMethod(Method):
    """GradientSHAP (Lundberg & Lee 2017): expected gradients from noisy baselines."""

    name = "gradient_shap"
    options = ("samples", "noise", "baseline", "seed")

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        baselines = torch.cat([baseline_of(inputs, self.settings.baseline), inputs.mean(0, True)])
        with _seeded(self.settings.seed, inputs.device):
            return GradientShap(self.forward).attribute(
                inputs,
                baselines=baselines,
                n_samples=self.settings.samples,
                stdevs=_noise_std(inputs, self.settings.noise),
                target=target,
            )


class OcclusionMethod(Method):
    """Occlusion (Zeiler & Fergus 2014): the score drop when a sliding patch is replaced."""

    name = "occlusion"
    options = ("window", "stride", "baseline")

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        side = min(inputs.shape[-2:])
        window = self.settings.window or max(2, side // 8)
        stride = self.settings.stride or max(1, window // 2)
        channels = inputs.shape[1]
        return Occlusion(self.forward).attribute(
            inputs,
            sliding_window_shapes=(channels, window, window),
            strides=(channels, stride, stride),
            baselines=baseline_of(inputs, self.settings.baseline),
            target=target,
            perturbations_per_eval=4,
        )


class _LayerMethod(Method):
    def to_maps(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(raw[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


class GradCamMethod(_LayerMethod):
    """Grad-CAM (Selvaraju et al. 2017): ReLU of channel maps weighted by mean gradients."""

    name = "gradcam"

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        cam = LayerGradCam(self.forward, self.layer).attribute(
            inputs, target=target, relu_attributions=True
        )
        return cam[:, 0]


class LayerCamMethod(_LayerMethod):
    """LayerCAM (Jiang et al. 2021): ReLU of the sum over channels of ReLU(gradient) x activation,
    position by position; sharper than Grad-CAM at shallow layers."""

    name = "layercam"

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        with torch.enable_grad():
            gradients, activations = compute_layer_gradients_and_eval(
                self.forward, self.layer, (inputs,), target
            )
        return F.relu((F.relu(gradients[0]) * activations[0]).sum(dim=1))


METHODS: dict[str, type[Method]] = {
    method.name: method
    for method in (
        SaliencyMethod,
        InputXGradientMethod,
        IntegratedGradientsMethod,
        SmoothGradMethod,
        GradientShapMethod,
        OcclusionMethod,
        GradCamMethod,
        LayerCamMethod,
    )
}


def method_class(name: str) -> type[Method]:
    """The method registered under ``name`` or one of its short names (see
    :func:`latentsight.attribution_methods.method_name`), or an error listing them."""
    return METHODS[method_name(name)]


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's generators for the block and restore them after (Captum draws from them)."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield
