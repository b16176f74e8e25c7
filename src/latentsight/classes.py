"""How a class reads wherever it is shown: its name, where the Project gave class names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def class_label(index: Any, names: Mapping[int, str]) -> str:
    """``"circle"`` for a named class, ``"class 3"`` for an unnamed one."""
    try:
        key = int(index)
    except (TypeError, ValueError):
        return f"class {index}"
    return names.get(key, f"class {key}")
