"""Ready-made per-sample losses: each returns one value per sample, never a batch mean."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["binary_cross_entropy", "cross_entropy", "mse"]


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class logits ``B x C`` against integer labels ``B``."""
    return F.cross_entropy(outputs, targets.long(), reduction="none")


def binary_cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of logits against 0/1 targets, averaged over all but the batch dim."""
    per_element = F.binary_cross_entropy_with_logits(
        outputs, targets.to(outputs.dtype).reshape(outputs.shape), reduction="none"
    )
    return per_element.reshape(len(outputs), -1).mean(dim=1)


def mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Squared error averaged over all but the batch dim (regression)."""
    diff = outputs - targets.to(outputs.dtype).reshape(outputs.shape)
    return diff.pow(2).reshape(len(outputs), -1).mean(dim=1)


cross_entropy.task = "classification"  # type: ignore[attr-defined]
binary_cross_entropy.task = "binary"  # type: ignore[attr-defined]
mse.task = "regression"  # type: ignore[attr-defined]
