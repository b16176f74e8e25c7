"""One forward pass over a list of items: the per-sample columns and pooled latents it yields."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from latentsight.capture.items import Batch, Collate, ParsedItem, collate, to_device
from latentsight.capture.metadata import MetadataSource
from latentsight.capture.outputs import (
    correct_column,
    loss_components,
    metric_columns,
    per_sample_floats,
    prediction_columns,
    rows_finite,
    target_column,
)
from latentsight.capture.padding import PaddingMask, padding_positions
from latentsight.capture.recorder import LayerRecorder
from latentsight.capture.stages import stage
from latentsight.project import LossFn, Metric
from latentsight.render import (
    THUMBNAIL_SIZE,
    default_render,
    render_batch,
    stored_render,
    thumbnail,
)
from latentsight.store.renders import renders_table, stacked_renders_table


@dataclass
class ForwardSpec:
    """What a forward pass needs: the model on its device, hooks, loss, metrics and metadata."""

    model: nn.Module
    device: torch.device
    recorder: LayerRecorder
    loss: LossFn
    metrics: Mapping[str, Metric]
    metadata: MetadataSource
    task: str
    user_collate: Collate | None
    render: Callable[[Any], Any] | None
    padding_mask: PaddingMask | None = None


@dataclass
class ForwardResult:
    """Per-sample columns and latents of the items whose outputs were finite, and the others."""

    items: list[ParsedItem]
    columns: dict[str, Any]
    latents: dict[tuple[str, str], np.ndarray]
    renders: pa.Table | None  # rows of the run's renders, in the items' order
    non_finite: list[tuple[ParsedItem, str]] = field(default_factory=list)


def call_model(model: nn.Module, inputs: Any) -> Any:
    """Call the model: a mapping of inputs is passed as keyword arguments, anything else as is."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


def _numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


def _select(value: Any, keep: np.ndarray) -> Any:
    if isinstance(value, np.ndarray):
        return value[keep]
    return [inner for inner, kept in zip(value, keep, strict=True) if kept]


def _renders(
    render: Callable[[Any], Any], batch: Batch, stacked: bool, keep: np.ndarray
) -> pa.Table:
    """The kept items' renders as rows of the run's renders; the default render draws a stacked
    batch in one pass, and stores it in one piece when no picture needs shrinking."""
    kept = [item for item, is_kept in zip(batch.items, keep, strict=True) if is_kept]
    ids = [item.id for item in kept]
    if not kept:  # the whole batch is quarantined: nothing to draw
        return renders_table([], [])
    if render is default_render and stacked and isinstance(batch.inputs, torch.Tensor):
        inputs = batch.inputs if keep.all() else batch.inputs[torch.from_numpy(keep)]
        pixels = render_batch(inputs)
        if max(pixels.shape[1:3]) <= THUMBNAIL_SIZE:
            return stacked_renders_table(ids, pixels)
        return renders_table(ids, [("image", thumbnail(drawn), None) for drawn in pixels])
    return renders_table(ids, [stored_render(render(item.input), item.id) for item in kept])


NON_FINITE = "non-finite (NaN or inf) outputs, loss or activations"
NO_REAL_POSITIONS = (
    "no real positions: its padding mask (attention_mask or Project.padding_mask) marks every "
    "position as padding, so its sequence layers have nothing to pool; give every sample at "
    "least one real position, or leave empty sequences out of the data"
)


def _without_real_positions(
    recorder: LayerRecorder, mask: torch.Tensor | None, size: int
) -> np.ndarray:
    """Which rows have no real position in a batch whose masked sequence layers pool over it."""
    masked = any(pooler.masked for pooler in recorder.poolers.values())
    if not masked or mask is None or mask.shape[0] != size:
        return np.zeros(size, dtype=bool)
    return (~mask.any(dim=1)).cpu().numpy()


def forward_items(spec: ForwardSpec, items: Sequence[ParsedItem]) -> ForwardResult:
    """Run the model on the items and compute everything capture stores for them.

    The recorder's hooks must be attached (``spec.recorder.attach()``) around the calls.
    """
    with stage("collate"):
        batch = collate(items, spec.user_collate)
    size = len(items)
    labeled = batch.targets is not None
    with torch.inference_mode():
        inputs = to_device(batch.inputs, spec.device)
        with stage("padding mask"):
            mask = padding_positions(inputs, spec.padding_mask)
            spec.recorder.start(size, mask)
        with stage("forward"):
            outputs = call_model(spec.model, inputs)
            pooled = spec.recorder.take()
        computed = prediction_columns(spec.task, outputs, size)
        if labeled:
            targets = to_device(batch.targets, spec.device)
            with stage("loss"):
                computed.update(loss_components(spec.loss, outputs, targets, size))
            for name, metric in spec.metrics.items():
                with stage(f"metric {name!r}"):
                    computed.update(metric_columns({name: metric}, outputs, targets, size))
        latents = {
            (layer, view): value.cpu().numpy()
            for layer, views in pooled.items()
            for view, value in views.items()
        }
        stored = {name: _numpy(value) for name, value in computed.items()}
        scores = [value for name, value in stored.items() if name.startswith(("loss", "metric_"))]
        finite = rows_finite(
            per_sample_floats(outputs, size), scores + list(latents.values()), size
        )
        empty = _without_real_positions(spec.recorder, mask, size)
        keep = finite & ~empty
    columns: dict[str, Any] = {
        "id": batch.ids,
        "subset": [item.subset for item in items],
        "index": np.fromiter((item.index for item in items), dtype=np.int64, count=size),
    }
    if labeled:
        columns["target"] = target_column(batch.targets, size)
    columns.update(stored)
    if labeled and "prediction" in columns:
        probabilities = columns.get("probabilities")
        n_classes = None if probabilities is None else probabilities.shape[1]
        correct = correct_column(spec.task, columns["prediction"], columns["target"], n_classes)
        if correct is not None:
            columns["correct"] = correct
    with stage("metadata"):
        columns.update(spec.metadata.columns(items))
    renders = None
    if spec.render is not None:
        with stage("render"):
            renders = _renders(spec.render, batch, spec.user_collate is None, keep)
    if keep.all():
        return ForwardResult(list(items), columns, latents, renders)
    non_finite = [
        (item, NO_REAL_POSITIONS if is_empty else NON_FINITE)
        for item, kept, is_empty in zip(items, keep, empty, strict=True)
        if not kept
    ]
    columns = {name: _select(value, keep) for name, value in columns.items()}
    latents = {key: value[keep] for key, value in latents.items()}
    kept_items = [item for item, kept in zip(items, keep, strict=True) if kept]
    return ForwardResult(kept_items, columns, latents, renders, non_finite)
