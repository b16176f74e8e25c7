"""Concept importance through a linear head, in closed form.

A head reading the layer computes ``logit_c = w_c . a + b_c``. With ``a = u W + r`` (the
dictionary's reconstruction plus the residual it leaves), the logit splits exactly into one
term per concept, ``phi_i = u_i (W_i . w_c)``, the residual's ``r . w_c`` and the bias: the
terms sum to the logit the model computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from latentsight.discovery.errors import DiscoveryError
from latentsight.discovery.sobol import linear_total

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class LinearHead:
    """The weights (C x D) and bias (C) of the ``nn.Linear`` that reads a layer."""

    name: str
    weight: np.ndarray
    bias: np.ndarray

    def logits(self, latents: np.ndarray) -> np.ndarray:
        """``a W^T + b`` in float64."""
        return np.asarray(latents, dtype=np.float64) @ self.weight.T + self.bias


def find_linear_head(model: nn.Module, layer: str, dim: int) -> LinearHead | str:
    """The linear head that reads ``layer`` (recorded as ``"<module>:input"``), or why not."""
    from torch import nn

    if not layer.endswith(":input"):
        return (
            f"layer {layer!r} is not the input of a module; record the input of the linear head "
            "(e.g. 'fc:input') to get exact importance"
        )
    name = layer.removesuffix(":input")
    module = dict(model.named_modules()).get(name)
    if not isinstance(module, nn.Linear):
        return (
            f"module {name!r} is {type(module).__name__}, not nn.Linear: importance goes "
            "through the model (gradient x input by default)"
        )
    if module.in_features != dim:
        return (
            f"module {name!r} reads {module.in_features} values but the stored view of "
            f"{layer!r} has {dim} (a random projection?); capture it without projection"
        )
    weight = module.weight.detach().cpu().double().numpy()
    bias = (
        module.bias.detach().cpu().double().numpy()
        if module.bias is not None
        else np.zeros(weight.shape[0])
    )
    return LinearHead(name, weight, bias)


def concept_contributions(
    codes: np.ndarray, components: np.ndarray, direction: np.ndarray
) -> np.ndarray:
    """``phi`` (N x k): each concept's share of ``a . direction`` (a class's weight row)."""
    return np.asarray(codes, dtype=np.float64) * (components @ np.asarray(direction, np.float64))


@dataclass(frozen=True)
class Decomposition:
    """A class logit split into concept terms, the residual's term and the bias."""

    phi: np.ndarray  # N x k
    residual: np.ndarray  # N
    bias: float

    @property
    def logit(self) -> np.ndarray:
        """The sum of the parts: the model's logit."""
        return self.phi.sum(axis=1) + self.residual + self.bias


def decompose_logit(
    latents: np.ndarray, codes: np.ndarray, components: np.ndarray, head: LinearHead, label: int
) -> Decomposition:
    """Split class ``label``'s logit of each sample into concept terms, residual and bias."""
    if not 0 <= label < head.weight.shape[0]:
        raise DiscoveryError(
            f"Class {label} is not an output of head {head.name!r} ({head.weight.shape[0]} "
            "outputs)."
        )
    latents = np.asarray(latents, dtype=np.float64)
    direction = head.weight[label]
    residual = (latents - codes @ components) @ direction
    return Decomposition(
        concept_contributions(codes, components, direction), residual, float(head.bias[label])
    )


def linear_attributions(
    codes: np.ndarray, components: np.ndarray, head: LinearHead, labels: np.ndarray, method: str
) -> np.ndarray:
    """Each sample's concept attribution (N x k) for class ``labels[n]`` in closed form: ``phi``
    (what gradient x input and occlusion equal for a linear head) or, for ``"sobol"``, the
    total indices ``phi_i^2 / sum_j phi_j^2``."""
    projections = (head.weight @ components.T)[np.asarray(labels, dtype=int)]  # N x k
    if method == "sobol":
        return linear_total(codes, projections)
    return np.asarray(codes, dtype=np.float64) * projections
