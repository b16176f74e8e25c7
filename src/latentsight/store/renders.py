"""How a run keeps its renders, and how they are read back as pictures (no PyTorch needed).

Each picture is kept as its raw ``H x W x C`` uint8 pixels; readers encode PNG only for the
pictures they show, so capture never pays for encoding a picture nobody looks at.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

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


def renders_table(ids: Sequence[str], renders: Sequence[StoredRender]) -> pa.Table:
    """The renders of some samples, one each, as rows of the run's renders."""
    shapes = [(None, None, None) if pixels is None else pixels.shape for _, pixels, _ in renders]
    return pa.table(
        {
            "id": list(ids),
            "kind": [kind for kind, _, _ in renders],
            "pixels": [None if pixels is None else pixels.tobytes() for _, pixels, _ in renders],
            **{
                name: [shape[axis] for shape in shapes]
                for axis, name in enumerate(("height", "width", "channels"))
            },
            "text": [text for _, _, text in renders],
        },
        schema=RENDERS_SCHEMA,
    )


def stacked_renders_table(ids: Sequence[str], pixels: np.ndarray) -> pa.Table:
    """The pictures of ``N x H x W x C`` uint8 pixels, one per id, as rows of the run's renders:
    the pixel column is made on the array's memory, with no copy per picture."""
    count, height, width, channels = pixels.shape
    size = height * width * channels
    offsets = np.arange(count + 1, dtype=np.int32) * size
    column = pa.Array.from_buffers(
        pa.binary(),
        count,
        [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(pixels))],
    )
    return pa.table(
        {
            "id": list(ids),
            "kind": pa.array(["image"] * count, pa.string()),
            "pixels": column,
            **{
                name: pa.array(np.full(count, value, dtype=np.int32))
                for name, value in (("height", height), ("width", width), ("channels", channels))
            },
            "text": pa.nulls(count, pa.string()),
        },
        schema=RENDERS_SCHEMA,
    )


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
