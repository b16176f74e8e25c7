"""Atomic file writes (a reader sees the old file or the whole new one, never half of one), the
check, before any work, that a path can be written at all, and the digest of a few rows that tells
a latent array from one reordered or replaced."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from latentsight.errors import OutputPathError


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _commit(temporary: Path, path: Path) -> None:
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically, indented for people to read."""
    temporary = _temporary(path)
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    _commit(temporary, path)


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns worth dictionary-encoding: text (ids, subsets, categories), nothing else.

    Dictionary-encoding floats, lists of floats or image bytes costs several times the rest of
    the write (probabilities: 40 of 64 ms for 16k rows) for values that rarely repeat.
    """
    return [
        field.name
        for field in schema
        if pa.types.is_string(field.type)
        or pa.types.is_large_string(field.type)
        or pa.types.is_dictionary(field.type)
    ]


def parquet_options(schema: pa.Schema, *, compress: bool = True) -> dict[str, Any]:
    """How latentsight writes Parquet: dictionaries for text only; zstd for binary columns
    (pictures), which it shrinks at a third of snappy's cost, snappy for the rest; nothing
    compressed in a file that is read once and deleted."""
    return {
        "use_dictionary": dictionary_columns(schema),
        "compression": {
            field.name: ("zstd" if pa.types.is_binary(field.type) else "snappy")
            if compress
            else "none"
            for field in schema
        },
    }


def write_parquet(
    path: Path, table: pa.Table, *, compress: bool = True, row_group_size: int | None = None
) -> None:
    """Write a Parquet file atomically (``compress=False`` for a short-lived file)."""
    temporary = _temporary(path)
    pq.write_table(
        table,
        temporary,
        row_group_size=row_group_size,
        **parquet_options(table.schema, compress=compress),
    )
    _commit(temporary, path)


DIGEST_ROWS = 18  # first, last and 16 between: a few pages of the file, however long it is


def digest_rows(n_rows: int) -> np.ndarray:
    """The positions of the rows that an array's digest covers: first, last and spread between."""
    return np.unique(np.linspace(0, n_rows - 1, min(n_rows, DIGEST_ROWS)).round().astype(np.int64))


def rows_digest(array: np.ndarray) -> str:
    """A digest of a latent array's rows at :func:`digest_rows`, read alone from a memory map, so
    that an array whose rows were reordered or that another run's file replaced is told apart."""
    rows = np.ascontiguousarray(array[digest_rows(len(array))], dtype="<f4")
    return hashlib.blake2b(rows.tobytes(), digest_size=16).hexdigest()


def layer_file_stem(layer: str) -> str:
    """A file-system-safe stem for a layer name (``fc:input`` -> ``fc@input``)."""
    safe = layer.replace(":", "@")
    return "".join(ch if ch.isalnum() or ch in "._@-" else "_" for ch in safe)


def file_signature(file: Path) -> tuple[int, int, int]:
    """What tells a file from another written in its place, from one stat: inode, size and
    modification time."""
    stat = file.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def check_writable(path: str | Path, *, folder: bool = False, fix: str | None = None) -> Path:
    """``path`` as a Path, once a file (or, with ``folder``, a folder's files) could be written
    there; else an OutputPathError naming it, why, and ``fix`` (default: choose another path),
    raised before any work is spent on it."""
    path = Path(path)
    elsewhere, writable = fix or "choose another path", fix or "choose a directory you can write to"
    try:  # a directory on the way that cannot be entered makes exists() raise
        if folder and path.exists() and not path.is_dir():
            raise OutputPathError(
                f"Cannot write into {path}: it is a file, not a directory; {elsewhere}."
            )
        where = path if folder else path.parent
        existing = next(p for p in (where, *where.parents) if p.exists())
    except PermissionError as error:
        blocked = Path(error.filename).parent if error.filename else path.parent
        raise OutputPathError(
            f"Cannot write {path}: permission denied in {blocked}; {writable}."
        ) from None
    existing = existing if existing.parts else Path.cwd()
    if not existing.is_dir():
        raise OutputPathError(
            f"Cannot write {path}: {existing} is a file, not a directory; {elsewhere}."
        )
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".latentsight-probe-"):
            pass
    except PermissionError:
        raise OutputPathError(
            f"Cannot write {path}: permission denied in {existing}; {writable}."
        ) from None
    except OSError as error:
        raise OutputPathError(
            f"Cannot write {path}: {existing} takes no new files ({error.strerror}); {elsewhere}."
        ) from None
    return path
