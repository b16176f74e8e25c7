"""Explanations kept in the run directory, so the report and the dashboard reuse them.

Layout: ``<run>/explanations/<method>[@layer].<target>.<key>/`` holds ``config.json`` (method,
layer, target, the settings the method reads, model fingerprint, version, time) and Parquet parts
``part-*.parquet`` with one row per sample: ``id``, ``class``, ``map`` and ``raw`` (float32 bytes of
the shapes recorded in the config). A part is written atomically; a later part wins for an id.
:func:`sample_maps` reads every cached map of one sample, for the report and the dashboard.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from latentsight import __version__
from latentsight.attribution_methods import map_sign
from latentsight.store.files import layer_file_stem, write_json, write_parquet

EXPLANATIONS = "explanations"
CONFIG = "config.json"


@dataclass(frozen=True)
class CacheKey:
    """What identifies a set of cached maps: method, layer, target and the method's settings."""

    method: str
    layer: str | None
    target: str
    settings: tuple[tuple[str, Any], ...]
    model_fingerprint: str

    @property
    def directory(self) -> str:
        """The entry's folder name: readable, with a hash of everything for uniqueness."""
        payload = json.dumps(
            [self.method, self.layer, self.target, self.settings, self.model_fingerprint]
        )
        digest = hashlib.sha256(payload.encode()).hexdigest()[:12]
        name = self.method if self.layer is None else f"{self.method}@{self.layer}"
        return f"{layer_file_stem(name)}.{layer_file_stem(self.target)}.{digest}"


@dataclass
class Cached:
    """Cached rows for some ids: maps, raw maps and classes, aligned with ``ids``."""

    ids: list[str]
    maps: np.ndarray
    raw: np.ndarray
    classes: np.ndarray


class ExplanationCache:
    """Reads and appends cached explanations of one run."""

    def __init__(self, run_path: Path) -> None:
        self.root = Path(run_path) / EXPLANATIONS

    def read(self, key: CacheKey, ids: list[str]) -> Cached | None:
        """The cached rows among ``ids`` (in the order asked), or None when there are none."""
        folder = self.root / key.directory
        parts = sorted(folder.glob("part-*.parquet"))
        if not parts:
            return None
        config = json.loads((folder / CONFIG).read_text())
        wanted = pa.array(ids, type=pa.string())
        found: dict[str, dict[str, Any]] = {}
        for part in parts:
            table = pq.read_table(part)
            table = table.filter(pc.is_in(table["id"], value_set=wanted))
            for row in table.to_pylist():
                found[row["id"]] = row
        present = [sample_id for sample_id in ids if sample_id in found]
        if not present:
            return None
        map_shape, raw_shape = tuple(config["map_shape"]), tuple(config["raw_shape"])
        return Cached(
            ids=present,
            maps=np.stack(
                [np.frombuffer(found[i]["map"], np.float32).reshape(map_shape) for i in present]
            ),
            raw=np.stack(
                [np.frombuffer(found[i]["raw"], np.float32).reshape(raw_shape) for i in present]
            ),
            classes=np.array([found[i]["class"] for i in present], dtype=np.int64),
        )

    def write(self, key: CacheKey, cached: Cached) -> None:
        """Append rows to the entry, creating it (with its config) on first use."""
        folder = self.root / key.directory
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / CONFIG).is_file():
            write_json(
                folder / CONFIG,
                {
                    "method": key.method,
                    "layer": key.layer,
                    "target": key.target,
                    "settings": dict(key.settings),
                    "model_fingerprint": key.model_fingerprint,
                    "map_shape": list(cached.maps.shape[1:]),
                    "raw_shape": list(cached.raw.shape[1:]),
                    "latentsight_version": __version__,
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                },
            )
        table = pa.table(
            {
                "id": pa.array(cached.ids, type=pa.string()),
                "class": pa.array(cached.classes, type=pa.int64()),
                "map": pa.array(
                    [np.ascontiguousarray(m, np.float32).tobytes() for m in cached.maps],
                    type=pa.binary(),
                ),
                "raw": pa.array(
                    [np.ascontiguousarray(r, np.float32).tobytes() for r in cached.raw],
                    type=pa.binary(),
                ),
            }
        )
        write_parquet(folder / f"part-{time.time_ns()}-{os.getpid()}.parquet", table)

    def entries(self) -> pd.DataFrame:
        """One row per cached entry: method, layer, target, settings, samples, folder."""
        rows = []
        for config_path in sorted(self.root.glob(f"*/{CONFIG}")):
            config = json.loads(config_path.read_text())
            samples = sum(
                pq.ParquetFile(part).metadata.num_rows
                for part in config_path.parent.glob("part-*.parquet")
            )
            rows.append(
                {
                    "method": config["method"],
                    "layer": config["layer"],
                    "target": config["target"],
                    "settings": json.dumps(config["settings"], sort_keys=True),
                    "samples": samples,
                    "folder": str(config_path.parent),
                }
            )
        columns = ["method", "layer", "target", "settings", "samples", "folder"]
        return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class StoredMap:
    """One sample's cached map in one entry: what made it, and the map at input resolution."""

    method: str
    layer: str | None
    target: str
    entry: str  # the entry's folder name, unique per method, layer, target and settings
    created_at: str
    explained_class: int
    values: np.ndarray  # H x W float32

    @property
    def sign(self) -> str:
        """How overlays read the map, as ``Explanation.sign`` does for the same method (read
        from the torch-free method table, so the report never imports Captum)."""
        return map_sign(self.method)


def sample_maps(run_path: str | Path, sample_id: str) -> list[StoredMap]:
    """Every cached map of one sample, one per entry that holds it, newest entry first."""
    found = []
    for config_path in (Path(run_path) / EXPLANATIONS).glob(f"*/{CONFIG}"):
        row = _latest_row(config_path.parent, sample_id)
        if row is None:
            continue
        config = json.loads(config_path.read_text())
        found.append(
            StoredMap(
                method=config["method"],
                layer=config["layer"],
                target=config["target"],
                entry=config_path.parent.name,
                created_at=config.get("created_at", ""),
                explained_class=int(row["class"]),
                values=np.frombuffer(row["map"], np.float32).reshape(config["map_shape"]),
            )
        )
    return sorted(found, key=lambda stored: (stored.created_at, stored.entry), reverse=True)


def has_maps(run_path: str | Path) -> bool:
    """Whether the run caches any explanation map."""
    return any((Path(run_path) / EXPLANATIONS).glob("*/part-*.parquet"))


def _latest_row(folder: Path, sample_id: str) -> dict[str, Any] | None:
    """The row of ``sample_id`` in the entry's newest part that has it, or None."""
    for part in sorted(folder.glob("part-*.parquet"), reverse=True):
        table = pq.read_table(
            part, columns=["id", "class", "map"], filters=[("id", "=", sample_id)]
        )
        if table.num_rows:
            return table.slice(table.num_rows - 1).to_pylist()[0]
    return None
