"""Ready-made per-sample losses: each returns one value per sample, never a batch mean.

Each takes the model's outputs as they are: a tensor, or a mapping with a ``"logits"`` entry (as
Hugging Face models return), the tensor that predictions are read from too.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from latentsight.capture.outputs import logits_of
from latentsight.errors import ProjectError

__all__ = ["binary_cross_entropy", "cross_entropy", "mse"]


def _scores(outputs: Any) -> torch.Tensor:
    logits = logits_of(outputs)
    return outputs if logits is None else logits


def _tensor(targets: Any, loss: str, form: str) -> torch.Tensor:
    """The targets, refused by name when they did not collate to a tensor (class names)."""
    if isinstance(targets, torch.Tensor):
        return targets
    shown = type(targets).__name__
    if isinstance(targets, (list, tuple)) and targets:
        shown += f" of {type(targets[0]).__name__} ({targets[0]!r}, ...)"
    raise ProjectError(
        f"latentsight.losses.{loss} takes the targets as one tensor of {form}, but they "
        f"collate to a {shown}: give each item its target as a number (for class names, their "
        "index: classes.index(name)), or pass a loss of your own that reads these targets."
    )


def cross_entropy(outputs: Any, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class logits ``B x C`` against integer labels ``B``, or against class
    probabilities ``B x C`` (one-hot or label-smoothed float targets)."""
    logits = _scores(outputs)
    targets = _tensor(targets, "cross_entropy", "class indices (or B x C probabilities)")
    if targets.is_floating_point() and targets.shape == logits.shape:
        return F.cross_entropy(logits, targets.to(logits.dtype), reduction="none")
    whole = targets.round() if targets.is_floating_point() else targets
    if not torch.equal(targets, whole):
        fraction = targets[targets != whole][0].item()
        raise ValueError(
            f"cross_entropy takes whole class labels (or B x C class probabilities), but a "
            f"target is {fraction}: give class indices, or a loss made for these targets."
        )
    return F.cross_entropy(logits, targets.long(), reduction="none")


def binary_cross_entropy(outputs: Any, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of logits against 0/1 targets, averaged over all but the batch dim."""
    logits = _scores(outputs)
    targets = _tensor(targets, "binary_cross_entropy", "0/1 labels")
    per_element = F.binary_cross_entropy_with_logits(
        logits, targets.to(logits.dtype).reshape(logits.shape), reduction="none"
    )
    return per_element.reshape(len(logits), -1).mean(dim=1)


def mse(outputs: Any, targets: torch.Tensor) -> torch.Tensor:
    """Squared error averaged over all but the batch dim (regression)."""
    predictions = _scores(outputs)
    targets = _tensor(targets, "mse", "values")
    diff = predictions - targets.to(predictions.dtype).reshape(predictions.shape)
    return diff.pow(2).reshape(len(predictions), -1).mean(dim=1)


cross_entropy.task = "classification"  # type: ignore[attr-defined]
binary_cross_entropy.task = "binary"  # type: ignore[attr-defined]
mse.task = "regression"  # type: ignore[attr-defined]
