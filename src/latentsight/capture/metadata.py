"""Per-sample metadata from a DataFrame aligned by id, a per-sample function, or the items."""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from latentsight.capture.items import ParsedItem, default_id
from latentsight.errors import ProjectError
from latentsight.project import MetadataFn

RESERVED = {
    "id",
    "subset",
    "index",
    "row",
    "target",
    "prediction",
    "confidence",
    "probabilities",
    "correct",
    "loss",
}
RESERVED_PREFIXES = ("loss_", "metric_", "_")
INT64 = np.iinfo(np.int64)  # the range a stored integer column holds


class MetadataSource:
    """Looks up the metadata of a batch of items, checking alignment and scalar values."""

    def __init__(self, metadata: pd.DataFrame | MetadataFn | None) -> None:
        self._frame: pd.DataFrame | None = None
        self._fn: MetadataFn | None = None
        self._kinds: dict[str, tuple[str, str, Any]] = {}
        if isinstance(metadata, pd.DataFrame):
            self._frame = _index_by_id(metadata)
            _check_names(self._frame.columns)
        elif metadata is not None:
            self._fn = metadata

    def check_covers(self, sizes: Mapping[str, int], own_ids: bool) -> list[str]:
        """Refuse a frame that lacks a row for some sample, before the pass rather than during it.

        With default ids (``<subset>/<index>``) every sample's id is known without loading it, so
        the missing ones are counted and named, and rows that match no sample are reported (as
        warnings: they are ignored). With ids the items carry, a frame with fewer rows than there
        are samples must miss some.
        """
        if self._frame is None:
            return []
        total = sum(sizes.values())
        if own_ids:
            if len(self._frame) < total:
                raise ProjectError(
                    f"Project.metadata has {len(self._frame)} rows for {total} samples: give "
                    "every sample a row, keyed by the 'id' its item carries."
                )
            return []
        expected = pd.Index(
            [default_id(subset, index) for subset, size in sizes.items() for index in range(size)]
        )
        missing = expected[~expected.isin(self._frame.index)]
        if len(missing):
            raise ProjectError(
                f"Project.metadata has no row for {len(missing)} of the {total} samples, e.g. "
                f"{list(missing[:3])}; its ids look like {list(self._frame.index[:3])}. Give "
                "every sample a row, keyed by its id ('<subset>/<index>', e.g. 'train/0')."
            )
        unused = self._frame.index[~self._frame.index.isin(expected)]
        if len(unused):
            return [
                f"Project.metadata has {len(unused)} row(s) matching no sample, e.g. "
                f"{list(unused[:3])}: they are ignored."
            ]
        return []

    def check_values(self) -> None:
        """Refuse a frame value that no column can store (a list, an integer past 64 bits, a
        string among numbers) before the pass: the whole frame is known up front. Columns of
        one kind of value (numbers, strings) are read as a whole, the others value by value."""
        if self._frame is None:
            return
        uniform = {"string", "floating", "mixed-integer-float", "boolean", "empty"}
        for name in self._frame.columns:
            column = self._frame[name]
            if column.dtype.kind != "u" and (
                column.dtype.kind != "O" or pd.api.types.infer_dtype(column) in uniform
            ):
                continue
            ids = column.index.tolist()
            values = [
                _scalar(value, name, sample_id)
                for value, sample_id in zip(column, ids, strict=True)
            ]
            self._check_kind(name, values, ids)

    def columns(self, items: Sequence[ParsedItem]) -> dict[str, list[Any]]:
        """Metadata columns for the items, in item order (missing values become None)."""
        if self._frame is None and self._fn is None and not any(item.metadata for item in items):
            return {}
        rows: list[dict[str, Any]] = [dict(item.metadata) for item in items]
        from_items = {name for row in rows for name in row}
        if self._frame is not None:
            _refuse_two_sources(from_items & set(self._frame.columns), "frame")
            ids = [item.id for item in items]
            missing = [sample_id for sample_id in ids if sample_id not in self._frame.index]
            if missing:
                raise ProjectError(
                    f"Project.metadata has no row for {len(missing)} sample(s) of this batch, "
                    f"e.g. {missing[:3]}; its ids look like {list(self._frame.index[:3])}. Give "
                    "the frame an 'id' column holding the sample ids (by default "
                    "'<subset>/<index>', e.g. 'train/0', or the 'id' your items carry)."
                )
            for row, values in zip(rows, self._frame.loc[ids].to_dict("records"), strict=True):
                row.update(values)
        if self._fn is not None:
            for row, item in zip(rows, items, strict=True):
                values = self._fn(item.subset, item.index)
                if not isinstance(values, dict):
                    raise ProjectError(
                        f"The metadata function returned a {type(values).__name__} for "
                        f"{item.id!r}: it must return a dict of column name to scalar."
                    )
                _refuse_two_sources(from_items & values.keys(), "function")
                row.update(values)
        names = list(dict.fromkeys(name for row in rows for name in row))
        _check_names(names)
        ids = [item.id for item in items]
        columns = {
            name: [
                _scalar(row.get(name), name, sample_id)
                for row, sample_id in zip(rows, ids, strict=True)
            ]
            for name in names
        }
        for name, values in columns.items():
            self._check_kind(name, values, ids)
        return columns

    def _check_kind(self, name: str, values: list[Any], ids: Sequence[str]) -> None:
        """Refuse a column whose values change kind (number, string, bool, time) from sample to
        sample: a stored column has one type, which the first value seen decides."""
        for value, sample_id in zip(values, ids, strict=True):
            if value is None:
                continue
            kind = _kind(value)
            first = self._kinds.setdefault(name, (kind, sample_id, value))
            if first[0] != kind:
                raise ProjectError(
                    f"Metadata column {name!r} mixes kinds of value: {first[0]} for {first[1]!r} "
                    f"({first[2]!r}) but {kind} for {sample_id!r} ({value!r}). Give each column "
                    "one kind (numbers, strings, bools or times, all with a time zone or all "
                    "without); write a missing value as None."
                )


def _refuse_two_sources(names: set[str], source: str) -> None:
    """Refuse columns that both the items' 'metadata' and Project.metadata give: neither may
    silently win."""
    if names:
        raise ProjectError(
            f"Metadata column {sorted(names)[0]!r} comes both from the items' 'metadata' and "
            f"from the Project.metadata {source}: give each column one source (rename one)."
        )


def _index_by_id(frame: pd.DataFrame) -> pd.DataFrame:
    if "id" in frame.columns:
        frame = frame.set_index("id")
    elif frame.index.name != "id":
        raise ProjectError(
            "Project.metadata must say which sample each row belongs to: add an 'id' column (or "
            "name the index 'id') holding the sample ids, by default '<subset>/<index>' such as "
            "'train/0'."
        )
    frame = frame.copy()
    frame.index = frame.index.astype(str)
    duplicated = frame.index[frame.index.duplicated()].unique()
    if len(duplicated):
        raise ProjectError(
            f"Project.metadata has {len(duplicated)} duplicated id(s), e.g. {list(duplicated[:3])}: "
            "keep one row per sample."
        )
    return frame


def _check_names(names: Sequence[Any]) -> None:
    """Refuse names that are not text, or that equal a column latentsight writes or another
    column once case is ignored: the samples table is queried with SQL, whose names ignore case."""
    seen: dict[str, str] = {}
    for name in names:
        if not isinstance(name, str) or not name:
            raise ProjectError(f"Metadata column name {name!r} must be a non-empty string.")
        folded = name.lower()
        if folded in RESERVED or folded.startswith(RESERVED_PREFIXES):
            raise ProjectError(
                f"Metadata column {name!r} clashes with a column latentsight writes itself "
                "(column names ignore case); rename it (e.g. 'meta_" + name.lstrip("_") + "')."
            )
        if folded in seen:
            raise ProjectError(
                f"Metadata columns {seen[folded]!r} and {name!r} differ only in case, and column "
                "names ignore case in the samples table: rename one of them."
            )
        seen[folded] = name


def _kind(value: bool | int | float | str | datetime.datetime) -> str:
    """The kind of a stored metadata value, which one column must not change."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "time" if value.tzinfo is None else "time with a zone"


def _scalar(value: Any, name: str, sample_id: str) -> Any:
    """The value as stored: a plain scalar, None for a missing one (None, NaN, NA, NaT)."""
    if isinstance(value, np.datetime64):  # .item() would give nanoseconds as an int
        value = pd.Timestamp(value)
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return datetime.datetime(value.year, value.month, value.day)
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not INT64.min <= value <= INT64.max
    ):
        raise ProjectError(
            f"Metadata column {name!r} of sample {sample_id!r} holds the integer {value}, outside "
            "the 64-bit range that columns store: give it as a float or a string."
        )
    if isinstance(value, (bool, int, float, str, datetime.datetime)):
        return value
    raise ProjectError(
        f"Metadata column {name!r} of sample {sample_id!r} holds a {type(value).__name__}; "
        "metadata values must be scalars (number, string, bool, date or time): split it into "
        "columns."
    )
