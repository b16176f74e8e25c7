"""Drawing explanation maps: one normalisation convention, colormaps, overlays, PNG grids.

The convention (Captum's ``visualize_image_attr``): take the map's values by ``sign`` (absolute
value, positive part, or all), sort their magnitudes, and divide by the magnitude at which the
cumulative sum reaches ``100 - outlier_perc`` percent of the total (2 % by default); clip to
[-1, 1]. The few largest values then saturate instead of washing out every other pixel, and maps
of one sample drawn with different methods are comparable.
"""

from __future__ import annotations

from typing import Literal

import matplotlib
import numpy as np
from PIL import Image

Sign = Literal["absolute", "positive", "all"]
OUTLIER_PERC = 2.0
SEQUENTIAL_CMAP = "jet"
DIVERGING_CMAP = "bwr"
MIN_PIXELS = 128  # small images are enlarged to at least this side so a PNG can be read


def normalize_map(
    values: np.ndarray, sign: Sign = "absolute", outlier_perc: float = OUTLIER_PERC
) -> np.ndarray:
    """Scale a map to [0, 1] (or [-1, 1] for ``sign="all"``) by the percentile convention above."""
    values = np.asarray(values, dtype=np.float64)
    if sign == "absolute":
        values = np.abs(values)
    elif sign == "positive":
        values = np.maximum(values, 0.0)
    elif sign != "all":
        raise ValueError(f"sign must be 'absolute', 'positive' or 'all', got {sign!r}.")
    magnitudes = np.sort(np.abs(values).ravel())
    total = magnitudes.sum()
    if total <= 0:
        return np.zeros_like(values, dtype=np.float32)
    cumulative = np.cumsum(magnitudes)
    threshold = magnitudes[np.searchsorted(cumulative, total * (100.0 - outlier_perc) / 100.0)]
    threshold = threshold if threshold > 0 else magnitudes[-1]
    return np.clip(values / threshold, -1.0, 1.0).astype(np.float32)


def colorize(
    normalized: np.ndarray, sign: Sign = "absolute", cmap: str | None = None
) -> np.ndarray:
    """RGB uint8 picture of a normalised map (diverging colours for signed maps)."""
    name = cmap or (DIVERGING_CMAP if sign == "all" else SEQUENTIAL_CMAP)
    scaled = (normalized + 1.0) / 2.0 if sign == "all" else normalized
    rgba = matplotlib.colormaps[name](np.clip(scaled, 0.0, 1.0))
    return (rgba[..., :3] * 255.0 + 0.5).astype(np.uint8)


def overlay(
    image: np.ndarray,
    values: np.ndarray,
    *,
    sign: Sign = "absolute",
    alpha: float = 0.5,
    cmap: str | None = None,
) -> Image.Image:
    """The map drawn over the image: colours weighted by the normalised magnitude and ``alpha``."""
    normalized = normalize_map(values, sign)
    picture = _fit(image, normalized.shape).astype(np.float32)
    colours = colorize(normalized, sign, cmap).astype(np.float32)
    weight = alpha * np.abs(normalized)[..., None] ** 0.5
    blended = (1.0 - weight) * picture + weight * colours
    return enlarge(Image.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8)))


def heatmap(values: np.ndarray, *, sign: Sign = "absolute", cmap: str | None = None) -> Image.Image:
    """The map alone, in colour."""
    return enlarge(Image.fromarray(colorize(normalize_map(values, sign), sign, cmap)))


def enlarge(picture: Image.Image, side: int = MIN_PIXELS) -> Image.Image:
    """Enlarge a small picture by a whole factor (nearest pixels) so it can be seen."""
    factor = max(1, -(-side // max(1, min(picture.size))))
    if factor == 1:
        return picture
    return picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST)


def panel(pictures: list[Image.Image], *, columns: int | None = None, gap: int = 2) -> Image.Image:
    """Pictures of one size side by side in rows of ``columns`` (all in one row by default)."""
    columns = columns or len(pictures)
    width, height = pictures[0].size
    rows = -(-len(pictures) // columns)
    sheet = Image.new(
        "RGB", (columns * width + (columns - 1) * gap, rows * height + (rows - 1) * gap), "white"
    )
    for position, picture in enumerate(pictures):
        row, column = divmod(position, columns)
        sheet.paste(
            picture.convert("RGB").resize((width, height)),
            (column * (width + gap), row * (height + gap)),
        )
    return sheet


def _fit(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The image as ``H x W x 3`` uint8 at the map's size."""
    picture = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    if picture.size != (shape[1], shape[0]):
        picture = picture.resize((shape[1], shape[0]), Image.BILINEAR)
    return np.asarray(picture)
