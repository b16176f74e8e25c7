"""How a class reads wherever it is shown: its name, where the Project gave class names."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

CLASS_COLUMNS = ("target", "prediction", "suggested_label")
"""The samples and scores columns whose values are class indices (where the task has classes)."""


def class_label(index: Any, names: Mapping[int, str]) -> str:
    """``"circle"`` for a named class, ``"class 3"`` for an unnamed one."""
    try:
        key = int(index)
    except (TypeError, ValueError):
        return f"class {index}"
    return names.get(key, f"class {key}")


def class_name(value: Any, names: Mapping[int, str]) -> str | None:
    """The name of the class a scalar target or prediction holds, or None where it names none
    (no names, a vector, a fraction, a missing value), so that the value is shown as it is."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return names.get(int(number)) if number.is_integer() else None


def explained_target(target: str, names: Mapping[int, str]) -> str:
    """What an explanation explained, ``"class-3"`` read as its class's name where it has one."""
    kind, _, index = target.partition("-")
    if kind == "class" and index.isdigit():
        return names.get(int(index), target)
    return target


def label_set(labels: Any, names: Mapping[int, str]) -> str:
    """A multilabel sample's labels as text: ``"cat + bird"`` (``"label 2"`` unnamed), ``"none"``
    when no label is on, for values of at least 0.5 in a 0/1 vector."""
    on = [index for index, value in enumerate(labels) if value is not None and value >= 0.5]
    return " + ".join(names.get(index, f"label {index}") for index in on) or "none"
