"""From a batch's outputs and targets to the per-sample columns: prediction, loss, metrics."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from latentsight.errors import ProjectError
from latentsight.project import LossFn, Metric

LOSS_HELP = (
    "The loss must return one value per sample (a Tensor of shape [B]) or a dict of such "
    "components; for torch losses pass reduction='none', e.g. latentsight.losses.cross_entropy."
)
METRIC_HELP = (
    "A metric must return one value per sample (a Tensor of shape [B]), e.g. "
    "(outputs.argmax(dim=1) == targets).float() rather than its mean."
)


def logits_of(outputs: Any) -> torch.Tensor | None:
    """The tensor predictions are read from: the outputs themselves, or their ``"logits"`` entry
    when the model returns a mapping (as Hugging Face models do); None for anything else."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping) and isinstance(outputs.get("logits"), torch.Tensor):
        return outputs["logits"]
    return None


def _class_indices(targets: Any, batch_size: int) -> bool:
    """Whether targets are one integer class index per sample (what classification losses take)."""
    return (
        isinstance(targets, torch.Tensor)
        and not targets.is_floating_point()
        and tuple(targets.shape) == (batch_size,)
    )


def infer_task(declared: str, loss: LossFn, outputs: Any, targets: Any) -> str:
    """The task that decides how outputs become predictions: declared, from the loss, or from the
    outputs and targets (``B x C`` logits with integer class targets, or no targets, read as
    classification; anything else, e.g. a regression's float targets, as "other"). A binary
    loss over ``B x C`` logits scores C labels per sample: "multilabel"."""
    if declared != "auto":
        return declared
    logits = logits_of(outputs)
    is_logits = logits is not None and logits.is_floating_point() and logits.dim() == 2
    from_loss = getattr(loss, "task", None)
    if from_loss == "binary" and is_logits and logits.shape[1] > 1:
        return "multilabel"
    if from_loss is not None:
        return from_loss
    if (
        is_logits
        and logits.shape[1] > 1
        and (targets is None or _class_indices(targets, len(logits)))
    ):
        return "classification"
    return "other"


def check_task(task: str, outputs: Any, declared: bool) -> None:
    """Refuse a class task whose outputs hold no logits tensor of the task's shape, saying whether
    the task was set (``declared``) or implied by the ready-made loss."""
    if task not in ("classification", "binary", "multilabel"):
        return
    said = f"Project.task is {task!r}" if declared else f"The loss implies task={task!r}"
    logits = logits_of(outputs)
    fix = (
        "Make forward() return the logits tensor (or a dict with a 'logits' entry), or set "
        "task='other': loss, metrics, latents and metadata are recorded all the same."
    )
    if logits is None or not logits.is_floating_point() or logits.dim() == 0:
        raise ProjectError(
            f"{said}, but the model returns {_kind(outputs)}: predictions are "
            f"read from one float tensor of logits, batch first. {fix}"
        )
    if task == "classification" and (logits.dim() != 2 or logits.shape[1] < 2):
        raise ProjectError(
            f"{said}, but the logits have shape {tuple(logits.shape)}: "
            "it needs B x C with C >= 2 classes (for one logit per sample, task='binary'). "
            f"{fix}"
        )
    if task == "multilabel" and (logits.dim() != 2 or logits.shape[1] < 2):
        raise ProjectError(
            f"{said}, but the logits have shape {tuple(logits.shape)}: it "
            "needs B x C, one logit per label (for one logit per sample, task='binary'). "
            f"{fix}"
        )
    if task == "binary" and logits[0].numel() > 1:
        raise ProjectError(
            f"{said}, but the logits have shape {tuple(logits.shape)}: binary "
            "takes one logit per sample; for C independent labels per sample, set "
            "task='multilabel'."
        )


def _kind(outputs: Any) -> str:
    if isinstance(outputs, Mapping):
        return f"a {type(outputs).__name__} with keys {list(outputs)[:6]} and no 'logits' tensor"
    if isinstance(outputs, (tuple, list)):
        return f"a {type(outputs).__name__} of {len(outputs)} elements"
    if isinstance(outputs, torch.Tensor):
        dtype = str(outputs.dtype).replace("torch.", "")
        if outputs.dim() == 0:
            return f"a single {dtype} number for the whole batch"
        article = "an" if dtype[0] in "aeio" else "a"
        return f"{article} {dtype} tensor of shape {tuple(outputs.shape)}"
    return f"a {type(outputs).__name__}"


def per_sample(value: Any, batch_size: int, what: str) -> torch.Tensor:
    """Check that a loss or metric gave one finite-or-not value per sample and flatten it."""
    help_text = METRIC_HELP if what.startswith("metric") else LOSS_HELP
    if not isinstance(value, torch.Tensor):
        raise ProjectError(f"The {what} returned a {type(value).__name__}. {help_text}")
    if value.dim() == 0:
        raise ProjectError(f"The {what} returned a single number for the batch. {help_text}")
    if value.numel() != batch_size or value.shape[0] != batch_size:
        raise ProjectError(
            f"The {what} returned shape {tuple(value.shape)} for a batch of {batch_size}. "
            f"{help_text}"
        )
    return value.detach().reshape(batch_size).float()


def loss_components(loss: LossFn, outputs: Any, targets: Any, batch_size: int) -> dict[str, Any]:
    """Evaluate the loss: ``{"loss": total}`` plus ``{"loss_<name>": component}`` for dicts."""
    value = loss(outputs, targets)
    if isinstance(value, Mapping):
        if not value:
            raise ProjectError(f"The loss returned an empty dict. {LOSS_HELP}")
        columns = {
            f"loss_{name}": per_sample(part, batch_size, f"loss component {name!r}")
            for name, part in value.items()
        }
        columns = {"loss": torch.stack(list(columns.values())).sum(dim=0), **columns}
    else:
        columns = {"loss": per_sample(value, batch_size, "loss")}
    return columns


def metric_columns(
    metrics: Mapping[str, Metric], outputs: Any, targets: Any, batch_size: int
) -> dict[str, torch.Tensor]:
    """Evaluate every metric into a ``metric_<name>`` column."""
    return {
        f"metric_{name}": per_sample(metric.fn(outputs, targets), batch_size, f"metric {name!r}")
        for name, metric in metrics.items()
    }


def prediction_columns(task: str, outputs: Any, batch_size: int) -> dict[str, Any]:
    """Prediction, confidence and probabilities derived from the outputs for the task."""
    logits = logits_of(outputs)
    if task == "other" or logits is None:
        return {}
    if logits.dim() == 0 or logits.shape[0] != batch_size:
        raise ProjectError(
            f"The model returned logits of shape {tuple(logits.shape)} for a batch of "
            f"{batch_size} samples: predictions are read from one row per sample, batch first. "
            "Make forward() return outputs for every sample of the batch, in the batch's order."
        )
    out = logits.detach().float().reshape(batch_size, -1)
    if task == "classification":
        probabilities = out.softmax(dim=1)
        confidence, prediction = probabilities.max(dim=1)
        return {"prediction": prediction, "confidence": confidence, "probabilities": probabilities}
    if task == "multilabel":
        positive = out.sigmoid()
        return {
            "prediction": (positive > 0.5).long(),
            "confidence": torch.maximum(positive, 1 - positive).mean(dim=1),
            "probabilities": positive,
        }
    if task == "binary":
        positive = out.sigmoid()[:, 0]
        return {
            "prediction": (positive > 0.5).long(),
            "confidence": torch.maximum(positive, 1 - positive),
            "probabilities": torch.stack([1 - positive, positive], dim=1),
        }
    return {"prediction": out[:, 0] if out.shape[1] == 1 else out}


def correct_column(
    task: str, prediction: np.ndarray, target: Any, n_classes: int | None
) -> np.ndarray | None:
    """Whether each prediction is right: its class (the largest of one-hot or soft labels, rows
    of ``n_classes`` probabilities), or every label of a multilabel sample (exact match); None
    where the task or the targets' form has no right answer to compare (class names as text,
    targets of several values that are not class probabilities)."""
    if task in ("classification", "binary") and np.ndim(target) == 1:
        return prediction == target if np.asarray(target).dtype.kind in "biuf" else None
    if task == "classification" and np.ndim(target) == 2:
        labels = np.asarray(target, dtype=np.float64)
        soft = (
            labels.shape[1] == n_classes
            and labels.min() >= 0
            and np.allclose(labels.sum(axis=1), 1, atol=1e-3)
        )
        return prediction == labels.argmax(axis=1) if soft else None
    if task == "multilabel" and isinstance(target, list):
        labels = np.asarray(target, dtype=np.float64)
        if labels.shape == prediction.shape:
            return (prediction == labels.round()).all(axis=1)
    return None


def per_sample_floats(outputs: Any, batch_size: int) -> list[torch.Tensor]:
    """The model's float tensor outputs that hold one row per sample (whose finiteness counts)."""
    if isinstance(outputs, Mapping):
        tensors = list(outputs.values())
    elif isinstance(outputs, (tuple, list)):
        tensors = list(outputs)
    else:
        tensors = [outputs]
    return [
        tensor
        for tensor in tensors
        if isinstance(tensor, torch.Tensor)
        and tensor.is_floating_point()
        and tensor.dim() > 0
        and tensor.shape[0] == batch_size
    ]


def rows_finite(
    outputs: Sequence[torch.Tensor], arrays: Sequence[np.ndarray], batch_size: int
) -> np.ndarray:
    """Which of the ``batch_size`` rows are finite in every (batch-first) output and array.

    The outputs stay where the model put them; the arrays are what capture stores, already on
    the host, so they are checked with NumPy, whose small reductions cost a fraction of torch's.
    One sum per tensor and array comes first: a finite total means that every value is finite,
    so the row-by-row check only runs for a batch that holds a NaN or inf (or whose total
    overflows).
    """
    ok = np.ones(batch_size, dtype=bool)
    total = sum(float(tensor.detach().sum(dtype=torch.float32)) for tensor in outputs)
    total += sum(float(array.sum(dtype=np.float32)) for array in arrays)
    if math.isfinite(total):
        return ok
    for tensor in outputs:
        ok &= torch.isfinite(tensor.detach()).reshape(batch_size, -1).all(dim=1).cpu().numpy()
    for array in arrays:
        ok &= np.isfinite(array).reshape(batch_size, -1).all(axis=1)
    return ok


def target_column(targets: Any, batch_size: int) -> list[Any] | np.ndarray:
    """Targets as stored in the samples table: scalars, per-sample lists, or JSON text."""
    if isinstance(targets, torch.Tensor) and targets.dim() >= 1 and targets.shape[0] == batch_size:
        values = targets.detach().cpu()
        if values.numel() == batch_size:
            return values.reshape(batch_size).numpy()
        return [row.reshape(-1).tolist() for row in values]
    if isinstance(targets, (list, tuple)) and len(targets) == batch_size:
        return [json.dumps(_jsonable(target)) for target in targets]
    raise ProjectError(
        f"Targets of type {type(targets).__name__} cannot be split per sample: the collate "
        "function must return targets as a Tensor with the batch first or a list with one entry "
        "per sample."
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(key): _jsonable(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(inner) for inner in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
