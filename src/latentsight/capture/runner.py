"""The capture pass: every subset in chunks, batches through the model, results streamed to the
store as they come, failing samples quarantined, an interrupted run resumed at its first
incomplete chunk."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, Dataset

from latentsight import __version__
from latentsight._progress import Reporter
from latentsight.capture.fingerprint import data_fingerprint, model_fingerprint
from latentsight.capture.forward import ForwardResult, forward_items
from latentsight.capture.id_hashes import IdHashes
from latentsight.capture.items import FailedItem, ParsedItem, duplicate_ids_error, load_item
from latentsight.capture.plan import CapturePlan, SubsetPlan
from latentsight.capture.stages import StageFailure
from latentsight.errors import CaptureError, ProjectError
from latentsight.store.manifest import CAPTURE_KEY, SCHEMA_VERSION
from latentsight.store.renders import RENDERS_SCHEMA
from latentsight.store.writer import QUARANTINE_SCHEMA, RunWriter, latent_file


@dataclass(frozen=True)
class CaptureSettings:
    """How the pass runs. ``chunk_size`` (rounded up to whole batches) is the unit of resume."""

    batch_size: int = 64
    chunk_size: int = 4096
    num_workers: int = 0
    fail_fast: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "chunk_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ProjectError(
                    f"{name} must be a positive integer, got {getattr(self, name)!r}."
                )
        if self.num_workers < 0:
            raise ProjectError(f"num_workers must be 0 or more, got {self.num_workers}.")

    @property
    def rows_per_chunk(self) -> int:
        """Chunk size rounded up to a whole number of batches, so resumed batches are identical."""
        return -(-self.chunk_size // self.batch_size) * self.batch_size


class _ChunkItems(Dataset):
    """The items of one chunk, loaded and parsed (in DataLoader workers when there are some).

    An item with a target in an unlabeled subset, or without one in a labeled subset, fails: it
    would otherwise get a loss where its subset has none, or none where its subset has one.
    """

    def __init__(self, dataset: Any, subset: SubsetPlan, start: int, stop: int) -> None:
        self.dataset, self.subset, self.start, self.stop = dataset, subset, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, position: int) -> ParsedItem | FailedItem:
        index, subset = self.start + position, self.subset.name
        try:
            item = load_item(self.dataset, subset, index)
        except ProjectError as error:
            return FailedItem(subset, index, f"{subset}/{index}", f"format: {error}")
        if isinstance(item, ParsedItem) and item.has_target != self.subset.labeled:
            found, expected = ("a", "unlabeled") if item.has_target else ("no", "labeled")
            return FailedItem(
                subset,
                index,
                item.id,
                f"format: the item has {found} target, but subset {subset!r} is {expected} (so "
                "its first items say): give every item of a subset a target, or none.",
            )
        return item


SAMPLE_KEYS = pa.schema([("id", pa.string()), ("subset", pa.string()), ("index", pa.int64())])


def _column_array(values: Any) -> pa.Array:
    if isinstance(values, np.ndarray) and values.ndim == 2:
        flat = pa.array(np.ascontiguousarray(values).reshape(-1))
        return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
    return pa.array(values)


def _table(columns: dict[str, Any]) -> pa.Table:
    return pa.table({name: _column_array(values) for name, values in columns.items()})


def _joined(parts: Sequence[Any]) -> Any | None:
    """One column's per-batch values end to end, or None when the batches differ in its form."""
    if all(isinstance(part, np.ndarray) for part in parts):
        forms = {(part.dtype, part.shape[1:]) for part in parts}
        return np.concatenate(parts) if len(forms) == 1 else None
    if all(isinstance(part, list) for part in parts):
        return [value for part in parts for value in part]
    return None


def _samples_table(batches: Sequence[dict[str, Any]]) -> pa.Table:
    """The batches' columns as one table, built in one go when they have the same columns."""
    names = list(batches[0]) if batches else []
    if batches and all(list(columns) == names for columns in batches):
        joined = {name: _joined([columns[name] for columns in batches]) for name in names}
        if all(values is not None for values in joined.values()):
            return _table(joined)
    return _concat([_table(columns) for columns in batches], SAMPLE_KEYS)


def _concat(tables: Sequence[pa.Table], empty: pa.Schema) -> pa.Table:
    if not tables:
        return empty.empty_table()
    return pa.concat_tables(tables, promote_options="permissive")


def _refuse_shared_ids(writer: RunWriter) -> None:
    """Stop, leaving the run incomplete, when written samples share an id, naming a few of them."""
    count, places = writer.shared_ids()
    if count:
        sample_id, where = next(iter(places.items()))
        error = duplicate_ids_error(sample_id, where, more=count - 1)
        raise ProjectError(
            f"{error} The run is left incomplete: once the ids are unique, capture it again "
            "with overwrite=True (--overwrite)."
        )


class Capture:
    """Runs a validated plan into a run directory."""

    def __init__(self, plan: CapturePlan, settings: CaptureSettings, reporter: Reporter) -> None:
        self.plan = plan
        self.settings = settings
        self.reporter = reporter
        self.quarantined = 0
        self._ids = IdHashes()

    def manifest(self) -> dict[str, Any]:
        """The manifest written before the pass: provenance, settings, layout of the arrays."""
        plan, project = self.plan, self.plan.project
        model = plan.spec.model
        parts = {
            "model": model_fingerprint(model),
            "data": data_fingerprint(project.data),
            "layers": [ref.name for ref, _ in plan.layers],
            "padding_masked": [ref.name for ref, pooler in plan.layers if pooler.masked],
            "pooling": asdict(plan.layers[0][1].settings),
            "batch_size": self.settings.batch_size,
            "rows_per_chunk": self.settings.rows_per_chunk,
            "renders": plan.spec.render is not None,
            "task": plan.spec.task,
            "classes": None if project.classes is None else list(project.classes),
            "loss_components": plan.loss_names,
            "metrics": {name: metric.better for name, metric in project.metrics.items()},
            "metadata_columns": plan.metadata_columns,
            "checked_values": plan.checked_values,
        }
        capture_key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
        return {
            "schema_version": SCHEMA_VERSION,
            "status": "capturing",
            "name": project.display_name,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "provenance": {
                "latentsight_version": __version__,
                "torch_version": torch.__version__,
                "python_version": platform.python_version(),
                "platform": platform.platform(),
                "command": " ".join(sys.argv),
                "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
                "model_parameters": sum(p.numel() for p in model.parameters()),
                "model_fingerprint": parts["model"],
                "data_fingerprint": parts["data"],
            },
            "settings": {
                **asdict(self.settings),
                "rows_per_chunk": self.settings.rows_per_chunk,
                "device": str(plan.spec.device),
                "pooling": parts["pooling"],
                "renders": parts["renders"],
            },
            "task": plan.spec.task,
            "n_classes": plan.n_classes,
            "classes": None if project.classes is None else list(project.classes),
            "subsets": [asdict(subset) for subset in plan.subsets],
            "n_rows_planned": plan.n_rows,
            "layers": [
                {
                    "name": ref.name,
                    "module": ref.module_name,
                    "point": ref.point,
                    "kind": pooler.kind,
                    "padding_masked": pooler.masked,
                    "sample_shape": list(pooler.sample_shape),
                    "defaulted": plan.layers_defaulted,
                    "views": {
                        view: {"dim": dim, "file": latent_file(ref.name, view)}
                        for view, dim in pooler.dims.items()
                    },
                }
                for ref, pooler in plan.layers
            ],
            "loss_components": [name for name in plan.loss_names if name != "loss"],
            "metrics": {name: metric.better for name, metric in project.metrics.items()},
            "metadata_columns": plan.metadata_columns,
            "check_warnings": list(plan.warnings),
            "timings": {},
            CAPTURE_KEY: capture_key,
            "capture_key_parts": {k: v for k, v in parts.items()},
        }

    def run(self, out: Path, *, resume: bool, overwrite: bool) -> dict[str, Any]:
        """Capture every subset into ``out`` and return the final manifest."""
        started = time.perf_counter()
        writer = RunWriter.open(out, self.manifest(), resume=resume, overwrite=overwrite)
        try:
            with self.plan.spec.recorder.attach():
                self._subsets(writer)
            writer.wait()
            capture_seconds = time.perf_counter() - started
            finalize_started = time.perf_counter()
            timings = dict(writer.manifest.get("timings", {}))
            timings["check_s"] = round(self.plan.check_seconds, 3)
            timings["capture_s"] = round(timings.get("capture_s", 0.0) + capture_seconds, 3)
            manifest = writer.finalize({"timings": timings, "resumed": resume})
        finally:
            writer.close()
        manifest["timings"]["finalize_s"] = round(time.perf_counter() - finalize_started, 3)
        return manifest

    def _subsets(self, writer: RunWriter) -> None:
        """Every chunk of every subset not already done, with progress."""
        for subset in self.plan.subsets:
            self.reporter.start(subset.name, subset.size)
        for subset in self.plan.subsets:
            dataset = self.plan.project.data[subset.name]
            step = self.settings.rows_per_chunk
            for chunk, start in enumerate(range(0, subset.size, step)):
                stop = min(start + step, subset.size)
                if writer.chunk_done(subset.name, chunk):
                    self._take_ids(writer, writer.chunk_ids(subset.name, chunk))
                else:
                    self._chunk(writer, subset, dataset, chunk, start, stop)
                self.reporter.advance(subset.name, stop - start)

    def _chunk(
        self,
        writer: RunWriter,
        subset: SubsetPlan,
        dataset: Any,
        chunk: int,
        start: int,
        stop: int,
    ) -> None:
        loader = DataLoader(
            _ChunkItems(dataset, subset, start, stop),
            batch_size=self.settings.batch_size,
            num_workers=self.settings.num_workers,
            collate_fn=list,
        )
        samples: list[dict[str, Any]] = []
        renders: list[pa.Table] = []
        failed: list[pa.Table] = []
        latents: list[tuple[np.ndarray, dict[tuple[str, str], np.ndarray]]] = []
        for loaded in loader:
            items = [item for item in loaded if isinstance(item, ParsedItem)]
            failures = [(item, item.error) for item in loaded if isinstance(item, FailedItem)]
            results, more = self._forward(items) if items else ([], [])
            failures.extend(more)
            if failures and self.settings.fail_fast:
                item, error = failures[0]
                raise CaptureError(
                    f"Sample {item.id!r} failed: {error}. Completed chunks are kept; fix the "
                    "sample and rerun with --resume, or drop --fail-fast to quarantine it."
                )
            for result in results:
                if not result.items:  # every sample of the batch was quarantined
                    continue
                latents.append((subset.offset + result.columns["index"], result.latents))
                samples.append(result.columns)
                if result.renders is not None:
                    renders.append(result.renders)
            if failures:
                self.quarantined += len(failures)
                failed.append(
                    pa.table(
                        {
                            "id": [item.id for item, _ in failures],
                            "subset": [item.subset for item, _ in failures],
                            "index": [item.index for item, _ in failures],
                            "error": [error for _, error in failures],
                        },
                        schema=QUARANTINE_SCHEMA,
                    )
                )
        table = _samples_table(samples)
        writer.write_latents(latents)
        writer.write_chunk(
            subset.name,
            chunk,
            table,
            _concat(failed, QUARANTINE_SCHEMA),
            _concat(renders, RENDERS_SCHEMA) if self.plan.spec.render is not None else None,
        )
        self._take_ids(writer, table.column("id").to_numpy(zero_copy_only=False))

    def _take_ids(self, writer: RunWriter, ids: Sequence[str]) -> None:
        """Note a written chunk's ids, stopping the capture when one repeats an earlier id."""
        if self._ids.add(ids):
            writer.wait()
            _refuse_shared_ids(writer)

    def _forward(
        self, items: list[ParsedItem]
    ) -> tuple[list[ForwardResult], list[tuple[ParsedItem | FailedItem, str]]]:
        try:
            result = forward_items(self.plan.spec, items)
        except ProjectError as error:  # the project is wrong past the checked samples
            raise ProjectError(
                f"{error} The capture stopped at the batch {items[0].id!r} .. {items[-1].id!r}; "
                "the chunks it completed are kept: fix the project and resume (resume=True, "
                "--resume)."
            ) from error
        except StageFailure as error:  # a sample the user's code fails on is quarantined
            if len(items) == 1:
                return [], [(items[0], str(error))]
            results, failures = [], []
            for item in items:
                one, failed = self._forward([item])
                results.extend(one)
                failures.extend(failed)
            return results, failures
        return [result], list(result.non_finite)
