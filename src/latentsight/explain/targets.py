"""What an explanation explains: the predicted class, the true class, a given class, or a scalar
that a user function reads from the outputs (the score of one box of a detector)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from latentsight.capture.forward import call_model
from latentsight.errors import ExplanationError

TargetFn = Callable[[Any], torch.Tensor]
TargetLike = str | int | TargetFn
TARGET_HELP = (
    "target must be 'predicted', 'label', a class index (int) or name ('class:NAME' for a class "
    "named 'predicted' or 'label'), or a function outputs -> Tensor[B] that returns one score "
    "per sample."
)
CLASS_PREFIX = "class:"  # names a class even when its name is also a keyword or a number


@dataclass(frozen=True)
class Target:
    """A parsed target: its kind, the class it names, or the function that scores the outputs."""

    kind: Literal["predicted", "label", "class", "function"]
    class_index: int | None = None
    function: TargetFn | None = None

    @property
    def key(self) -> str | None:
        """A name for caching; None for a function, whose results are not cached."""
        if self.kind == "class":
            return f"class-{self.class_index}"
        return None if self.kind == "function" else self.kind

    @property
    def description(self) -> str:
        """How the target reads in reports and file names."""
        if self.kind == "function":
            return getattr(self.function, "__name__", "function")
        return self.key or self.kind


def parse_target(target: TargetLike, class_names: Mapping[int, str] | None = None) -> Target:
    """Check and normalise a target argument; a class may be given by its name."""
    if isinstance(target, (bool, np.bool_)):
        raise ExplanationError(f"target={target!r} is a bool. {TARGET_HELP}")
    if isinstance(target, (int, np.integer)):
        if target < 0:
            raise ExplanationError(f"target={target} is negative: give a class index >= 0.")
        return Target("class", class_index=int(target))
    if isinstance(target, str):
        if target in ("predicted", "label"):
            return Target(target)
        by_name = {name: index for index, name in (class_names or {}).items()}
        name = target.removeprefix(CLASS_PREFIX)
        if name in by_name:
            return Target("class", class_index=by_name[name])
        if target.startswith(CLASS_PREFIX) and name.isdigit():
            return Target("class", class_index=int(name))
        known = f" The classes are {', '.join(map(repr, by_name))}." if by_name else ""
        raise ExplanationError(f"Unknown target {target!r}. {TARGET_HELP}{known}")
    if callable(target):
        return Target("function", function=target)
    raise ExplanationError(f"target is a {type(target).__name__}. {TARGET_HELP}")


def target_classes(
    target: Target, rows: pd.DataFrame, n_classes: int | None, predict: Callable[[], np.ndarray]
) -> np.ndarray | None:
    """The class each sample's explanation is for, or None when a function scores the outputs.

    ``predicted`` reads the run's stored predictions (the model is the run's, checked by its
    fingerprint), so no extra forward pass is needed; ``predict`` is used only when the run has
    none.
    """
    if target.kind == "function":
        return None
    if target.kind == "class":
        if n_classes is not None and target.class_index >= n_classes:
            raise ExplanationError(
                f"target={target.class_index} but the model has {n_classes} classes: give an "
                f"index from 0 to {n_classes - 1}."
            )
        return np.full(len(rows), target.class_index, dtype=np.int64)
    column = "prediction" if target.kind == "predicted" else "target"
    if column in rows.columns and rows[column].notna().all():
        values = rows[column].to_numpy()
        if np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating):
            return values.astype(np.int64)
    if target.kind == "predicted":
        return predict()
    raise ExplanationError(
        "target='label' needs one integer label per sample, and "
        + (
            "some of these samples are unlabeled"
            if column in rows.columns
            else "this run stored no class labels"
        )
        + ": use target='predicted' or a class index."
    )


def scoring_forward(model: nn.Module, target: Target) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function attribution differentiates: the model, or a user function of its outputs."""
    if target.function is None:
        return lambda inputs: call_model(model, inputs)
    function = target.function

    def scored(inputs: torch.Tensor) -> torch.Tensor:
        score = function(call_model(model, inputs))
        if not isinstance(score, torch.Tensor) or score.shape != (inputs.shape[0],):
            shape = tuple(score.shape) if isinstance(score, torch.Tensor) else type(score).__name__
            raise ExplanationError(
                f"The target function returned {shape} for a batch of {inputs.shape[0]}: it "
                "must return one score per sample, a Tensor of shape (B,)."
            )
        return score

    return scored
