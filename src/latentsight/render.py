"""How a sample is shown: the default turns image tensors into pictures; PNG bytes for storage."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from PIL import Image

from latentsight.errors import ProjectError

THUMBNAIL_SIZE = 128


def looks_like_image(value: Any) -> bool:
    """Whether an input is an image the default render can draw: HxW, CxHxW or HxWxC, C in 1/3/4."""
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        return False
    shape = tuple(value.shape)
    if len(shape) == 2:
        return min(shape) >= 4
    if len(shape) != 3:
        return False
    channels_first = shape[0] in (1, 3, 4)
    channels = shape[0] if channels_first else shape[2]
    spatial = shape[1:] if channels_first else shape[:2]
    return channels in (1, 3, 4) and min(spatial) >= 4


def default_render(value: Any) -> Image.Image:
    """Draw an image tensor: [0, 1] floats or uint8 as they are, other ranges min-max scaled."""
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if array.ndim == 3 and array.shape[0] in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype != np.uint8:
        array = array.astype(np.float32)
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        if low < 0.0 or high > 1.0:
            array = (array - low) / (high - low) if high > low else np.zeros_like(array)
        array = np.clip(np.nan_to_num(array) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(array)


def encode_render(rendered: Any, sample_id: str) -> tuple[str, bytes | None, str | None]:
    """Store a render: ("image", PNG bytes, None) or ("text", None, text)."""
    if isinstance(rendered, str):
        return "text", None, rendered
    if isinstance(rendered, np.ndarray):
        rendered = default_render(rendered)
    if not isinstance(rendered, Image.Image):
        raise ProjectError(
            f"Project.render returned a {type(rendered).__name__} for {sample_id!r}: return a "
            "PIL image, an H x W x 3 uint8 array, or a string."
        )
    image = rendered.copy()
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "image", buffer.getvalue(), None
