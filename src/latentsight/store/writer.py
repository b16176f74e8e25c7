"""Writing a run directory: shards per subset and chunk while capturing, then one table and one
array per layer view. A chunk is complete when its Parquet shard exists (written last, atomically),
so a capture killed at any point resumes at the first incomplete chunk."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from latentsight.errors import RunStoreError
from latentsight.store.files import layer_file_stem, write_json, write_parquet
from latentsight.store.manifest import (
    CAPTURE_SHARDS,
    LATENTS,
    MANIFEST,
    QUARANTINE,
    RENDERS,
    SAMPLES,
    STATUS_CAPTURING,
    STATUS_COMPLETE,
    read_manifest,
)

QUARANTINE_SCHEMA = pa.schema(
    [("id", pa.string()), ("subset", pa.string()), ("index", pa.int64()), ("error", pa.string())]
)


def latent_file(layer: str, view: str) -> str:
    """The path, relative to the run, of one layer view's array."""
    return f"{LATENTS}/{layer_file_stem(layer)}.{view}.npy"


class RunWriter:
    """Owns a run directory while it is being captured: shards, latent arrays, the manifest."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.arrays: dict[tuple[str, str], np.memmap] = {}

    @classmethod
    def open(
        cls, path: Path, manifest: dict[str, Any], *, resume: bool, overwrite: bool
    ) -> RunWriter:
        """Start a new run at ``path``, or reopen an interrupted one with the same settings."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            if not (path / MANIFEST).is_file():
                raise RunStoreError(
                    f"{path} exists and is not a latentsight run: choose an empty or new directory "
                    "for --out (latentsight never deletes files it did not write)."
                )
            existing = read_manifest(path)
            if overwrite:
                shutil.rmtree(path)
            elif existing["status"] == STATUS_COMPLETE:
                raise RunStoreError(
                    f"A complete run already exists at {path}: open it with "
                    "latentsight.open_run, or pass overwrite=True (--overwrite) to replace it."
                )
            elif not resume:
                raise RunStoreError(
                    f"An interrupted run is at {path}: pass resume=True (--resume) to finish it, "
                    "or overwrite=True (--overwrite) to start again."
                )
            else:
                _check_same_capture(existing, manifest, path)
                manifest = {**manifest, "timings": existing.get("timings", {})}
        writer = cls(path, manifest)
        writer._prepare()
        return writer

    def _prepare(self) -> None:
        (self.path / LATENTS).mkdir(parents=True, exist_ok=True)
        for subset in self.manifest["subsets"]:
            (self.path / CAPTURE_SHARDS / subset["name"]).mkdir(parents=True, exist_ok=True)
        total = self.manifest["n_rows_planned"]
        stale = False
        for entry in self.manifest["layers"]:
            for view, spec in entry["views"].items():
                file = self.path / spec["file"]
                shape = (total, spec["dim"])
                array = None
                if file.is_file():
                    try:
                        array = np.load(file, mmap_mode="r+")
                    except (ValueError, OSError):
                        array = None
                    if array is not None and (array.shape != shape or array.dtype != np.float32):
                        array = None
                if array is None:
                    stale = True
                    array = np.lib.format.open_memmap(
                        file, mode="w+", dtype=np.float32, shape=shape
                    )
                self.arrays[(entry["name"], view)] = array
        if stale:
            for shard in (self.path / CAPTURE_SHARDS).rglob("*.parquet"):
                shard.unlink()
        self.manifest["status"] = STATUS_CAPTURING
        write_json(self.path / MANIFEST, self.manifest)

    def _shard(self, subset: str, chunk: int, kind: str) -> Path:
        return self.path / CAPTURE_SHARDS / subset / f"{chunk:06d}.{kind}.parquet"

    def chunk_done(self, subset: str, chunk: int) -> bool:
        """Whether a chunk was completely written by this or an earlier, interrupted capture."""
        return self._shard(subset, chunk, "samples").is_file()

    def write_latents(self, rows: np.ndarray, latents: dict[tuple[str, str], np.ndarray]) -> None:
        """Put pooled vectors at their rows of the preallocated arrays."""
        for key, values in latents.items():
            self.arrays[key][rows] = values

    def write_chunk(
        self,
        subset: str,
        chunk: int,
        samples: pa.Table,
        failed: pa.Table,
        renders: pa.Table | None,
    ) -> None:
        """Make a chunk durable: latents flushed, then side shards, then the samples shard."""
        for array in self.arrays.values():
            array.flush()
        write_parquet(self._shard(subset, chunk, "failed"), failed)
        if renders is not None:
            write_parquet(self._shard(subset, chunk, "renders"), renders)
        write_parquet(self._shard(subset, chunk, "samples"), samples)

    def finalize(self, updates: dict[str, Any]) -> dict[str, Any]:
        """Join the shards into the run's table and arrays, drop quarantined rows, mark complete."""
        shards = self.path / CAPTURE_SHARDS
        order = {subset["name"]: i for i, subset in enumerate(self.manifest["subsets"])}
        offsets = {subset["name"]: subset["offset"] for subset in self.manifest["subsets"]}
        failed = _read_shards(shards, "failed", QUARANTINE_SCHEMA)
        write_parquet(self.path / QUARANTINE, failed)
        failed_rows = np.array(
            [
                offsets[subset] + index
                for subset, index in zip(
                    failed.column("subset").to_pylist(),
                    failed.column("index").to_pylist(),
                    strict=True,
                )
            ],
            dtype=np.int64,
        )
        _write_samples(shards, self.path / SAMPLES, order)
        render_files = sorted(shards.rglob("*.renders.parquet"))
        if render_files:
            _copy_ordered(render_files, self.path / RENDERS, order)
        n_rows = self.manifest["n_rows_planned"] - len(failed_rows)
        for entry in self.manifest["layers"]:
            for view, spec in entry["views"].items():
                array = self.arrays.pop((entry["name"], view))
                if len(failed_rows):
                    _drop_rows(self.path / spec["file"], array, failed_rows)
                del array
        self.manifest.update(updates)
        self.manifest["n_samples"] = n_rows
        self.manifest["n_quarantined"] = len(failed_rows)
        self.manifest["status"] = STATUS_COMPLETE
        write_json(self.path / MANIFEST, self.manifest)
        shutil.rmtree(shards)
        return self.manifest


def _check_same_capture(existing: dict[str, Any], new: dict[str, Any], path: Path) -> None:
    before = existing.get("capture_key_parts", {})
    differences = [
        name for name, value in new["capture_key_parts"].items() if before.get(name) != value
    ]
    if differences:
        raise RunStoreError(
            f"Cannot resume the run at {path}: its {', '.join(differences)} differ from the "
            "interrupted capture. Resume with the same model, data and settings, or pass "
            "overwrite=True (--overwrite) to start again."
        )


def _read_shards(directory: Path, kind: str, schema: pa.Schema) -> pa.Table:
    files = sorted(directory.rglob(f"*.{kind}.parquet"))
    tables = [pq.read_table(file) for file in files]
    return (
        pa.concat_tables([table.cast(schema) for table in tables])
        if tables
        else schema.empty_table()
    )


def _order_expression(order: dict[str, int]) -> str:
    cases = " ".join(
        f"WHEN '{name.replace(chr(39), chr(39) * 2)}' THEN {i}" for name, i in order.items()
    )
    return f"CASE subset {cases} END, index"


def _write_samples(shards: Path, destination: Path, order: dict[str, int]) -> None:
    files = [str(file) for file in sorted(shards.rglob("*.samples.parquet"))]
    temporary = destination.with_name(f".{destination.name}.tmp")
    with duckdb.connect() as connection:
        connection.execute(
            f"""COPY (
                SELECT (row_number() OVER (ORDER BY {_order_expression(order)}) - 1)::BIGINT AS row, *
                FROM read_parquet($files, union_by_name = true)
                ORDER BY {_order_expression(order)}
            ) TO '{temporary}' (FORMAT parquet)""",
            {"files": files},
        )
    temporary.replace(destination)


def _copy_ordered(files: list[Path], destination: Path, order: dict[str, int]) -> None:
    temporary = destination.with_name(f".{destination.name}.tmp")
    with duckdb.connect() as connection:
        connection.execute(
            f"""COPY (
                SELECT * EXCLUDE (subset, index) FROM read_parquet($files, union_by_name = true)
                ORDER BY {_order_expression(order)}
            ) TO '{temporary}' (FORMAT parquet)""",
            {"files": [str(file) for file in files]},
        )
    temporary.replace(destination)


def _drop_rows(file: Path, array: np.memmap, rows: np.ndarray, block: int = 65536) -> None:
    """Rewrite an array without the given rows, block by block so memory stays bounded."""
    keep = np.ones(len(array), dtype=bool)
    keep[rows] = False
    temporary = file.with_name(f".{file.name}.tmp")
    out = np.lib.format.open_memmap(
        temporary, mode="w+", dtype=array.dtype, shape=(int(keep.sum()), array.shape[1])
    )
    written = 0
    for start in range(0, len(array), block):
        kept = array[start : start + block][keep[start : start + block]]
        out[written : written + len(kept)] = kept
        written += len(kept)
    out.flush()
    del out
    temporary.replace(file)
