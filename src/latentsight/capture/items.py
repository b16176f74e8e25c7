"""Reading the user's data set: one item becomes a ParsedItem, a list of them a Batch."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from latentsight.errors import ProjectError

ITEM_HELP = (
    "An item must be (input, target), (input,) or a bare input for unlabeled data, or a mapping "
    "with 'input' and optional 'target', 'metadata', 'id'."
)


@dataclass(slots=True)
class ParsedItem:
    """One sample as latentsight sees it: where it is, what goes in, and its label and metadata."""

    subset: str
    index: int
    id: str
    input: Any
    target: Any = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    has_target: bool = False


@dataclass
class FailedItem:
    """A sample whose loading raised: kept so that it can be quarantined with its error."""

    subset: str
    index: int
    id: str
    error: str


def default_id(subset: str, index: int) -> str:
    """The stable id of a sample the user gave no id for: its subset and position."""
    return f"{subset}/{index}"


def duplicate_ids_error(sample_id: str, places: list[str], more: int = 0) -> ProjectError:
    """The error for an id that several samples carry (``places``: their ``subset/index``)."""
    others = f" ({more} more ids are shared too)" if more else ""
    return ProjectError(
        f"Sample ids must be unique, but {sample_id!r} is the id of {' and '.join(places)}"
        f"{others}: runs, reports and the dashboard find samples by id. Give every item its own "
        "'id' (e.g. prefix the subset or the folder), or leave ids out for '<subset>/<index>'."
    )


def _where(subset: str, index: int) -> str:
    return f"item {index} of subset {subset!r}"


def parse_item(item: Any, subset: str, index: int) -> ParsedItem:
    """Normalise one raw item from a data set into a ParsedItem, or say what shape it should have."""
    if isinstance(item, (tuple, list)):  # the usual case first: it is the cheapest check
        if len(item) == 2:
            return ParsedItem(
                subset=subset,
                index=index,
                id=default_id(subset, index),
                input=item[0],
                target=item[1],
                has_target=item[1] is not None,
            )
        if len(item) == 1:
            return ParsedItem(subset, index, default_id(subset, index), item[0])
        raise ProjectError(
            f"{_where(subset, index)} is a sequence of {len(item)} elements. {ITEM_HELP} A "
            "sequence of token ids is one input: give it as a tensor, or as (ids,) or (ids, label)."
        )
    if isinstance(item, Mapping):
        where = _where(subset, index)
        if "input" not in item:
            raise ProjectError(f"{where} is a mapping without an 'input' key. {ITEM_HELP}")
        sample_id = item.get("id")
        metadata = item.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise ProjectError(
                f"{where} has 'metadata' of type {type(metadata).__name__}; "
                "it must be a mapping of column name to scalar."
            )
        return ParsedItem(
            subset=subset,
            index=index,
            id=default_id(subset, index) if sample_id is None else str(sample_id),
            input=item["input"],
            target=item.get("target"),
            metadata=metadata,
            has_target=item.get("target") is not None,
        )
    if isinstance(item, (torch.Tensor, np.ndarray)):
        return ParsedItem(subset, index, default_id(subset, index), item)
    raise ProjectError(f"{_where(subset, index)} is a {type(item).__name__}. {ITEM_HELP}")


def load_item(dataset: Any, subset: str, index: int) -> ParsedItem | FailedItem:
    """Fetch and parse one item; a data set that raises gives a FailedItem instead of a crash."""
    try:
        raw = dataset[index]
    except Exception as error:
        return FailedItem(subset, index, default_id(subset, index), f"loading: {error!r}")
    return parse_item(raw, subset, index)


@dataclass
class Batch:
    """Parsed items collated for the model; ``targets`` is None for unlabeled data."""

    items: list[ParsedItem]
    inputs: Any
    targets: Any

    @property
    def ids(self) -> list[str]:
        """The sample ids, in batch order."""
        return [item.id for item in self.items]


Collate = Callable[[list[tuple[Any, Any]]], tuple[Any, Any]]


def _default_collate(pairs: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    inputs = default_collate([pair[0] for pair in pairs])
    targets = None if pairs[0][1] is None else default_collate([pair[1] for pair in pairs])
    return inputs, targets


def collate(items: Sequence[ParsedItem], user_collate: Collate | None) -> Batch:
    """Collate parsed items with the user's function or the default stacking."""
    pairs = [(item.input, item.target) for item in items]
    if user_collate is None:
        return Batch(list(items), *_default_collate(pairs))
    collated = user_collate(pairs)
    if not isinstance(collated, (tuple, list)) or len(collated) != 2:
        shown = (
            f"a dict with keys {list(collated)[:6]}"
            if isinstance(collated, Mapping)
            else f"a {type(collated).__name__}"
            + (f" of {len(collated)}" if isinstance(collated, (tuple, list)) else "")
        )
        raise ProjectError(
            f"Project.collate returned {shown}: it is given a list of (input, target) pairs "
            "(target None for unlabeled items) and must return the pair (inputs, targets), "
            "inputs as the model takes them (a mapping is passed as keyword arguments) and "
            "targets None for unlabeled items."
        )
    inputs, targets = collated
    if isinstance(inputs, torch.Tensor) and (inputs.dim() == 0 or inputs.shape[0] != len(items)):
        raise ProjectError(
            f"Project.collate returned inputs of shape {tuple(inputs.shape)} for {len(items)} "
            "items: it must keep every item it is given, in order, batch first (each row of the "
            "outputs is stored as the sample at that position)."
        )
    return Batch(list(items), inputs, targets)


def to_device(value: Any, device: torch.device) -> Any:
    """Move every tensor inside nested tuples, lists and dicts to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, Mapping):
        return {key: to_device(inner, device) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(inner, device) for inner in value)
    return value
