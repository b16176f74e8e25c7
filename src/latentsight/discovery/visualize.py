"""A concept shown as a synthetic image: MACO on the concept's direction at its layer.

The objective is the projection of the layer's pooled activation (the mean view the dictionary
was fitted on) on the concept's unit direction W_c; MACO searches the Fourier phase under the
magnitude spectrum of the run's own inputs, so the image keeps the data's frequency content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from latentsight.capture.forward import call_model
from latentsight.capture.layers import LayerRef, first_tensor, hook_layer
from latentsight.capture.pooling import layer_kind
from latentsight.discovery.errors import DiscoveryError
from latentsight.explain.maco import MacoSettings, maco, magnitude_template
from latentsight.explain.session import ModelSession, frozen, no_inplace

if TYPE_CHECKING:
    from torch import nn

    from latentsight.store.run import Run


@dataclass(frozen=True)
class ConceptImage:
    """A synthetic image that maximises a concept, and where in it the concept lives.

    Attributes:
        concept: the concept id.
        image: ``H x W x 3`` uint8, drawn as the Project draws its inputs.
        transparency: ``H x W`` in [0, 1], the accumulated gradient magnitude per pixel.
        initial: the concept's projection for the initial (random-phase) image.
        final: the concept's projection for the final image.
        inputs: the image in the model's input space (``C x H x W``).
    """

    concept: int
    image: np.ndarray
    transparency: np.ndarray
    initial: float
    final: float
    inputs: torch.Tensor

    def picture(self, size: int = 128) -> Image.Image:
        """The image with the transparency map as its alpha channel (RGBA, ``size`` px)."""
        alpha = (self.transparency * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        rgba = np.concatenate([self.image, alpha[..., None]], axis=-1)
        return Image.fromarray(rgba, "RGBA").resize((size, size), Image.Resampling.NEAREST)


def mean_view(activation: torch.Tensor, module: nn.Module, point: str) -> torch.Tensor:
    """A batch of activations pooled as capture's mean view (``B x D``), differentiably."""
    kind = layer_kind(activation, module, point)
    batch = activation.shape[0]
    if kind == "vector":
        return activation.reshape(batch, -1)
    if kind == "conv":
        return activation.mean(dim=(2, 3))
    if kind == "sequence":
        return activation.mean(dim=1)
    return activation.reshape(batch, activation.shape[1], -1).mean(dim=2)


def visualize_concept(
    run: Run,
    layer: str,
    concept: int,
    direction: np.ndarray,
    *,
    settings: MacoSettings | None = None,
    device: str | torch.device | None = None,
) -> ConceptImage:
    """MACO image maximising ``direction`` (the concept's row of W) at ``layer``; needs the model."""
    if run.project is None:
        raise DiscoveryError(
            "Visualising a concept runs the model, and this run has no model attached: attach "
            "the Project it was captured from (run.attach(project)) and call it again."
        )
    settings = settings or MacoSettings()
    session = ModelSession(run, device)
    ref = LayerRef.parse(layer)
    module = session.module(ref.module_name)
    target = torch.as_tensor(np.asarray(direction), dtype=torch.float32, device=session.device)
    captured: dict[str, torch.Tensor] = {}

    def keep(value: Any) -> None:
        captured["value"] = first_tensor(value)

    def objectives(batch: torch.Tensor) -> torch.Tensor:
        call_model(session.model, batch)
        pooled = mean_view(captured["value"], module, ref.point)
        if pooled.shape[1] != target.shape[0]:
            raise DiscoveryError(
                f"Layer {layer!r} pools to {pooled.shape[1]} values but the concept has "
                f"{target.shape[0]}: its stored mean view was projected (PoolingSettings."
                "project_above), so its concepts cannot be visualised; capture it unprojected."
            )
        return (pooled @ target)[:, None]

    inputs = session.spread_inputs(settings.template_images)
    handle = hook_layer(module, ref, keep)
    try:
        with frozen(session.model), no_inplace(session.model):
            result = maco(
                objectives,
                magnitude_template(inputs),
                1,
                settings=settings,
                pixel_std=float(inputs.std()),
            )
    finally:
        handle.remove()
    return ConceptImage(
        concept=concept,
        image=session.images(result.images)[0],
        transparency=result.transparency[0].numpy(),
        initial=float(result.initial[0]),
        final=float(result.final[0]),
        inputs=result.images[0].cpu(),
    )
