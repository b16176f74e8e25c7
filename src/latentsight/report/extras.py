"""Optional results a run may hold beyond its analysis: explanation heatmaps and concept tables.

This is the one place the report and the dashboard learn about them, so each view appears only
when its files exist. The layout read here:

- ``<run>/explanations/<method>/<layer>/<quoted id>.png``: an attribution overlay of one sample,
  where ``<quoted id>`` is ``urllib.parse.quote(sample_id, safe="")`` (``train/7`` ->
  ``train%2F7``) and ``<layer>`` is the layer's file stem (``latentsight.store.files``).
- ``<run>/concepts/*.parquet``: one table per file (the neuron-concept table, the spurious-feature
  audit...), shown as it is, its name taken from the file name.

Names found on disk are the only ones ever opened: a request's method, layer or table is looked up
in these listings, never joined into a path, so no request can reach a file outside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pyarrow.parquet as pq

EXPLANATIONS = "explanations"
CONCEPTS = "concepts"


@dataclass(frozen=True)
class Heatmap:
    """One stored explanation overlay of a sample."""

    method: str
    layer: str
    file: Path


def explanation_file_name(sample_id: str) -> str:
    """The file name of a sample's overlay inside ``explanations/<method>/<layer>/``."""
    return quote(sample_id, safe="") + ".png"


def _subdirectories(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def has_explanations(run_dir: Path) -> bool:
    """Whether the run holds any stored explanation overlay."""
    return any(
        any(layer.glob("*.png"))
        for method in _subdirectories(run_dir / EXPLANATIONS)
        for layer in _subdirectories(method)
    )


def heatmaps(run_dir: Path, sample_id: str) -> list[Heatmap]:
    """The stored overlays of one sample, one per method and layer that has it."""
    name = explanation_file_name(sample_id)
    found = []
    for method in _subdirectories(run_dir / EXPLANATIONS):
        for layer in _subdirectories(method):
            listed = {file.name: file for file in layer.glob("*.png")}
            if name in listed:
                found.append(Heatmap(method.name, layer.name, listed[name]))
    return found


def concept_tables(run_dir: Path) -> dict[str, Path]:
    """The concept tables of the run by name (file stem), empty when concepts were not computed."""
    folder = run_dir / CONCEPTS
    if not folder.is_dir():
        return {}
    return {
        file.stem: file
        for file in sorted(folder.glob("*.parquet"))
        if not file.name.startswith(".") and _readable(file)
    }


def _readable(file: Path) -> bool:
    try:
        pq.read_schema(file)
    except Exception:  # a half-written or foreign file is not offered, whatever its error
        return False
    return True
