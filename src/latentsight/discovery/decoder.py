"""The concept decoder: the model's output as a function of concept codes at one layer.

At the layer the model computes ``a``; with codes ``U`` (per position for a feature map) over
the dictionary ``W`` and the residual ``R = a - U W``, a forward hook substitutes
``(U * m) W + R`` for ``a``, so masks ``m = 1`` reproduce the model exactly. The hook turns a
batch of B samples into B x M rows (one per sample and mask), so the part of the model before
the layer runs once per sample and the head once over all (sample, mask) pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from latentsight.capture.forward import call_model
from latentsight.capture.layers import (
    LayerRef,
    first_tensor,
    in_signature_order,
    no_tensor_message,
    with_first_tensor,
)
from latentsight.discovery.errors import DiscoveryError
from latentsight.discovery.positions import position_codes


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """No gradients for the parameters (only the masks need them), restored afterwards."""
    params = [p for p in model.parameters() if p.requires_grad]
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in params:
            param.requires_grad_(True)


class ConceptDecoder:
    """``head((U * m) W + R)`` for one layer of ``model`` and a dictionary ``components`` (k x D).

    ``layer`` is a module name, or ``"<module>:input"`` for what enters the module.
    """

    def __init__(self, model: nn.Module, layer: str, components: np.ndarray) -> None:
        self.model = model
        self.ref = LayerRef.parse(layer)
        modules = dict(model.named_modules())
        if self.ref.module_name not in modules:
            raise DiscoveryError(
                f"Layer {layer!r} is not a module of {type(model).__name__}: name the layer the "
                "concepts were discovered in."
            )
        self.module = modules[self.ref.module_name]
        self.components = np.asarray(components, dtype=np.float64)
        self.k = self.components.shape[0]
        self.folded = (
            self.ref.point == "input"
            and isinstance(self.module, nn.Linear)
            and self.module.in_features == self.components.shape[1]
        )
        # the substituted directions: W, or W A^T at the output of a linear module reading
        # the layer (A (U W + R) + b = U (W A^T) + (A a + b - U W A^T): the same decoder, and
        # the head's first product costs k instead of D per (sample, mask))
        self._at = (
            self.components @ self.module.weight.detach().cpu().double().numpy().T
            if self.folded
            else self.components
        )

    def _substitute(self, live: torch.Tensor, codes: torch.Tensor, masks: torch.Tensor) -> Any:
        """``(U * m) W + R`` for every (sample, mask): B x M rows shaped like ``live``'s."""
        batch, n_masks = masks.shape[:2]
        if live.dim() not in (2, 4) or live.shape[1] != self._at.shape[1]:
            raise DiscoveryError(
                f"Layer {self.ref.name!r} computes {tuple(live.shape)}, but the dictionary has "
                f"{self.components.shape[1]} dimensions: discover the concepts on a view of "
                "that layer stored without projection (the mean of a map, or a vector)."
            )
        components = torch.as_tensor(self._at, dtype=torch.float64, device=live.device)
        flat = (
            live.double().flatten(2).transpose(1, 2) if live.dim() == 4 else live.double()[:, None]
        )
        per_position = position_codes(flat, components, codes)  # B x P x k
        residual = flat - per_position @ components
        # row (b, m) is R_b + sum_i m_bmi (U_b,i W_i): one batched product per sample
        scaled = per_position.transpose(1, 2)[..., None] * components[None, :, None, :]
        rows = torch.baddbmm(
            residual.reshape(batch, 1, -1).to(live.dtype),
            masks.to(live.dtype),
            scaled.reshape(batch, self.k, -1).to(live.dtype),
        ).reshape(batch, n_masks, *flat.shape[1:])
        if live.dim() == 2:
            return rows.reshape(batch * n_masks, -1)
        return rows.transpose(2, 3).reshape(batch * n_masks, *live.shape[1:])

    def scores(
        self, inputs: Any, codes: np.ndarray, masks: torch.Tensor, labels: np.ndarray
    ) -> torch.Tensor:
        """Class ``labels[b]``'s output for every sample b and mask (``masks``: B x M x k)."""
        codes_t = torch.as_tensor(np.asarray(codes), dtype=torch.float64)

        def replace(live: torch.Tensor) -> Any:
            if live.shape[0] != masks.shape[0]:
                raise DiscoveryError(
                    f"Layer {self.ref.name!r} saw a batch of {live.shape[0]} for "
                    f"{masks.shape[0]} samples: the decoder needs a layer the whole batch "
                    "passes through once."
                )
            device = live.device
            return self._substitute(live.detach(), codes_t.to(device), masks.to(device))

        if self.ref.point == "input" and not self.folded:

            def hook(_module: nn.Module, args: tuple, kwargs: dict) -> tuple:
                swapped, found = with_first_tensor(args, replace)
                if found:
                    return swapped, kwargs
                swapped, found = with_first_tensor(in_signature_order(self.module, kwargs), replace)
                if not found:
                    raise DiscoveryError(no_tensor_message(self.ref))
                return args, swapped

            handle = self.module.register_forward_pre_hook(hook, with_kwargs=True)
        else:

            def hook(_module: nn.Module, _args: tuple, output: Any) -> Any:  # type: ignore[misc]
                swapped, found = with_first_tensor(output, replace)
                if not found:
                    raise DiscoveryError(no_tensor_message(self.ref))
                return swapped

            handle = self.module.register_forward_hook(hook)
        try:
            with frozen(self.model):
                outputs = first_tensor(call_model(self.model, inputs))
        finally:
            handle.remove()
        if outputs is None or outputs.dim() != 2:
            raise DiscoveryError(
                "Concept importance needs outputs of shape (B, classes) to read a class score."
            )
        outputs = outputs.reshape(masks.shape[0], masks.shape[1], -1)
        index = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=outputs.device)
        return outputs.gather(2, index[:, None, None].expand(-1, masks.shape[1], 1))[..., 0]
