"""Reading stored sample renders by id without scanning the whole renders table each time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from latentsight.render import RENDER_COLUMNS, png, stored_pixels
from latentsight.store.manifest import RENDERS

_CACHED_GROUPS = 8


@dataclass(frozen=True)
class Render:
    """A sample as the Project's render drew it: a picture (``H x W x C`` uint8) or text."""

    kind: str  # "image" or "text"
    pixels: np.ndarray | None
    text: str | None

    @cached_property
    def image(self) -> bytes | None:
        """The picture as PNG bytes (encoded once, on first use: capture stores raw pixels),
        None for text."""
        return None if self.pixels is None else png(self.pixels)

    @property
    def media_type(self) -> str:
        """The MIME type of ``image``, or of the text."""
        return "text/plain" if self.pixels is None else "image/png"


class RenderIndex:
    """An id -> (row group, position) index over ``renders.parquet``; reads one row group per miss.

    Memory holds the ids and a few decoded row groups, however many samples the run has.
    """

    def __init__(self, run_dir: Path) -> None:
        self.file = Path(run_dir) / RENDERS
        self._lock = threading.Lock()
        self._groups: OrderedDict[int, dict[str, list]] = OrderedDict()
        self.where: dict[str, tuple[int, int]] = {}
        self.kinds: dict[str, str] = {}
        if not self.file.is_file():
            self._parquet = None
            return
        self._parquet = pq.ParquetFile(self.file)
        for group in range(self._parquet.num_row_groups):
            table = self._parquet.read_row_group(group, columns=["id", "kind"])
            ids, kinds = table.column("id").to_pylist(), table.column("kind").to_pylist()
            for position, (sample_id, kind) in enumerate(zip(ids, kinds, strict=True)):
                self.where[sample_id] = (group, position)
                self.kinds[sample_id] = kind

    @property
    def available(self) -> bool:
        """Whether the run stored renders at all."""
        return self._parquet is not None

    def get(self, sample_id: str) -> Render | None:
        """The render of a sample, or None when it has none."""
        found = self.where.get(sample_id)
        if found is None or self._parquet is None:
            return None
        group, position = found
        with self._lock:
            columns = self._groups.get(group)
            if columns is None:
                table = self._parquet.read_row_group(group, columns=list(RENDER_COLUMNS))
                columns = {name: table.column(name).to_pylist() for name in table.column_names}
                self._groups[group] = columns
                if len(self._groups) > _CACHED_GROUPS:
                    self._groups.popitem(last=False)
            else:
                self._groups.move_to_end(group)
        return Render(
            columns["kind"][position],
            stored_pixels(*(columns[name][position] for name in RENDER_COLUMNS[1:5])),
            columns["text"][position],
        )
