"""Concept heatmaps: where a concept sits in each image.

The model is re-run on the samples; the layer's spatial map (the layer itself, or for a vector
layer the map whose global average pool it is) is encoded position by position with the
dictionary's fixed directions (batched non-negative least squares), the concept's position
codes are upsampled to the input (bilinear) and scaled so that their spatial mean is the
sample's code for the concept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from latentsight.discovery.errors import DiscoveryError
from latentsight.discovery.positions import nnls_codes
from latentsight.discovery.session import probe
from latentsight.overlay import overlay, panel

if TYPE_CHECKING:
    from latentsight.discovery.result import ConceptBank


@dataclass(frozen=True)
class ConceptHeatmaps:
    """A concept's maps (n x H x W, at the input's size) over the samples' images.

    ``codes`` are the samples' codes for the concept, each map's spatial mean; ``scale`` is the
    factor that made it so (near 1 where the position codes already average to the code);
    ``source`` is the layer whose spatial map was encoded.
    """

    concept: int
    ids: list[str]
    maps: np.ndarray
    codes: np.ndarray
    scale: np.ndarray
    images: np.ndarray  # n x H x W x 3 uint8
    source: str

    def overlay(self, index: int, alpha: float = 0.5) -> Image.Image:
        """The ``index``-th sample's map drawn over its image."""
        return overlay(self.images[index], self.maps[index], sign="positive", alpha=alpha)

    def panel(self, columns: int | None = None) -> Image.Image:
        """All overlays side by side (rows of ``columns``)."""
        return panel([self.overlay(i) for i in range(len(self.ids))], columns=columns)

    def save(self, folder: str | Path) -> list[Path]:
        """One PNG per sample, ``concept_<c>_<id>.png`` (the id's slashes become underscores)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, sample_id in enumerate(self.ids):
            path = folder / f"concept_{self.concept}_{sample_id.replace('/', '_')}.png"
            self.overlay(i).save(path)
            paths.append(path)
        return paths


def spatial_map(
    live: torch.Tensor, outputs: dict[str, torch.Tensor], layer: str
) -> tuple[str, torch.Tensor]:
    """The layer's own map, or the last module output whose spatial mean is the layer's vector."""
    if live.dim() == 4:
        return layer, live
    maps = {
        name: out
        for name, out in outputs.items()
        if out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1
    }
    if live.dim() == 2:
        for name in reversed(list(maps)):
            out = maps[name]
            if out.shape[:2] == live.shape and torch.allclose(
                out.mean(dim=(2, 3)), live, rtol=1e-4, atol=1e-5
            ):
                return name, out
    hint = f" such as {', '.join(repr(n) for n in list(maps)[-3:])}" if maps else ""
    raise DiscoveryError(
        f"Layer {layer!r} holds {tuple(live.shape[1:])} values per sample and is not the "
        "global average of a spatial map, so concepts there have no place in the image: "
        f"discover concepts on a convolutional layer{hint} for heatmaps."
    )


def concept_maps(
    feature_map: torch.Tensor,
    components: np.ndarray,
    column: int,
    codes: np.ndarray,
    size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Maps (n x size) of concept ``column`` over a feature map (n x D x h x w) whose spatial
    means are ``codes``, and the scale that made them so."""
    if feature_map.shape[1] != components.shape[1]:
        raise DiscoveryError(
            f"The spatial map has {feature_map.shape[1]} channels but the dictionary "
            f"{components.shape[1]} dimensions: discover the concepts on the layer's mean view."
        )
    flat = feature_map.double().flatten(2).transpose(1, 2)
    position = nnls_codes(flat, torch.as_tensor(components, dtype=torch.float64))[..., column]
    small = position.reshape(len(feature_map), 1, *feature_map.shape[2:])
    up = F.interpolate(small, size=size, mode="bilinear", align_corners=False)
    up = up[:, 0].clamp(min=0.0).numpy()
    codes = np.asarray(codes, dtype=np.float64)
    means = up.mean(axis=(1, 2))
    scale = np.divide(codes, means, out=np.zeros_like(codes), where=means > 1e-12)
    even = np.broadcast_to(codes[:, None, None], up.shape)
    return np.where((means > 1e-12)[:, None, None], up * scale[:, None, None], even), scale


def concept_heatmaps(
    bank: ConceptBank, sample_ids: str | Sequence[str], concept: int
) -> ConceptHeatmaps:
    """Heatmaps of ``concept`` on these samples (see the module's docstring)."""
    ids = [sample_ids] if isinstance(sample_ids, str) else [str(i) for i in sample_ids]
    if not ids:
        raise DiscoveryError("No sample ids given: pass one id or a list, e.g. ['val/0'].")
    group = bank._bank_of(concept)
    position = np.flatnonzero(bank.samples["id"].isin(ids).to_numpy())
    index = dict(zip(bank.samples["id"].to_numpy()[position], position, strict=True))
    missing = [i for i in ids if i not in index]
    if missing:
        raise DiscoveryError(
            f"{len(missing)} sample id(s) are not among the discovered samples, e.g. "
            f"{missing[:3]}: take them from ConceptBank.samples['id']."
        )
    rows = np.array([index[i] for i in ids])
    model = bank.concept_model("Heatmaps")
    inputs = model.inputs(rows, images=True)
    live, outputs = probe(model.model, inputs, bank.layer)
    source, feature_map = spatial_map(live, outputs, bank.layer)
    codes = group.codes[rows, concept - group.first]
    maps, scale = concept_maps(
        feature_map.detach().cpu(),
        group.dictionary.components,
        concept - group.first,
        codes,
        tuple(inputs.shape[2:]),
    )
    return ConceptHeatmaps(concept, ids, maps, codes, scale, model.session.images(inputs), source)
