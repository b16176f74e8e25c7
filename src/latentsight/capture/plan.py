"""Validating a Project on a few samples of every subset and planning the capture.

Everything that can be wrong with the integration (layers, item format, loss shape, metadata
alignment, NaN outputs) is found here, in seconds, before the long pass starts.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from latentsight.capture.forward import (
    ForwardResult,
    ForwardSpec,
    call_model,
    forward_items,
)
from latentsight.capture.items import (
    FailedItem,
    ParsedItem,
    collate,
    default_id,
    duplicate_ids_error,
    load_item,
    to_device,
)
from latentsight.capture.layers import (
    LayerRef,
    check_batch_first,
    default_layers,
    first_tensor,
    hook_layer,
    layer_tensor,
    ran_again_error,
    resolve_layers,
)
from latentsight.capture.metadata import MetadataSource
from latentsight.capture.outputs import check_task, infer_task, logits_of
from latentsight.capture.padding import padding_positions
from latentsight.capture.pooling import LayerPooler, PoolingSettings, layer_kind
from latentsight.capture.recorder import LayerRecorder
from latentsight.capture.stages import StageFailure
from latentsight.errors import ProjectError
from latentsight.project import Project
from latentsight.render import default_render, looks_like_image


@dataclass
class SubsetPlan:
    """One subset: its size, whether it carries targets, and where its rows start in the arrays."""

    name: str
    size: int
    labeled: bool
    offset: int


@dataclass
class CapturePlan:
    """The validated integration: what to run, what to record, and what the check found."""

    project: Project
    spec: ForwardSpec
    subsets: list[SubsetPlan]
    layers: list[tuple[LayerRef, LayerPooler]]
    layers_defaulted: bool
    input_shape: str
    output_shape: str
    n_classes: int | None
    loss_names: list[str]
    metadata_columns: list[str]
    check_seconds: float
    checked_values: str
    warnings: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        """Samples over all subsets."""
        return sum(subset.size for subset in self.subsets)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to run on: CUDA when present unless the user names one."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ProjectError(
            f"Device {device!r} is not a torch device: use 'cpu', 'cuda', 'cuda:1' or 'auto'."
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ProjectError(
            f"Device {device!r} was asked for, but CUDA is not available here: use 'cpu'."
        )
    if resolved.type == "meta":
        raise ProjectError(
            "Device 'meta' holds no values, so a model cannot be captured on it: use 'cpu' or "
            "'cuda'."
        )
    try:  # mps, xpu, a GPU number past those present...: what torch cannot allocate on
        torch.empty(1, device=resolved)
    except (RuntimeError, AssertionError) as error:
        reason = re.split(r"(?<=\.)\s", f"{str(error).strip()} ")[0].rstrip(".")[:160]
        raise ProjectError(
            f"Device {device!r} was asked for, but it is not available here ({reason}): use "
            "'cpu', or 'auto' for CUDA when present."
        ) from None
    return resolved


def _describe(value: Any) -> str:
    tensor = first_tensor(value)
    if isinstance(value, torch.Tensor):
        return f"{tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_describe(inner)}" for key, inner in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        if tensor is not None:
            return f"{type(value).__name__} of {len(value)}, first {_describe(tensor)}"
        kinds = sorted({type(inner).__name__ for inner in value})
        return f"{type(value).__name__} of {len(value)} {'/'.join(kinds)}".rstrip()
    return type(value).__name__


def _check_items(
    project: Project, subset: str, dataset: Any, n: int
) -> tuple[list[ParsedItem], bool, list[str]]:
    items: list[ParsedItem] = []
    warnings: list[str] = []
    for index in range(min(n, len(dataset))):
        loaded = load_item(dataset, subset, index)
        if isinstance(loaded, FailedItem):
            warnings.append(f"{loaded.id}: {loaded.error} (it will be quarantined)")
            continue
        items.append(loaded)
    if not items:
        raise ProjectError(
            f"The first {min(n, len(dataset))} items of subset {subset!r} all failed to load, "
            f"e.g. {warnings[0]}: fix the data set's __getitem__."
        )
    labeled = items[0].has_target
    for item in items:
        if item.has_target != labeled:
            raise ProjectError(
                f"In subset {subset!r}, {items[0].id!r} {'has' if labeled else 'has no'} target "
                f"but {item.id!r} {'has none' if labeled else 'has one'}: a subset is either "
                "labeled or unlabeled; split it into two subsets."
            )
    first = items[0]
    if labeled and _is_number(first.input) and _is_number(first.target):
        warnings.append(
            f"{first.id} reads as (input, target) = ({first.input!r}, {first.target!r}): if each "
            "item is a sequence of token ids rather than an input and its label, give it as a "
            "tensor or as (ids,) for unlabeled data, (ids, label) for labeled data."
        )
    return items, labeled, warnings


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_batchable(items: list[ParsedItem], project: Project) -> None:
    """Refuse first items that the default stacking cannot make one batch of (inputs or
    targets of different shapes), naming Project.collate, the way to batch them."""
    if project.collate is not None or not items:
        return
    try:
        collate(items, None)
    except TypeError:  # inputs that are not tensors (pictures): running the model says how
        return
    except RuntimeError as error:
        raise ProjectError(
            f"The first items of subset {items[0].subset!r} cannot be stacked into one batch: "
            f"{error}. Give Project.collate a function that batches a list of (input, target) "
            "pairs (padding or resizing them), or make every input (and target) one shape."
        ) from error


def _check_collate_order(items: list[ParsedItem], project: Project) -> None:
    """Refuse a Project.collate that reorders the items (sorting them by length, say): the
    outputs would be stored against the wrong ids. It shows when the batch's targets are the
    items' class labels in another order."""
    if project.collate is None or not items[0].has_target:
        return
    try:
        given = torch.as_tensor([item.target for item in items], dtype=torch.float64)
        collated = torch.as_tensor(collate(items, project.collate).targets, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):  # boxes, text...: no labels to compare
        return
    if collated.shape != given.shape or torch.equal(collated, given):
        return
    if torch.equal(collated.sort().values, given.sort().values):
        raise ProjectError(
            f"Project.collate returned the targets of subset {items[0].subset!r} in another "
            f"order than its items ({_numbers(given)} became {_numbers(collated)}): each row of "
            "the batch is stored as the item at that position, so keep the items' order (sort "
            "the data set instead, if batches should hold items of similar length)."
        )


def _numbers(values: torch.Tensor) -> str:
    return "[" + ", ".join(f"{value:g}" for value in values.tolist()) + "]"


def _runnable(
    model: nn.Module,
    items: list[ParsedItem],
    project: Project,
    device: torch.device,
    warnings: list[str],
) -> list[ParsedItem]:
    """The items the model runs on: a sample that fails alone is reported and will be quarantined."""

    def runs(group: list[ParsedItem]) -> Exception | None:
        try:
            with torch.inference_mode():
                call_model(model, to_device(collate(group, project.collate).inputs, device))
        except ProjectError:
            raise
        except Exception as error:
            return error
        return None

    if runs(items) is None:
        return items
    usable, first_error = [], None
    for item in items:
        error = runs([item])
        if error is None:
            usable.append(item)
        else:
            first_error = first_error or error
            warnings.append(f"{item.id}: the model raised {error!r} (it will be quarantined)")
    if not usable:
        raise ProjectError(
            f"Running the model on the first items of subset {items[0].subset!r} failed: "
            f"{first_error!r}.{_input_hint(items[0].input)}{_dtype_hint(model, items[0].input)} "
            "Check that the items are in the form "
            "the model expects (and that Project.collate, if given, builds the batch the model "
            "takes)."
        ) from first_error
    return usable


def _dtype_hint(model: nn.Module, value: Any) -> str:
    """What to do when the model's weights and the items' float inputs differ in precision."""
    weights = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if weights is None or not isinstance(value, (np.ndarray, torch.Tensor)):
        return ""
    name, found = (str(dtype).removeprefix("torch.") for dtype in (weights, value.dtype))
    if found == name or "float" not in found:  # NumPy and torch name float dtypes alike
        return ""
    return (
        f" The model's weights are {name} and the items' inputs {found}: give it inputs of its "
        f"own dtype (x.to(torch.{name}) in the data set), or convert the model "
        f"(model.to(torch.{found}))."
    )


def _input_hint(value: Any) -> str:
    """What to do about inputs that a model cannot take as they are: pictures not yet tensors."""
    if isinstance(value, Image.Image):
        return (
            " The items' inputs are PIL images: turn them into tensors in the data set (e.g. "
            "torchvision.transforms.ToTensor(), which gives C x H x W floats in [0, 1])."
        )
    if isinstance(value, (np.ndarray, torch.Tensor)) and value.dtype in (np.uint8, torch.uint8):
        return (
            f" The items' inputs are uint8 arrays of shape {tuple(value.shape)}: models take "
            "float tensors, C x H x W for images; convert them in the data set (e.g. "
            "torch.from_numpy(x).permute(2, 0, 1).float() / 255)."
        )
    return ""


def _raw_activations(
    model: nn.Module, refs: list[LayerRef], inputs: Any, batch_size: int
) -> tuple[dict[LayerRef, tuple[torch.Tensor, nn.Module]], set[LayerRef], Any]:
    """Run the model once, keeping each layer's raw activation and the module that made it, and
    the layers whose activation the rest of the pass changes in place (an inplace ReLU after the
    hooked module), found from tensor versions: the pass runs under no_grad, since inference
    mode keeps no versions."""
    modules = dict(model.named_modules())
    seen: dict[LayerRef, tuple[torch.Tensor, nn.Module]] = {}
    versions: dict[LayerRef, int] = {}
    handles = []
    for ref in refs:
        module = modules[ref.module_name]

        def keep(value: Any, ref: LayerRef = ref, module: nn.Module = module) -> None:
            tensor = layer_tensor(ref, value)
            if ref in seen:
                raise ran_again_error(ref)
            check_batch_first(ref, tensor, batch_size)
            seen[ref] = (tensor, module)
            versions[ref] = tensor._version

        handles.append(hook_layer(module, ref, keep))
    try:
        with torch.no_grad():
            outputs = call_model(model, inputs)
    finally:
        for handle in handles:
            handle.remove()
    missing = [ref.name for ref in refs if ref not in seen]
    if missing:
        raise ProjectError(
            f"Layers {missing} did not run during the forward pass: choose modules that the "
            "model's forward() actually calls."
        )
    changed = {ref for ref, (tensor, _) in seen.items() if tensor._version != versions[ref]}
    return seen, changed, outputs


def _check_batch_axis(
    model: nn.Module,
    refs: list[LayerRef],
    raw: dict[LayerRef, tuple[torch.Tensor, nn.Module]],
    items: list[ParsedItem],
    project: Project,
    device: torch.device,
) -> None:
    """Run a batch one item shorter through the layers whose first batch could not tell the batch
    axis from another of the same length (a sequence-first GRU over 8 steps in a batch of 8): the
    batch axis is the one that follows the number of items."""
    ambiguous = [ref for ref in refs if len(items) in raw[ref][0].shape[1:]]
    if not ambiguous or len(items) < 2:
        return
    fewer = items[:-1]
    inputs = to_device(collate(fewer, project.collate).inputs, device)
    _raw_activations(model, ambiguous, inputs, len(fewer))


def _scorable(
    spec: ForwardSpec, items: list[ParsedItem], warnings: list[str]
) -> tuple[list[ParsedItem], ForwardResult]:
    """The items whose loss, metrics, metadata and render compute, and their result; one that
    fails alone (a label out of range) is reported and will be quarantined, as the model's
    failures are."""

    def scored(group: list[ParsedItem]) -> ForwardResult | StageFailure:
        try:
            with spec.recorder.attach():
                return forward_items(spec, group)
        except StageFailure as failure:
            return failure

    first = scored(items)
    if not isinstance(first, StageFailure):
        return items, first
    usable = []
    for item in items:
        alone = scored([item])
        if isinstance(alone, StageFailure):
            warnings.append(f"{item.id}: {alone} (it will be quarantined)")
        else:
            usable.append(item)
    if not usable:
        raise _scoring_error(spec, items, first) from first.error
    result = scored(usable)
    if isinstance(result, StageFailure):
        raise _scoring_error(spec, usable, result) from result.error
    return usable, result


def _scoring_error(
    spec: ForwardSpec, items: list[ParsedItem], failure: StageFailure
) -> ProjectError:
    """Say which part of the project raised on the first batch and what it was given."""
    batch = collate(items, spec.user_collate)
    with torch.inference_mode():
        outputs = call_model(spec.model, to_device(batch.inputs, spec.device))
    given = f"outputs {_describe(outputs)} and targets {_describe(batch.targets)}"
    what, advice = {
        "loss": (
            "The loss",
            f"It was given {given}: make the loss accept them (cross-entropy takes class "
            "indices 0 to C-1 as targets, mse targets of the outputs' shape).",
        ),
        "metadata": (
            "The metadata function",
            "It is called as metadata(subset, index) and must return a dict of column to scalar.",
        ),
        "render": (
            "Project.render",
            f"It was given {_describe(items[0].input)} inputs: make it draw them.",
        ),
        "padding mask": (
            "Project.padding_mask",
            f"It was given {_describe(batch.inputs)} inputs: make it return their B x T mask.",
        ),
    }.get(
        failure.stage,
        (
            failure.stage[0].upper() + failure.stage[1:],
            f"It was given {given}: make it accept them.",
        ),
    )
    return ProjectError(
        f"{what} raised {failure.error!r} on the first batch of subset {items[0].subset!r}. {advice}"
    )


def _check_distinct_ids(items: list[ParsedItem]) -> None:
    """Refuse samples that share an id (file names reused across folders or subsets)."""
    first: dict[str, ParsedItem] = {}
    for item in items:
        earlier = first.setdefault(item.id, item)
        if earlier is not item:
            raise duplicate_ids_error(
                item.id, [f"{earlier.subset}/{earlier.index}", f"{item.subset}/{item.index}"]
            )


def _label_warning(task: str, n_classes: int | None, subset: str, items: list[ParsedItem]) -> str:
    """A warning when the checked labels do not look like the task's (empty when they do):
    1-based class indices, or binary targets outside 0-1, which a loss may take without error."""
    try:
        labels = torch.as_tensor([item.target for item in items]).float()
    except (TypeError, ValueError, RuntimeError):  # boxes, text...: nothing to compare
        return ""
    if labels.numel() == 0:
        return ""
    low, high = float(labels.min()), float(labels.max())
    if task == "classification" and n_classes is not None and low >= 1 and high >= n_classes:
        return (
            f"The labels of subset {subset!r} look 1-based (from {low:g} to {high:g} for "
            f"{n_classes} logits): the loss takes class indices 0 to {n_classes - 1}, and the "
            f"samples labeled {n_classes} would be quarantined; subtract 1 in the data set."
        )
    if task in ("binary", "multilabel") and (low < 0 or high > 1):
        return (
            f"The targets of subset {subset!r} go from {low:g} to {high:g}: binary "
            "cross-entropy takes 0/1 labels (or probabilities in [0, 1]) and gives a loss for "
            "other values without error; map the labels to 0 and 1."
        )
    return ""


def _values_text(subset: str, columns: dict[str, Any]) -> str:
    """What the checked samples of a subset gave (loss, metrics, predictions, metadata) as text,
    floats to 4 significant digits: a resume compares it, so that a capture continued with
    another loss, metric or metadata is refused rather than mixed into one run."""

    def text(values: Any) -> list[str]:
        if isinstance(values, np.ndarray) and values.dtype.kind == "f":
            return [f"{value:.4g}" for value in values.reshape(-1).tolist()]
        if isinstance(values, np.ndarray):
            return [str(value) for value in values.reshape(-1).tolist()]
        return [str(value) for value in values]

    return json.dumps({"subset": subset, **{name: text(v) for name, v in columns.items()}})


def _probabilities(logits: torch.Tensor) -> bool:
    """Whether B x C outputs look like class probabilities rather than logits."""
    rows = logits.detach().double()
    return bool(
        ((rows >= 0) & (rows <= 1)).all()
        and torch.allclose(rows.sum(dim=1), torch.ones_like(rows[:, 0]), atol=1e-4)
    )


def _some_row_finite(tensor: torch.Tensor) -> bool:
    """Whether at least one sample's row of a batch-first tensor is all finite."""
    rows = tensor.detach().float().reshape(len(tensor), -1) if tensor.dim() else tensor.reshape(1)
    return bool(torch.isfinite(rows).all(dim=-1).any())


def _check_classes(project: Project, task: str, n_classes: int | None) -> None:
    """Class names must be one per class (or label) the outputs score, two for a binary task."""
    if project.classes is None:
        return
    expected = {"classification": n_classes, "multilabel": n_classes, "binary": 2}.get(task)
    if expected is None:
        raise ProjectError(
            f"Project.classes names classes, but the task is {task!r}: leave classes out, or "
            "set Project.task to 'classification', 'binary' or 'multilabel'."
        )
    if len(project.classes) != expected:
        raise ProjectError(
            f"Project.classes has {len(project.classes)} names, but the outputs score "
            f"{expected} classes: give one name per class, in class-index order."
        )


def _first_mask(project: Project, inputs: Any) -> torch.Tensor | None:
    """The first batch's padding mask, checked against the batch; a mask function that raises
    is named with what it was given."""
    try:
        mask = padding_positions(inputs, project.padding_mask)
    except ProjectError:
        raise
    except Exception as error:
        raise ProjectError(
            f"Project.padding_mask raised {error!r} on the first batch, given {_describe(inputs)} "
            "inputs: make it return their B x T mask (True at real positions)."
        ) from error
    batch = first_tensor(inputs)
    if mask is not None and batch is not None and mask.shape[0] != batch.shape[0]:
        raise ProjectError(
            f"The padding mask has {mask.shape[0]} rows for a batch of {batch.shape[0]} samples: "
            "it must have one row per sample."
        )
    return mask


def _masked(
    ref: LayerRef,
    kind: str,
    sample_shape: tuple[int, ...],
    mask: torch.Tensor | None,
    project: Project,
    inputs: Any,
    warnings: list[str],
) -> bool:
    """Whether a layer is pooled over the padding mask: a sequence layer of the mask's length.

    A sequence layer that cannot be masked is named, as are padded token ids given no mask:
    their latents would include padding and depend on the batch.
    """
    if kind not in ("sequence", "channels_first_sequence"):
        return False
    length = sample_shape[0] if kind == "sequence" else sample_shape[1]
    if mask is not None:
        if length == mask.shape[1]:
            return True
        warnings.append(
            f"layer {ref.name!r} has {length} positions where the padding mask has "
            f"{mask.shape[1]}: it is averaged over all its positions, padding included"
        )
        return False
    padded_ids = (
        project.collate is not None
        and isinstance(inputs, torch.Tensor)
        and inputs.dim() == 2
        and not inputs.is_floating_point()
    )
    if padded_ids:
        warnings.append(
            f"layer {ref.name!r} is a sequence over token ids that Project.collate batches: if "
            "it pads them, pass Project(padding_mask=lambda ids: ids != PAD_ID) so that padding "
            "is not averaged into the latents"
        )
    return False


@contextmanager
def training_modes_kept(project: Project) -> Iterator[None]:
    """Give the project's model back in the train/eval modes it came in (module by module), as
    capture switches it to eval mode: a model handed over mid-training goes on training."""
    modules = list(project.resolve_model().modules())
    modes = [module.training for module in modules]
    try:
        yield
    finally:
        for module, training in zip(modules, modes, strict=True):
            module.training = training


def plan_capture(
    project: Project,
    *,
    device: str | torch.device | None = None,
    pooling: PoolingSettings | None = None,
    check_size: int = 8,
    renders: bool = True,
) -> CapturePlan:
    """Validate the project on the first ``check_size`` items of each subset and plan the capture."""
    started = time.perf_counter()
    pooling = pooling or PoolingSettings()
    model = project.resolve_model()
    resolved_device = resolve_device(device)
    model.to(resolved_device).eval()

    checked: dict[str, list[ParsedItem]] = {}
    subsets: list[SubsetPlan] = []
    warnings: list[str] = []
    offset = 0
    for name, dataset in project.data.items():
        items, labeled, item_warnings = _check_items(project, name, dataset, check_size)
        checked[name] = items
        warnings.extend(item_warnings)
        subsets.append(SubsetPlan(name, len(dataset), labeled, offset))
        offset += len(dataset)

    for subset in subsets:
        _check_batchable(checked[subset.name], project)
        _check_collate_order(checked[subset.name], project)
        checked[subset.name] = _runnable(
            model, checked[subset.name], project, resolved_device, warnings
        )
    first = checked[subsets[0].name]
    batch = collate(first, project.collate)
    inputs = to_device(batch.inputs, resolved_device)

    def forward() -> Any:
        with torch.inference_mode():
            return call_model(model, inputs)

    layers_defaulted = project.layers is None
    refs = (
        default_layers(model, forward, len(first))
        if layers_defaulted
        else resolve_layers(model, project.layers)
    )
    if not refs:
        raise ProjectError(
            "Project.layers is empty: name at least one layer, or pass None for defaults."
        )
    raw, changed_in_place, outputs = _raw_activations(model, refs, inputs, len(first))
    _check_batch_axis(model, refs, raw, first, project, resolved_device)
    logits = first_tensor(outputs)
    if logits is not None and not _some_row_finite(logits):
        raise ProjectError(
            f"The model's outputs on the first batch of {subsets[0].name!r} contain NaN or inf "
            "for every sample: check the model's weights and the input normalisation before "
            "capturing."
        )
    mask = _first_mask(project, inputs)
    layers: list[tuple[LayerRef, LayerPooler]] = []
    for ref in refs:
        activation, module = raw[ref]
        if not _some_row_finite(activation):
            raise ProjectError(
                f"Layer {ref.name!r} has NaN or inf activations for every sample of the first "
                "batch: check the model's weights and the input normalisation."
            )
        kind = layer_kind(activation, module, ref.point)
        sample_shape = tuple(activation.shape[1:])
        masked = _masked(ref, kind, sample_shape, mask, project, inputs, warnings)
        layers.append((ref, LayerPooler(ref.name, kind, sample_shape, pooling, masked)))

    labeled = next((checked[subset.name] for subset in subsets if subset.labeled), [])
    targets = collate(labeled, project.collate).targets if labeled else None
    task = infer_task(project.task, project.loss, outputs, targets)
    check_task(task, outputs, declared=project.task != "auto")
    logits = logits_of(outputs)
    per_class = task in ("classification", "multilabel") and logits is not None
    n_classes = int(logits.shape[1]) if per_class else None
    _check_classes(project, task, n_classes)
    if task == "classification" and _probabilities(logits):
        warnings.append(
            "The model's outputs on the first batch are probabilities (every row is in [0, 1] "
            "and sums to 1), but they are read as logits: predictions, confidences and the "
            "ready-made losses take a softmax of them, a second one. End forward() with the "
            "logits (drop its final Softmax)."
        )
    for subset in subsets:
        warning = _label_warning(task, n_classes, subset.name, checked[subset.name])
        if subset.labeled and warning:
            warnings.append(warning)
    render = project.render
    if render is None and renders and looks_like_image(first[0].input):
        render = default_render
    deferred = frozenset(refs) - changed_in_place if resolved_device.type == "cpu" else frozenset()
    spec = ForwardSpec(
        model=model,
        device=resolved_device,
        recorder=LayerRecorder(model, dict(layers), deferred),
        loss=project.loss,
        metrics=project.metrics,
        metadata=MetadataSource(project.metadata),
        task=task,
        user_collate=project.collate,
        render=render if renders else None,
        padding_mask=project.padding_mask,
    )
    own_ids = any(
        item.id != default_id(item.subset, item.index)
        for items in checked.values()
        for item in items
    )
    _check_distinct_ids([item for items in checked.values() for item in items])
    warnings.extend(
        spec.metadata.check_covers({subset.name: subset.size for subset in subsets}, own_ids)
    )
    spec.metadata.check_values()
    loss_names: list[str] = []
    metadata_columns: list[str] = []
    checked_values = hashlib.sha256()
    for subset in subsets:
        checked[subset.name], result = _scorable(spec, checked[subset.name], warnings)
        checked_values.update(_values_text(subset.name, result.columns).encode())
        if len(result.non_finite) < len(checked[subset.name]):
            warnings.extend(
                f"{item.id}: {reason} (it will be quarantined)"
                for item, reason in result.non_finite
            )
        else:
            item, reason = result.non_finite[0]
            raise ProjectError(
                f"{item.id!r} gives {reason} on the first batch: check the model's weights, the "
                "loss and the input normalisation."
            )
        names = [name for name in result.columns if name == "loss" or name.startswith("loss_")]
        if subset.labeled:
            loss_names = loss_names or names
        metadata_columns.extend(
            name
            for name in spec.metadata.columns(checked[subset.name])
            if name not in metadata_columns
        )
    return CapturePlan(
        project=project,
        spec=spec,
        subsets=subsets,
        layers=layers,
        layers_defaulted=layers_defaulted,
        input_shape=_describe(batch.inputs),
        output_shape=_describe(outputs),
        n_classes=n_classes,
        loss_names=loss_names,
        metadata_columns=metadata_columns,
        check_seconds=time.perf_counter() - started,
        checked_values=checked_values.hexdigest(),
        warnings=warnings,
    )
