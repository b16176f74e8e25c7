"""What an explanation returns: per-sample maps at input resolution, the raw maps, overlays."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from latentsight.overlay import Sign, heatmap, overlay, panel
from latentsight.store.files import check_writable, layer_file_stem


def file_stem(sample_id: str) -> str:
    """A file-system-safe stem for a sample id (``val/12`` -> ``val_12``)."""
    return layer_file_stem(sample_id.replace("/", "_"))


def target_file_stem(target: str) -> str:
    """A file-system-safe stem for what was explained (``class-3``, ``<lambda>`` -> ``_lambda_``),
    so that maps of one sample for different targets go to different files."""
    return layer_file_stem(target) or "target"


@dataclass
class Explanation:
    """Attribution maps of some samples by one method (and layer) for one target.

    Attributes:
        method: the method's name, e.g. ``"gradcam"``.
        layer: the layer of a layer method (Grad-CAM, LayerCAM), else None.
        target: what was explained: ``"predicted"``, ``"label"``, ``"class-3"`` or a function name.
        ids: the sample ids, in the order of the arrays.
        maps: ``N x H x W`` float32 at input resolution (see ``latentsight.explain.attribution``).
        raw: the method's own output: ``N x h x w`` at the layer's resolution for layer methods,
            ``N x C x H x W`` per input channel for input methods.
        classes: the class explained for each sample (-1 where a function scored the outputs).
        images: ``N x H x W x 3`` uint8 pictures of the inputs, for overlays.
        sign: how overlays read the maps (see :func:`latentsight.overlay.normalize_map`).
    """

    method: str
    layer: str | None
    target: str
    ids: list[str]
    maps: np.ndarray
    raw: np.ndarray
    classes: np.ndarray
    images: np.ndarray | None = None
    sign: Sign = "absolute"

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        where = f", layer={self.layer!r}" if self.layer else ""
        return (
            f"Explanation(method={self.method!r}{where}, target={self.target!r}, "
            f"samples={len(self)}, maps={self.maps.shape})"
        )

    def map(self, sample_id: str) -> np.ndarray:
        """The ``H x W`` map of one sample."""
        return self.maps[self.ids.index(sample_id)]

    def overlay(
        self, sample_id: str, *, alpha: float = 0.5, cmap: str | None = None
    ) -> Image.Image:
        """The map of one sample drawn over its picture (or alone when no picture is known)."""
        position = self.ids.index(sample_id)
        if self.images is None:
            return heatmap(self.maps[position], sign=self.sign, cmap=cmap)
        return overlay(
            self.images[position], self.maps[position], sign=self.sign, alpha=alpha, cmap=cmap
        )

    @property
    def name(self) -> str:
        """``method`` or ``method@layer``, for file names."""
        return self.method if self.layer is None else f"{self.method}@{self.layer}"

    def file_name(self, sample_id: str) -> str:
        """``<id>.<method>[@layer].<target>.png``, the file :meth:`save` writes for a sample."""
        return (
            f"{file_stem(sample_id)}.{layer_file_stem(self.name)}."
            f"{target_file_stem(self.target)}.png"
        )

    def save(self, directory: str | Path) -> list[Path]:
        """Write one PNG per sample, ``<id>.<method>[@layer].<target>.png`` (input | overlay),
        e.g. ``val_3.saliency.class-1.png``; return the paths."""
        directory = check_writable(directory, folder=True)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for sample_id in self.ids:
            pictures = [self.overlay(sample_id)]
            if self.images is not None:
                picture = Image.fromarray(self.images[self.ids.index(sample_id)])
                pictures.insert(0, picture.resize(pictures[0].size, Image.NEAREST))
            path = directory / self.file_name(sample_id)
            panel(pictures).save(path)
            written.append(path)
        return written


class LayerSweep(Mapping[str, Explanation]):
    """One layer method at several layers, shallow to deep: how attention moves with depth."""

    def __init__(self, explanations: dict[str, Explanation]) -> None:
        self._explanations = explanations

    def __getitem__(self, layer: str) -> Explanation:
        return self._explanations[layer]

    def __iter__(self) -> Iterator[str]:
        return iter(self._explanations)

    def __len__(self) -> int:
        return len(self._explanations)

    def __repr__(self) -> str:
        return f"LayerSweep(layers={list(self._explanations)})"

    @property
    def ids(self) -> list[str]:
        """The sample ids."""
        return next(iter(self._explanations.values())).ids

    @property
    def target(self) -> str:
        """What was explained (the same at every layer): ``"predicted"``, ``"class-3"``, ..."""
        return next(iter(self._explanations.values())).target

    def save(self, directory: str | Path) -> list[Path]:
        """One PNG per sample, ``<id>.<method>@all.<target>.png``: the input, then its overlay at
        each layer, shallow to deep."""
        directory = check_writable(directory, folder=True)
        directory.mkdir(parents=True, exist_ok=True)
        first = next(iter(self._explanations.values()))
        written = []
        for position, sample_id in enumerate(self.ids):
            pictures = [explanation.overlay(sample_id) for explanation in self.values()]
            if first.images is not None:
                picture = Image.fromarray(first.images[position])
                pictures.insert(0, picture.resize(pictures[0].size, Image.NEAREST))
            path = directory / (
                f"{file_stem(sample_id)}.{first.method}@all.{target_file_stem(first.target)}.png"
            )
            panel(pictures).save(path)
            written.append(path)
        return written
