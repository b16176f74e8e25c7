"""The integration contract: what a user hands latentsight (model, data, loss, metadata, layers)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
import torch
from torch import nn

from latentsight.errors import ProjectError

LossFn = Callable[[Any, Any], "torch.Tensor | Mapping[str, torch.Tensor]"]
MetadataFn = Callable[[str, int], Mapping[str, Any]]
Task = Literal["auto", "classification", "binary", "multilabel", "regression", "other"]
TASKS: tuple[str, ...] = ("auto", "classification", "binary", "multilabel", "regression", "other")


def call_without_arguments(factory: Callable[[], Any], what: str) -> Any:
    """Call a factory the user gave (of the model, of the project), refusing one that needs
    arguments with a message instead of a TypeError from inside it."""
    name = getattr(factory, "__qualname__", type(factory).__name__)
    try:
        inspect.signature(factory).bind()
    except TypeError as error:
        raise ProjectError(
            f"{what} cannot be called without arguments ({error}): give a function that "
            f"needs none, e.g. lambda: {name}(...), or functools.partial({name}, ...)."
        ) from None
    except ValueError:  # no signature to read (some built-ins): calling it will tell
        pass
    return factory()


@dataclass(frozen=True)
class Metric:
    """A per-sample metric ``(outputs, targets) -> Tensor[B]`` and which direction is better.

    The direction tells later stages what "failing" means for this metric.
    """

    fn: Callable[[Any, Any], torch.Tensor]
    better: Literal["higher", "lower"] = "higher"

    def __post_init__(self) -> None:
        if self.better not in ("higher", "lower"):
            raise ProjectError(
                f"Metric direction must be 'higher' or 'lower', got {self.better!r}: "
                "say whether a larger value of this metric means a better prediction."
            )


@dataclass
class Project:
    """Everything latentsight needs to run a model over a data set and record what it computes.

    Args:
        model: a ``torch.nn.Module``, or a zero-argument callable returning one.
        data: one indexable data set per subset, e.g. ``{"train": ds, "val": ds}``. An item is
            ``(input, target)``, ``(input,)`` / a bare input for unlabeled data, or a mapping with
            ``"input"`` and optional ``"target"``, ``"metadata"`` and ``"id"``.
        loss: ``(outputs, targets) -> Tensor[B]`` or a dict of named components, each ``Tensor[B]``
            (one value per sample). See :mod:`latentsight.losses` for ready-made ones.
        metrics: named per-sample metrics with their direction, ``{"iou": Metric(fn, "higher")}``.
        metadata: a DataFrame with an ``id`` column (or index) of sample ids, or a function
            ``(subset, index) -> {column: scalar}``.
        layers: module names from ``model.named_modules()`` to record; append ``":input"`` to record
            what enters a module instead of what leaves it. ``None`` picks a default and says which.
        render: how to show one sample's input: returns a PIL image, an ``H x W x 3`` array or text.
            Image tensors and PIL images get a default.
        collate: turns a list of ``(input, target)`` pairs into ``(inputs, targets)`` for the model
            (e.g. detection, whose targets are lists of boxes). Default: stack tensors.
        padding_mask: for padded sequence batches, ``inputs -> B x T`` (True or 1 at real
            positions, False or 0 at padding): sequence layers of length T are pooled over the
            real positions only, so that a sample's latents do not depend on its batch. Default:
            the ``attention_mask`` entry of mapping inputs, if there is one.
        classes: the class names, by class index (``["cat", "dog"]``), shown wherever a class
            appears (insights, report, dashboard, concept labels); one per output logit, or
            two for a binary task's single logit (``["negative", "positive"]``).
        task: what the outputs mean, to derive predictions: ``"auto"`` reads it from the ready-made
            loss or the output shape; ``"multilabel"``: C independent 0/1 labels per sample (the
            prediction is the labels whose sigmoid is above 0.5); ``"other"`` records no
            prediction.
        name: a short name for the project, shown in reports.
    """

    model: nn.Module | Callable[[], nn.Module]
    data: Mapping[str, Any]
    loss: LossFn
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    metadata: pd.DataFrame | MetadataFn | None = None
    layers: Sequence[str] | None = None
    render: Callable[[Any], Any] | None = None
    collate: Callable[[list[tuple[Any, Any]]], tuple[Any, Any]] | None = None
    padding_mask: Callable[[Any], torch.Tensor] | None = None
    classes: Sequence[str] | None = None
    task: Task = "auto"
    name: str | None = None
    _resolved_model: nn.Module | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.data, Mapping) or not self.data:
            raise ProjectError(
                "Project.data must be a non-empty dict of subsets, e.g. "
                '{"train": train_dataset, "val": val_dataset}.'
            )
        for subset, dataset in self.data.items():
            if not isinstance(subset, str) or not subset or "/" in subset:
                raise ProjectError(
                    f"Subset name {subset!r} is not usable: use a non-empty string without '/', "
                    'such as "train" or "val".'
                )
            if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
                raise ProjectError(
                    f"Subset {subset!r} is a {type(dataset).__name__}, which cannot be indexed: "
                    "pass a map-style data set (with __len__ and __getitem__), e.g. a "
                    "torch.utils.data.Dataset or a list."
                )
            if len(dataset) == 0:
                raise ProjectError(
                    f"Subset {subset!r} is empty: remove it from Project.data or give it samples."
                )
        if not callable(self.loss):
            raise ProjectError(
                "Project.loss must be a function (outputs, targets) -> Tensor[B], e.g. "
                "latentsight.losses.cross_entropy."
            )
        for option in ("collate", "padding_mask", "render"):
            value = getattr(self, option)
            if value is not None and not callable(value):
                raise ProjectError(
                    f"Project.{option} must be a function or None, got {type(value).__name__}: "
                    "see help(latentsight.Project) for what it is given and returns."
                )
        if self.classes is not None and (
            isinstance(self.classes, str)
            or not all(isinstance(name, str) and name for name in self.classes)
            or len(set(self.classes)) != len(self.classes)
        ):
            raise ProjectError(
                f"Project.classes must be a list of distinct, non-empty class names by class "
                f"index, e.g. ['cat', 'dog']; got {self.classes!r}."
            )
        if self.task not in TASKS:
            raise ProjectError(f"Project.task must be one of {TASKS}, got {self.task!r}.")
        if not isinstance(self.metrics, Mapping):
            raise ProjectError(
                f"Project.metrics must be a dict of name to latentsight.Metric, e.g. "
                f"{{'iou': latentsight.Metric(iou, better='higher')}}; got "
                f"{type(self.metrics).__name__}."
            )
        for metric_name, metric in self.metrics.items():
            if not isinstance(metric, Metric):
                raise ProjectError(
                    f"Metric {metric_name!r} must be wrapped as latentsight.Metric(fn, better="
                    "'higher' or 'lower') so later stages know which direction is failing."
                )
        if isinstance(self.layers, str):
            raise ProjectError(
                f"Project.layers must be a list of module names, got the string {self.layers!r}: "
                f"write layers=[{self.layers!r}]."
            )
        if self.metadata is not None and not (
            isinstance(self.metadata, pd.DataFrame) or callable(self.metadata)
        ):
            raise ProjectError(
                "Project.metadata must be a pandas DataFrame with an 'id' column, or a function "
                f"(subset, index) -> dict; got {type(self.metadata).__name__}."
            )

    def resolve_model(self) -> nn.Module:
        """The model as a module, calling the factory once if one was given."""
        if self._resolved_model is None:
            model = self.model
            if not isinstance(model, nn.Module):
                if not callable(model):
                    raise ProjectError(
                        f"Project.model must be a torch.nn.Module or a callable returning one, "
                        f"got {type(model).__name__}."
                    )
                model = call_without_arguments(
                    model, f"The model factory {getattr(model, '__qualname__', 'given')}"
                )
                if not isinstance(model, nn.Module):
                    raise ProjectError(
                        f"The model factory returned a {type(model).__name__}, not a "
                        "torch.nn.Module: make it return the model itself."
                    )
            self._resolved_model = model
        return self._resolved_model

    @property
    def display_name(self) -> str:
        """The project's name, or the model's class name when none was given."""
        if self.name:
            return self.name
        if isinstance(self.model, nn.Module):
            return type(self.model).__name__
        return getattr(self.model, "__name__", "project")
