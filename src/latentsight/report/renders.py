"""Reading stored sample renders by id without scanning the whole renders table each time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from latentsight.store.manifest import render_parts
from latentsight.store.renders import RENDER_COLUMNS, png, stored_pixels

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
    """An id -> (part, row group, position) index over a run's renders; reads one row group per
    miss.

    Memory holds the ids and a few decoded row groups, however many samples the run has; a part
    is opened only to read from it, so no file stays open however many parts there are.
    """

    def __init__(self, run_dir: Path) -> None:
        self._parts = render_parts(Path(run_dir))
        self._lock = threading.Lock()
        self._groups: OrderedDict[tuple[int, int], dict[str, list]] = OrderedDict()
        self.where: dict[str, tuple[int, int, int]] = {}
        self.kinds: dict[str, str] = {}
        for number, file in enumerate(self._parts):
            part = pq.ParquetFile(file)
            for group in range(part.num_row_groups):
                table = part.read_row_group(group, columns=["id", "kind"])
                ids, kinds = table.column("id").to_pylist(), table.column("kind").to_pylist()
                for position, (sample_id, kind) in enumerate(zip(ids, kinds, strict=True)):
                    self.where[sample_id] = (number, group, position)
                    self.kinds[sample_id] = kind

    @property
    def available(self) -> bool:
        """Whether the run stored renders of any sample."""
        return bool(self.where)

    def get(self, sample_id: str) -> Render | None:
        """The render of a sample, or None when it has none."""
        found = self.where.get(sample_id)
        if found is None:
            return None
        number, group, position = found
        with self._lock:
            columns = self._groups.get((number, group))
            if columns is None:
                part = pq.ParquetFile(self._parts[number])
                table = part.read_row_group(group, columns=list(RENDER_COLUMNS))
                columns = {name: table.column(name).to_pylist() for name in table.column_names}
                self._groups[(number, group)] = columns
                if len(self._groups) > _CACHED_GROUPS:
                    self._groups.popitem(last=False)
            else:
                self._groups.move_to_end((number, group))
        return Render(
            columns["kind"][position],
            stored_pixels(*(columns[name][position] for name in RENDER_COLUMNS[1:5])),
            columns["text"][position],
        )
