"""Writing a run directory: shards per subset and chunk while capturing, then one table and one
array per layer view. A chunk is complete when its Parquet shard exists (written last, atomically),
so a capture killed at any point resumes at the first incomplete chunk."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, a second capture is not refused
    fcntl = None  # type: ignore[assignment]

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from latentsight.errors import RunStoreError
from latentsight.store.concepts import CONCEPTS
from latentsight.store.explanations import EXPLANATIONS
from latentsight.store.files import (
    check_writable,
    layer_file_stem,
    parquet_options,
    rows_digest,
    write_json,
    write_parquet,
)
from latentsight.store.manifest import (
    ANALYSIS,
    CAPTURE_SHARDS,
    EXTRAS,
    LATENTS,
    MANIFEST,
    QUARANTINE,
    RENDERS,
    ROWS_DIGEST,
    SAMPLES,
    STATUS_CAPTURING,
    STATUS_COMPLETE,
    read_manifest,
)

if TYPE_CHECKING:
    from latentsight.capture.runner import CaptureSettings

RENDER_GROUP_ROWS = 1024  # a reader decodes one row group to show one picture

QUARANTINE_SCHEMA = pa.schema(
    [("id", pa.string()), ("subset", pa.string()), ("index", pa.int64()), ("error", pa.string())]
)


LatentBatch = dict[tuple[str, str], np.ndarray]


def latent_file(layer: str, view: str) -> str:
    """The path, relative to the run, of one layer view's array."""
    return f"{LATENTS}/{layer_file_stem(layer)}.{view}.npy"


class LatentArray:
    """One preallocated float32 ``.npy`` array of the run, written in place through its file.

    The array is never memory-mapped while capturing: the pages of a mapping that get written
    count toward the process's resident memory, which would then grow with the number of samples.
    """

    def __init__(self, file: Path, handle: BinaryIO, offset: int, shape: tuple[int, int]) -> None:
        self.file = file
        self.handle = handle
        self.offset = offset
        self.shape = shape
        self.row_bytes = shape[1] * np.dtype(np.float32).itemsize

    @classmethod
    def create(cls, file: Path, shape: tuple[int, int]) -> LatentArray:
        """A new zero-filled array (sparse on disk until written)."""
        handle = open(file, "w+b", buffering=0)  # noqa: SIM115 - kept open until close()
        header = {"descr": "<f4", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(handle, header)
        offset = handle.tell()
        handle.truncate(offset + shape[0] * shape[1] * np.dtype(np.float32).itemsize)
        return cls(file, handle, offset, shape)

    @classmethod
    def reopen(cls, file: Path, shape: tuple[int, int]) -> LatentArray | None:
        """The existing array at ``file`` if it is a whole float32 array of ``shape``, else None."""
        if not file.is_file():
            return None
        handle = open(file, "r+b", buffering=0)  # noqa: SIM115 - kept open until close()
        try:
            version = np.lib.format.read_magic(handle)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }[version]
            found, fortran_order, dtype = read_header(handle)
        except (KeyError, ValueError, OSError):
            handle.close()
            return None
        offset = handle.tell()
        size = offset + shape[0] * shape[1] * np.dtype(np.float32).itemsize
        if found != shape or fortran_order or dtype != np.float32 or file.stat().st_size < size:
            handle.close()
            return None
        return cls(file, handle, offset, shape)

    def write(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Put ``values[i]`` at row ``rows[i]``, one file write per run of consecutive rows."""
        for begin, end in _consecutive_runs(rows):
            self.write_block(int(rows[begin]), values[begin:end])

    def write_block(self, first_row: int, values: np.ndarray) -> None:
        """Put the contiguous ``values`` at rows ``first_row`` onwards."""
        self.handle.seek(self.offset + first_row * self.row_bytes)
        view = memoryview(np.ascontiguousarray(values, dtype=np.float32)).cast("B")
        while view:
            view = view[self.handle.write(view) :]

    def read_block(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` as a new array."""
        self.handle.seek(self.offset + start * self.row_bytes)
        data = self.handle.read((stop - start) * self.row_bytes)
        return np.frombuffer(data, dtype=np.float32).reshape(stop - start, self.shape[1])

    def flush(self) -> None:
        """Make what was written durable."""
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        """Release the file."""
        self.handle.close()


def _consecutive_runs(rows: np.ndarray) -> Iterator[tuple[int, int]]:
    """``(begin, end)`` positions of the runs of consecutive row numbers in ``rows``."""
    breaks = (np.flatnonzero(np.diff(rows) != 1) + 1).tolist()
    return itertools.pairwise([0, *breaks, len(rows)])


class RunWriter:
    """Owns a run directory while it is being captured: shards, latent arrays, the manifest.

    Latents and chunks are written by one background thread, in the order they were handed over,
    so that disk writes and flushes overlap the model's work instead of pausing it.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], lock: BinaryIO) -> None:
        self.path = path
        self.manifest = manifest
        self._lock = lock
        self.arrays: dict[tuple[str, str], LatentArray] = {}
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="latentsight-store")
        self._writes: list[Future[None]] = []
        self._commit: Future[None] | None = None

    @classmethod
    def open(
        cls, path: Path, manifest: dict[str, Any], *, resume: bool, overwrite: bool
    ) -> RunWriter:
        """Start a new run at ``path``, or reopen an interrupted one with the same settings."""
        path = Path(path)
        try:
            is_file = path.exists() and not path.is_dir()
        except PermissionError:  # a directory on the way cannot be entered: check_writable says
            is_file = False
        if is_file:
            raise RunStoreError(
                f"{path} is a file: --out must name a directory, new or empty, for the run."
            )
        check_writable(path, folder=True)
        if _holds_other_files(path):
            if not _damaged_run(path):
                raise RunStoreError(
                    f"{path} exists and is not a latentsight run: choose an empty or new "
                    "directory for --out (latentsight never deletes files it did not write)."
                )
            if not overwrite:
                raise RunStoreError(
                    f"{path} holds a damaged latentsight run (its manifest is missing or cannot "
                    "be read), which cannot be resumed: pass overwrite=True (--overwrite) to "
                    "capture it again."
                )
        path.mkdir(parents=True, exist_ok=True)
        lock = _lock(path)
        try:
            if overwrite:  # whatever version of latentsight wrote it, or a damaged run
                _remove_run(path)
            elif (path / MANIFEST).is_file():
                manifest = _continued(path, manifest, resume=resume)
            writer = cls(path, manifest, lock)
            writer._prepare()
        except BaseException:
            _unlock(path, lock)
            raise
        return writer

    def _prepare(self) -> None:
        """The manifest first (so that a capture killed at any point leaves a run to resume),
        then the shard folders and the latent arrays."""
        self.manifest["status"] = STATUS_CAPTURING
        write_json(self.path / MANIFEST, self.manifest)
        (self.path / LATENTS).mkdir(parents=True, exist_ok=True)
        for subset in self.manifest["subsets"]:
            (self.path / CAPTURE_SHARDS / subset["name"]).mkdir(parents=True, exist_ok=True)
        total = self.manifest["n_rows_planned"]
        stale = False
        for entry in self.manifest["layers"]:
            for view, spec in entry["views"].items():
                file = self.path / spec["file"]
                shape = (total, spec["dim"])
                array = LatentArray.reopen(file, shape)
                if array is None:
                    stale = True
                    array = LatentArray.create(file, shape)
                self.arrays[(entry["name"], view)] = array
        if stale:
            for shard in (self.path / CAPTURE_SHARDS).rglob("*.parquet"):
                shard.unlink()

    def _shard(self, subset: str, chunk: int, kind: str) -> Path:
        return self.path / CAPTURE_SHARDS / subset / f"{chunk:06d}.{kind}.parquet"

    def chunk_done(self, subset: str, chunk: int) -> bool:
        """Whether a chunk was completely written by this or an earlier, interrupted capture."""
        return self._shard(subset, chunk, "samples").is_file()

    def chunk_ids(self, subset: str, chunk: int) -> list[str]:
        """The ids of a chunk's samples, as a completed chunk holds them."""
        return pq.read_table(self._shard(subset, chunk, "samples"), columns=["id"])[
            "id"
        ].to_pylist()

    def write_latents(self, batches: list[tuple[np.ndarray, LatentBatch]]) -> None:
        """Queue the pooled vectors of a chunk's batches, each with its rows of the arrays.

        One hand-over per chunk rather than per batch keeps the queueing off the model's path.
        """
        self._writes.append(self._background.submit(self._write_latents, batches))

    def _write_latents(self, batches: list[tuple[np.ndarray, LatentBatch]]) -> None:
        """Each batch's vectors straight from its arrays to the files: joining a chunk's batches
        first would copy every vector once more, into memory freshly taken for each chunk."""
        for rows, latents in batches:
            for key, array in self.arrays.items():
                array.write(rows, latents[key])

    def write_chunk(
        self,
        subset: str,
        chunk: int,
        samples: pa.Table,
        failed: pa.Table,
        renders: pa.Table | None,
    ) -> None:
        """Queue making a chunk durable, once the previous chunk is (so one at most is pending)."""
        self.wait()
        writes, self._writes = self._writes, []
        self._commit = self._background.submit(
            self._commit_chunk, writes, subset, chunk, samples, failed, renders
        )

    def _commit_chunk(
        self,
        writes: list[Future[None]],
        subset: str,
        chunk: int,
        samples: pa.Table,
        failed: pa.Table,
        renders: pa.Table | None,
    ) -> None:
        """Latents written and flushed, then side shards, then the samples shard marking it done."""
        for write in writes:
            write.result()
        for array in self.arrays.values():
            array.flush()
        write_parquet(self._shard(subset, chunk, "failed"), failed, compress=False)
        if renders is not None:
            write_parquet(
                self._shard(subset, chunk, "renders"), renders, row_group_size=RENDER_GROUP_ROWS
            )
        write_parquet(self._shard(subset, chunk, "samples"), samples, compress=False)

    def shared_ids(self, limit: int = 3) -> tuple[int, dict[str, list[str]]]:
        """How many ids the written chunks give to more than one sample, and up to ``limit`` of
        them with the ``subset/index`` of the samples that share each."""
        files = sorted((self.path / CAPTURE_SHARDS).rglob("*.samples.parquet"))
        if not files:
            return 0, {}
        ids = pa.chunked_array([pq.read_table(file, columns=["id"])["id"] for file in files])
        if pc.count_distinct(ids).as_py() == len(ids):  # the usual case, at a fraction of the cost
            return 0, {}
        keys = pa.concat_tables(
            [pq.read_table(file, columns=["id", "subset", "index"]) for file in files]
        )
        counts = keys.group_by("id").aggregate([("id", "count")])
        shared = counts.filter(pc.greater(counts["id_count"], 1))["id"]
        if len(shared) == 0:
            return 0, {}
        rows = keys.filter(pc.is_in(keys["id"], value_set=shared[:limit])).to_pylist()
        places: dict[str, list[str]] = {}
        for row in rows:
            places.setdefault(row["id"], []).append(f"{row['subset']}/{row['index']}")
        return len(shared), places

    def wait(self) -> None:
        """Block until the last queued chunk is durable, raising the error of a failed write."""
        if self._commit is not None:
            self._commit.result()

    def close(self) -> None:
        """Let queued writes finish, stop the background thread and release the directory (after
        success or failure)."""
        self._background.shutdown(wait=True)
        _unlock(self.path, self._lock)

    def finalize(self, updates: dict[str, Any]) -> dict[str, Any]:
        """Join the shards into the run's table and arrays, drop quarantined rows, mark complete."""
        self.wait()
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
        render_files = _ordered_shards(shards, "renders", order)
        if render_files:
            _link_parts(render_files, self.path / RENDERS)
        n_rows = self.manifest["n_rows_planned"] - len(failed_rows)
        for array in self.arrays.values():
            if len(failed_rows):
                _drop_rows(array, failed_rows)
            array.close()
        self.arrays.clear()
        self._record_digests()
        self.manifest.update(updates)
        self.manifest["n_samples"] = n_rows
        self.manifest["n_quarantined"] = len(failed_rows)
        self.manifest["status"] = STATUS_COMPLETE
        write_json(self.path / MANIFEST, self.manifest)
        shutil.rmtree(shards)
        return self.manifest

    def _record_digests(self) -> None:
        """Note in the manifest each final array's digest, which a reader checks on first use."""
        for entry in self.manifest["layers"]:
            for spec in entry["views"].values():
                array = np.load(self.path / spec["file"], mmap_mode="r")
                spec[ROWS_DIGEST] = rows_digest(array)


LOCK = ".capture.lock"  # held by the capture writing the run
# What a run directory holds: the capture's files, and what later stages add to it.
RUN_ENTRIES = frozenset(
    {
        MANIFEST,
        SAMPLES,
        QUARANTINE,
        RENDERS,
        LATENTS,
        CAPTURE_SHARDS,
        ANALYSIS,
        CONCEPTS,
        EXPLANATIONS,
        EXTRAS,
        LOCK,
    }
)


def _continued(path: Path, manifest: dict[str, Any], *, resume: bool) -> dict[str, Any]:
    """The manifest to capture with where a run already is: refused, or resumed."""
    existing = read_manifest(path)
    if existing["status"] == STATUS_COMPLETE:
        raise RunStoreError(
            f"A complete run already exists at {path}: open it (latentsight info {path}; in "
            "Python, latentsight.open_run), or pass overwrite=True (--overwrite) to replace it."
        )
    if not resume:
        raise RunStoreError(
            f"An interrupted run is at {path}: pass resume=True (--resume) to finish it, or "
            "overwrite=True (--overwrite) to start again."
        )
    _check_same_capture(existing, manifest, path)
    return {**manifest, "timings": existing.get("timings", {})}


def _lock(path: Path) -> BinaryIO:
    """Hold the run directory for this capture, refusing it while another capture holds it."""
    handle = open(path / LOCK, "a+b")  # noqa: SIM115 - held until _unlock
    if fcntl is not None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RunStoreError(
                f"Another capture is writing {path} right now: wait for it to end, or choose "
                "another --out."
            ) from None
    return handle


def capture_in_progress(path: Path) -> bool:
    """Whether a capture holds the run directory now (its lock is taken), which tells a run still
    being written from one whose capture was interrupted (its lock file left, but free)."""
    if fcntl is None:
        return False
    try:
        with open(path / LOCK, "rb") as handle:  # closing it frees the lock taken to test
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no lock file (or none readable): no capture holds the directory
        return False
    return False


def _unlock(path: Path, handle: BinaryIO) -> None:
    (path / LOCK).unlink(missing_ok=True)
    handle.close()


def _holds_other_files(path: Path) -> bool:
    """Whether ``path`` holds something other than a latentsight run (or what a capture killed as
    it started leaves: its lock and temporary files)."""
    if not path.is_dir():
        return False
    entries = [entry.name for entry in path.iterdir()]
    if not any(name != LOCK and not _is_temporary(name) for name in entries):
        return False
    return not _written_by_latentsight(path / MANIFEST)


def _damaged_run(path: Path) -> bool:
    """Whether ``path`` holds nothing but what a run holds, a run's data beyond its manifest
    among it: a run whose manifest was lost or damaged, which ``overwrite`` may replace."""
    names = {entry.name for entry in path.iterdir() if not _is_temporary(entry.name)}
    return names <= RUN_ENTRIES and bool(names - {MANIFEST, LOCK})


def _written_by_latentsight(manifest: Path) -> bool:
    """Whether ``manifest`` is a run manifest of some version of latentsight (a JSON object with
    a schema version and a capture status), not another tool's manifest.json."""
    try:
        content = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(content, dict) and {"schema_version", "status"} <= content.keys()


def _is_temporary(name: str) -> bool:
    """A file or folder that an interrupted write of a run left (``.samples.parquet.tmp-12``)."""
    return name.startswith(".") and ".tmp" in name


def _remove_run(path: Path) -> None:
    """Delete the run at ``path``, refusing first if it holds anything latentsight did not write
    (the directory itself stays, so that ``--out .`` or a link works)."""
    foreign = sorted(
        entry.name
        for entry in path.iterdir()
        if entry.name not in RUN_ENTRIES and not _is_temporary(entry.name)
    )
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise RunStoreError(
            f"{path} holds a run and files latentsight did not write ({shown}): a run is "
            "replaced only where nothing else is; move those files out, or choose another --out."
        )
    for entry in path.iterdir():
        if entry.name == LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# Capture key parts that older versions did not record, with the value their captures had; a
# part neither recorded nor listed here is not compared.
UNRECORDED_PARTS: dict[str, Any] = {"padding_masked": []}
SETTING_OPTIONS = {"batch_size": "batch_size", "rows_per_chunk": "chunk_size"}  # -> the option
PART_DESCRIPTIONS = {
    "checked_values": "values on the checked samples (loss, metrics, predictions or metadata)"
}


def _check_same_capture(existing: dict[str, Any], new: dict[str, Any], path: Path) -> None:
    named, same = _differences(existing.get("capture_key_parts", {}), new["capture_key_parts"])
    if named:
        raise RunStoreError(
            f"Cannot resume the run at {path}: its {named} from the interrupted capture. "
            f"Resume with the same model, data and settings{same}, or pass overwrite=True "
            "(--overwrite) to start again."
        )


def complete_capture(path: Path, settings: CaptureSettings) -> bool:
    """Whether ``path`` holds a run whose capture is complete, which a resume keeps as it is:
    refused where the batch or chunk size of ``settings`` differs from the recorded one."""
    try:
        existing = read_manifest(path)
    except RunStoreError:  # no run, or a damaged one: the capture says which
        return False
    if existing.get("status") != STATUS_COMPLETE:
        return False
    sizes = {name: getattr(settings, name) for name in SETTING_OPTIONS}
    named, same = _differences(existing.get("capture_key_parts", {}), sizes)
    if named:
        raise RunStoreError(
            f"The run at {path} is already complete, and its {named}: a resume keeps "
            "the recorded sizes and would not use the new ones. Pass overwrite=True "
            f"(--overwrite) to capture it again with the new sizes, or resume with the "
            f"recorded ones{same}."
        )
    return True


def _differences(before: dict[str, Any], now: dict[str, Any]) -> tuple[str, str]:
    """The capture key parts of ``now`` that differ from the recorded ones (``before``), named
    for a message with their verb (``"model differs"``), and the recorded settings among them
    (`` (here batch_size=8)``); ``""`` twice when none differs."""
    differences = [
        name
        for name, value in now.items()
        if (name in before or name in UNRECORDED_PARTS)
        and before.get(name, UNRECORDED_PARTS.get(name)) != value
    ]
    if not differences:
        return "", ""
    named = [
        f"{option.replace('_', ' ')} ({before[name]} then, {now[name]} now)"
        if (option := SETTING_OPTIONS.get(name))
        else PART_DESCRIPTIONS.get(name, name)
        for name in differences
    ]
    settings = [
        f"{SETTING_OPTIONS[name]}={before[name]}" for name in differences if name in SETTING_OPTIONS
    ]
    verb = "differs" if len(named) == 1 else "differ"
    return f"{', '.join(named)} {verb}", f" (here {', '.join(settings)})" if settings else ""


def _read_shards(directory: Path, kind: str, schema: pa.Schema) -> pa.Table:
    files = sorted(directory.rglob(f"*.{kind}.parquet"))
    tables = [pq.read_table(file) for file in files]
    return (
        pa.concat_tables([table.cast(schema) for table in tables])
        if tables
        else schema.empty_table()
    )


def _write_samples(shards: Path, destination: Path, order: dict[str, int]) -> None:
    """Join the samples shards, already in run order, into one table numbered by ``row``.

    One shard at a time is in memory; a column that a shard lacks (the loss of an unlabeled
    subset) is null there. Arrow does this without the start-up cost of a database connection.
    """
    files = _ordered_shards(shards, "samples", order)
    found = pa.unify_schemas([pq.read_schema(file) for file in files], promote_options="permissive")
    schema = pa.schema([pa.field("row", pa.int64()), *found])
    temporary = destination.with_name(f".{destination.name}.tmp")
    first_row = 0
    with pq.ParquetWriter(temporary, schema, **parquet_options(schema)) as out:
        for file in files:
            shard = pq.read_table(file)
            n_rows = shard.num_rows
            columns = [pa.array(np.arange(first_row, first_row + n_rows, dtype=np.int64))]
            columns.extend(
                shard.column(field.name).cast(field.type)
                if field.name in shard.column_names
                else pa.nulls(n_rows, field.type)
                for field in found
            )
            out.write_table(pa.Table.from_arrays(columns, schema=schema))
            first_row += n_rows
    temporary.replace(destination)


def _ordered_shards(shards: Path, kind: str, order: dict[str, int]) -> list[Path]:
    """The shards of one kind in run order: subsets as planned, then chunks (rows) in order."""
    return [
        file
        for subset in sorted(order, key=order.__getitem__)
        for file in sorted((shards / subset).glob(f"*.{kind}.parquet"))
    ]


def _link_parts(files: list[Path], destination: Path) -> None:
    """Make the render shards, already in run order, the run's numbered parts, in one rename.

    Capture wrote them in their final form, so nothing is decoded or encoded again. Hard links
    (copies where the file system has none) keep the shards until the run is complete: a
    finalize that is killed starts again from them.
    """
    temporary = destination.with_name(f".{destination.name}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    for number, file in enumerate(files):
        part = temporary / f"part-{number:06d}.parquet"
        try:
            os.link(file, part)
        except OSError:
            shutil.copyfile(file, part)
    shutil.rmtree(destination, ignore_errors=True)
    temporary.rename(destination)


def _drop_rows(array: LatentArray, rows: np.ndarray, block: int = 65536) -> None:
    """Rewrite an array without the given rows, block by block so memory stays bounded."""
    n_rows, dim = array.shape
    keep = np.ones(n_rows, dtype=bool)
    keep[rows] = False
    temporary = array.file.with_name(f".{array.file.name}.tmp")
    out = LatentArray.create(temporary, (int(keep.sum()), dim))
    written = 0
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        kept = array.read_block(start, stop)[keep[start:stop]]
        out.write_block(written, kept)
        written += len(kept)
    out.flush()
    out.close()
    temporary.replace(array.file)
