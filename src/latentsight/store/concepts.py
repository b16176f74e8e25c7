"""Concept tables kept in the run directory, so the report and the dashboard show them.

Layout: ``<run>/concepts/neurons.<layer stem>.parquet`` holds one layer's neuron labels (the
rows of ``Concepts.table`` without the formula objects, which are kept as text),
``<run>/concepts/discovered.<layer stem>.parquet`` the concepts discovered in a layer
(``ConceptBank.table`` with each concept's top samples) and ``<run>/concepts/audit.parquet``
the latest spurious-feature audit (``Audit.table``). Each file's
schema metadata records how it was made (settings, subset, time). A later computation of the
same layer, or a later audit, replaces the file (written atomically).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from latentsight import __version__
from latentsight.store.files import layer_file_stem, write_parquet

CONCEPTS = "concepts"
NEURONS = "neurons."
DISCOVERED = "discovered."
AUDIT = "audit"
_METADATA_KEY = b"latentsight"
_OBJECT_COLUMNS = ("explanation",)  # Formula objects: their text is in "formula"


@dataclass(frozen=True)
class StoredTable:
    """One concept table stored in a run: its name (file stem), a title, and its file."""

    name: str
    title: str
    file: Path

    @property
    def info(self) -> dict[str, Any]:
        """How the table was made (settings, subset, layer, time), as recorded when stored."""
        return table_info(self.file)


def neurons_file(run_path: Path, layer: str) -> Path:
    """Where one layer's neuron labels are stored."""
    return Path(run_path) / CONCEPTS / f"{NEURONS}{layer_file_stem(layer)}.parquet"


def discovered_file(run_path: Path, layer: str) -> Path:
    """Where the concepts discovered in one layer are stored."""
    return Path(run_path) / CONCEPTS / f"{DISCOVERED}{layer_file_stem(layer)}.parquet"


def audit_file(run_path: Path) -> Path:
    """Where the spurious-feature audit is stored."""
    return Path(run_path) / CONCEPTS / f"{AUDIT}.parquet"


def save_table(path: Path, frame: pd.DataFrame, info: Mapping[str, Any]) -> Path:
    """Write a concept table with ``info`` in its schema metadata; return its path."""
    plain = frame.drop(columns=[c for c in _OBJECT_COLUMNS if c in frame.columns])
    table = pa.Table.from_pandas(plain, preserve_index=False)
    recorded = {
        **info,
        "latentsight_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    metadata = {**(table.schema.metadata or {}), _METADATA_KEY: json.dumps(recorded).encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(path, table.replace_schema_metadata(metadata))
    return path


def settings_info(settings: Any) -> dict[str, Any]:
    """A JSON-ready record of a settings dataclass."""
    return json.loads(json.dumps(asdict(settings), default=list))


def stored_tables(run_path: str | Path) -> list[StoredTable]:
    """The concept tables of the run: neuron labels by layer, discovered concepts by layer, then
    the audit; empty if none.

    Only readable Parquet files of this layout are listed, so a half-written or foreign file is
    never offered."""
    folder = Path(run_path) / CONCEPTS
    if not folder.is_dir():
        return []
    found = []
    for file in sorted(folder.glob(f"{NEURONS}*.parquet")):
        name = file.stem
        if _readable(file):
            layer = table_info(file).get("layer", name.removeprefix(NEURONS))
            found.append(StoredTable(name, f"Neuron concepts at {layer}", file))
    for file in sorted(folder.glob(f"{DISCOVERED}*.parquet")):
        if _readable(file):
            layer = table_info(file).get("layer", file.stem.removeprefix(DISCOVERED))
            found.append(StoredTable(file.stem, f"Discovered concepts at {layer}", file))
    audit = audit_file(folder.parent)
    if audit.is_file() and _readable(audit):
        layer = table_info(audit).get("layer", "")
        title = "Spurious-feature audit" + (f" at {layer}" if layer else "")
        found.append(StoredTable(AUDIT, title, audit))
    return found


def read_table(table: StoredTable) -> pd.DataFrame:
    """A stored concept table as a DataFrame."""
    return pq.read_table(table.file).to_pandas()


def table_info(file: Path) -> dict[str, Any]:
    """How a stored concept table was made (its schema metadata); empty when it records none."""
    try:
        metadata = pq.read_schema(file).metadata or {}
        return json.loads(metadata.get(_METADATA_KEY, b"{}"))
    except ValueError:
        return {}


def _readable(file: Path) -> bool:
    try:
        pq.read_schema(file)
    except Exception:  # a half-written or foreign file is not offered, whatever its error
        return False
    return True
