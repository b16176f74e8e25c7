"""Optional results a run may hold beyond its analysis: explanation maps and concept tables.

This is the one place the report and the dashboard learn about them, so each view appears only
when its data exists. Both are read through the packages that write them:

- explanations: the cache of ``run.explain`` (``latentsight.store.explanations``), one entry per
  method, layer, target and settings under ``<run>/explanations/``; a sample's maps are drawn over
  its stored render with ``latentsight.overlay`` (one normalisation convention).
- concepts: the tables ``run.concepts(...)`` and its ``.audit()`` store under ``<run>/concepts/``
  (``latentsight.store.concepts``).

Names found in the run are the only ones ever opened: a request's method, layer or table is
looked up in these listings, never joined into a path, so no request can reach another file.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from latentsight.classes import explained_target
from latentsight.overlay import heatmap, overlay
from latentsight.store.concepts import StoredTable, read_table, stored_tables
from latentsight.store.explanations import StoredMap, has_maps, sample_maps


@dataclass(frozen=True)
class Heatmap:
    """One cached explanation map of a sample, ready to draw."""

    method: str
    layer: str | None
    target: str
    stored: StoredMap

    def label(self, class_names: Mapping[int, str]) -> str:
        """``method @ layer (target)``, for titles and menus, a class target by its name."""
        where = f" @ {self.layer}" if self.layer else ""
        return f"{self.method}{where} ({explained_target(self.target, class_names)})"

    def png(self, picture: bytes | None) -> bytes:
        """The map drawn over the sample's picture (or alone without one), as PNG bytes."""
        values, sign = self.stored.values, self.stored.sign
        if picture is None:
            drawn = heatmap(values, sign=sign)
        else:
            with Image.open(io.BytesIO(picture)) as opened:
                image = np.asarray(opened.convert("RGB"))
            drawn = overlay(image, values, sign=sign)
        buffer = io.BytesIO()
        drawn.save(buffer, format="PNG")
        return buffer.getvalue()


def has_explanations(run_dir: Path) -> bool:
    """Whether the run caches any explanation map."""
    return has_maps(run_dir)


def heatmaps(run_dir: Path, sample_id: str) -> list[Heatmap]:
    """The cached maps of one sample, one per method, layer and target (the newest entry's)."""
    found: dict[tuple[str, str | None, str], Heatmap] = {}
    for stored in sample_maps(run_dir, sample_id):
        key = (stored.method, stored.layer, stored.target)
        found.setdefault(key, Heatmap(stored.method, stored.layer, stored.target, stored))
    return list(found.values())


def find_heatmap(
    run_dir: Path, sample_id: str, method: str, layer: str | None, target: str | None
) -> Heatmap | None:
    """The sample's newest cached map by this method at this layer (or any layer) for
    ``target`` (or any), or None."""
    for candidate in heatmaps(run_dir, sample_id):
        if (
            candidate.method == method
            and (layer is None or candidate.layer == layer)
            and (target is None or candidate.target == target)
        ):
            return candidate
    return None


def concept_tables(run_dir: Path) -> dict[str, StoredTable]:
    """The concept tables of the run by name, empty when concepts were not computed."""
    return {table.name: table for table in stored_tables(run_dir)}


def concept_frame(table: StoredTable) -> pd.DataFrame:
    """A stored concept table's rows."""
    return read_table(table)
