"""How a run keeps its renders, and how they are read back as pictures (no PyTorch needed).

Each picture is kept as its raw ``H x W x C`` uint8 pixels; readers encode PNG only for the
pictures they show, so capture never pays for encoding a picture nobody looks at.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
from PIL import Image

StoredRender = tuple[str, np.ndarray | None, str | None]  # kind, pixels, text
RENDERS_SCHEMA = pa.schema(  # the Parquet parts of a run's renders/
    [
        ("id", pa.string()),
        ("kind", pa.string()),
        ("pixels", pa.binary()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("channels", pa.int32()),
        ("text", pa.string()),
    ]
)
RENDER_COLUMNS = tuple(RENDERS_SCHEMA.names[1:])  # all but the id


def picture(pixels: np.ndarray) -> Image.Image:
    """Stored pixels as a PIL image."""
    return Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)


def png(pixels: np.ndarray) -> bytes:
    """Stored pixels as PNG bytes, for a browser or a report."""
    buffer = io.BytesIO()
    picture(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def stored_pixels(
    data: bytes | None, height: int | None, width: int | None, channels: int | None
) -> np.ndarray | None:
    """The pixels of one row of a run's renders (None for a text render)."""
    if data is None:
        return None
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, channels)
