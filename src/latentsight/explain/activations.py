"""Intermediate activations of one input: every channel's map of a layer as a grid, and per layer
the fraction of blank channels, the "information distillation" view of a ConvNet (Chollet 2017):
deeper layers keep less of the picture and more of the class, and more of their filters stay dark.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from latentsight.errors import ExplanationError
from latentsight.explain.session import ModelSession, sample_rows
from latentsight.overlay import enlarge, panel

if TYPE_CHECKING:
    from latentsight.store.run import Run

BLANK_TOLERANCE = 1e-6
CMAP = "viridis"
_STAGES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d)


@dataclass
class ActivationMaps:
    """The channel maps of one layer for one input.

    Attributes:
        sample_id: the sample.
        layer: the layer's module name.
        maps: ``C x h x w`` float32 activations.
        blank: per channel, whether its map is zero everywhere (max |value| <= tolerance).
    """

    sample_id: str
    layer: str
    maps: np.ndarray
    blank: np.ndarray

    def __repr__(self) -> str:
        return (
            f"ActivationMaps({self.sample_id!r}, layer={self.layer!r}, maps={self.maps.shape}, "
            f"blank={self.blank_fraction:.0%})"
        )

    @property
    def blank_fraction(self) -> float:
        """The fraction of channels that are blank for this input."""
        return float(self.blank.mean())

    def grid(self, *, columns: int | None = None) -> Image.Image:
        """Every channel's map, each scaled to its own range (blank ones stay dark), as one image."""
        columns = columns or int(np.ceil(np.sqrt(len(self.maps))))
        low = self.maps.min(axis=(1, 2), keepdims=True)
        span = self.maps.max(axis=(1, 2), keepdims=True) - low
        scaled = np.where(span > 0, (self.maps - low) / np.where(span > 0, span, 1.0), 0.0)
        colours = matplotlib.colormaps[CMAP](scaled)[..., :3]
        tiles = [
            enlarge(Image.fromarray((tile * 255 + 0.5).astype(np.uint8)), 32) for tile in colours
        ]
        return panel(tiles, columns=columns, gap=1)

    def save(self, path: str | Path) -> Path:
        """Write the grid as a PNG."""
        from latentsight.store.files import check_writable

        path = check_writable(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.grid().save(path)
        return path


class ActivationSweep(Mapping[str, ActivationMaps]):
    """The activation maps of one input at several layers, shallow to deep."""

    def __init__(self, layers: dict[str, ActivationMaps]) -> None:
        self._layers = layers

    def __getitem__(self, layer: str) -> ActivationMaps:
        return self._layers[layer]

    def __iter__(self) -> Iterator[str]:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __repr__(self) -> str:
        return f"ActivationSweep(layers={list(self._layers)})"

    @property
    def sparsity(self) -> pd.DataFrame:
        """Per layer: channels, blank channels and their fraction, shallow to deep."""
        return pd.DataFrame(
            [
                {
                    "layer": name,
                    "channels": len(maps.blank),
                    "size": "x".join(str(side) for side in maps.maps.shape[1:]),
                    "blank": int(maps.blank.sum()),
                    "blank_fraction": maps.blank_fraction,
                }
                for name, maps in self._layers.items()
            ]
        )

    def save(self, directory: str | Path) -> list[Path]:
        """One grid PNG per layer, ``<layer>.png``."""
        from latentsight.store.files import layer_file_stem

        return [
            maps.save(Path(directory) / f"{layer_file_stem(name)}.png")
            for name, maps in self._layers.items()
        ]


def activation_stages(model: nn.Module, session: ModelSession) -> list[str]:
    """The layers whose outputs the sweep shows: activations and poolings with spatial output
    (as Keras' Conv2D(relu) and MaxPooling2D layers), else every convolution."""
    candidates = [
        name for name, module in model.named_modules() if isinstance(module, (*_STAGES, *_POOLS))
    ]
    if candidates:
        probe = session.inputs(session.run.samples.iloc[:1])
        outputs = session.layer_outputs(probe, candidates)
        spatial = [
            name
            for name in candidates
            if isinstance(outputs.get(name), torch.Tensor)
            and outputs[name].dim() == 4
            and outputs[name].shape[-2:].numel() > 1
        ]
        if spatial:
            return spatial
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def activations(
    run: Run,
    sample_id: str,
    layer: str | Sequence[str] = "all",
    *,
    tolerance: float = BLANK_TOLERANCE,
    device: str | torch.device | None = None,
) -> ActivationMaps | ActivationSweep:
    """One input's channel maps at a layer, or at every stage (``"all"``) or listed layers."""
    if not isinstance(sample_id, str):
        raise ExplanationError(
            f"activations take one sample id (a string), got {type(sample_id).__name__}."
        )
    rows = sample_rows(run, [sample_id])
    session = ModelSession(run, device)
    names = (
        activation_stages(session.model, session)
        if layer == "all"
        else [layer]
        if isinstance(layer, str)
        else list(layer)
    )
    for name in names:
        session.module(name)
    outputs = session.layer_outputs(session.inputs(rows), names)
    found = {}
    for name in names:
        output = outputs.get(name)
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            shape = (
                tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            )
            raise ExplanationError(
                f"Layer {name!r} outputs {shape}, not channel maps (N, C, H, W): choose a "
                "convolutional layer or block."
            )
        maps = output[0].detach().float().cpu().numpy()
        blank = np.abs(maps).reshape(len(maps), -1).max(axis=1) <= tolerance
        found[name] = ActivationMaps(sample_id, name, maps, blank)
    if isinstance(layer, str) and layer != "all":
        return found[layer]
    return ActivationSweep(found)
