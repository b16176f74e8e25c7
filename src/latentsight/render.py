"""How a sample is shown: the default turns image tensors into pictures; thumbnails for storage.

Capture keeps each picture as its raw uint8 pixels, at most ``THUMBNAIL_SIZE`` on a side
(:mod:`latentsight.store.renders` says how they are stored and read back).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from latentsight.errors import ProjectError
from latentsight.store.renders import StoredRender, picture

THUMBNAIL_SIZE = 128
_STORED_MODES = ("L", "RGB", "RGBA")


def _channels_first(item_shape: tuple[int, ...]) -> bool:
    return len(item_shape) == 3 and item_shape[0] in (1, 3, 4)


def looks_like_image(value: Any) -> bool:
    """Whether an input is an image the default render can draw: a PIL image, or an array or
    tensor HxW, CxHxW or HxWxC with C in 1/3/4."""
    if isinstance(value, Image.Image):
        return True
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        return False
    shape = tuple(value.shape)
    if len(shape) == 2:
        return min(shape) >= 4
    if len(shape) != 3:
        return False
    channels = shape[0] if _channels_first(shape) else shape[2]
    spatial = shape[1:] if _channels_first(shape) else shape[:2]
    return channels in (1, 3, 4) and min(spatial) >= 4


def render_batch(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Draw a batch of image tensors (``N`` first, then HxW, CxHxW or HxWxC) as ``N x H x W x C``
    uint8 (C = 1, 3 or 4): uint8 as it is, [0, 1] floats scaled to 0-255, any other range
    min-max scaled per image (NaN drawn as 0)."""
    if isinstance(images, torch.Tensor):
        values = images.detach().cpu()
    else:
        values = torch.from_numpy(np.ascontiguousarray(images))
    if _channels_first(tuple(values.shape[1:])):
        values = values.permute(0, 2, 3, 1)
    elif values.dim() == 3:
        values = values.unsqueeze(-1)
    if values.dtype == torch.uint8:
        return np.ascontiguousarray(values.numpy())
    return _to_bytes(values.to(torch.float32, memory_format=torch.contiguous_format, copy=True))


def _to_bytes(pixels: torch.Tensor) -> np.ndarray:
    """Float images (a contiguous copy, changed in place) to uint8, min-max scaled per image
    when outside [0, 1]."""
    flat = pixels.view(len(pixels), -1)
    low, high = flat.amin(dim=1), flat.amax(dim=1)
    has_nan = low.isnan()
    if has_nan.any():  # NaN wins min and max: take them over the other values instead
        nan = flat[has_nan].isnan()
        low[has_nan] = torch.where(nan, torch.inf, flat[has_nan]).amin(dim=1)
        high[has_nan] = torch.where(nan, -torch.inf, flat[has_nan]).amax(dim=1)
    outside = (low < 0) | (high > 1)
    if outside.any():
        span = (high - low)[outside, None]
        scaled = (flat[outside] - low[outside, None]) / span
        flat[outside] = torch.where(span > 0, scaled, 0.0)
    return (
        flat.nan_to_num_()
        .mul_(255.0)
        .add_(0.5)
        .clamp_(0, 255)
        .to(torch.uint8)
        .view(pixels.shape)
        .numpy()
    )


def default_render(value: Any) -> Image.Image:
    """Draw one image tensor as :func:`render_batch` draws it; a PIL image is its own picture."""
    if isinstance(value, Image.Image):
        return value
    batch = value[None] if isinstance(value, torch.Tensor) else np.asarray(value)[None]
    return picture(render_batch(batch)[0])


def thumbnail(pixels: np.ndarray) -> np.ndarray:
    """The pixels as stored: unchanged up to ``THUMBNAIL_SIZE`` on a side, shrunk beyond."""
    if max(pixels.shape[:2]) <= THUMBNAIL_SIZE:
        return pixels
    image = picture(pixels)
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    return as_pixels(image)


def as_pixels(image: Image.Image) -> np.ndarray:
    """A PIL image as ``H x W x C`` uint8 (C = 1, 3 or 4), other modes converted to RGB(A)."""
    if image.mode not in _STORED_MODES:
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    pixels = np.asarray(image)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def stored_render(rendered: Any, sample_id: str) -> StoredRender:
    """What capture keeps of a render: ("image", thumbnail pixels, None) or ("text", None, text)."""
    if isinstance(rendered, str):
        return "text", None, rendered
    if isinstance(rendered, np.ndarray):
        if not looks_like_image(rendered):
            raise ProjectError(
                f"Project.render returned an array of shape {rendered.shape} for {sample_id!r}, "
                "which is not a picture: return H x W, H x W x C or C x H x W (C = 1, 3 or 4, "
                "at least 4 pixels a side), a PIL image, or a string."
            )
        rendered = default_render(rendered)
    if not isinstance(rendered, Image.Image):
        raise ProjectError(
            f"Project.render returned a {type(rendered).__name__} for {sample_id!r}: return a "
            "PIL image, an H x W x 3 uint8 array, or a string."
        )
    return "image", thumbnail(as_pixels(rendered)), None
