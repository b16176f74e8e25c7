"""The attribution methods by name, without torch or Captum: the registered names, the short
names users may type for them, and how each method's maps read.

One table for every surface: ``run.explain`` and the CLI resolve names here (through
:func:`latentsight.explain.attribution.method_class`), and the readers of cached maps (the
report, the dashboard) read a map's sign here, so that they never import Captum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from latentsight.errors import ExplanationError


@dataclass(frozen=True)
class MethodKind:
    """What a method's maps are: ``signed`` maps keep their sign (unsigned ones are magnitudes);
    ``layered`` methods attribute to a layer's positions instead of the input pixels."""

    signed: bool = True
    layered: bool = False


KINDS: dict[str, MethodKind] = {
    "saliency": MethodKind(signed=False),
    "input_x_gradient": MethodKind(),
    "integrated_gradients": MethodKind(),
    "smoothgrad": MethodKind(signed=False),
    "gradient_shap": MethodKind(),
    "occlusion": MethodKind(),
    "gradcam": MethodKind(signed=False, layered=True),
    "layercam": MethodKind(signed=False, layered=True),
}
ALIASES = {"ig": "integrated_gradients", "grad_cam": "gradcam", "layer_cam": "layercam"}


def method_name(name: str) -> str:
    """The registered name of a method given by any of its spellings (case, dashes and the
    short names in :data:`ALIASES` ignored), or an error listing the methods."""
    key = str(name).lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in KINDS:
        short = ", ".join(f"'{alias}' for {full}" for alias, full in ALIASES.items())
        raise ExplanationError(
            f"Unknown explanation method {name!r}: choose one of {', '.join(KINDS)} ({short})."
        )
    return key


def map_sign(method: str) -> Literal["absolute", "positive"]:
    """How overlays read a method's maps: signed ones by magnitude (``"absolute"``), unsigned
    ones as they are (``"positive"``); an unknown method's maps by magnitude, the safe reading."""
    kind = KINDS.get(method)
    return "absolute" if kind is None or kind.signed else "positive"
