"""Forward hooks that pool each chosen layer's activations as the model runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from latentsight.capture.layers import (
    LayerRef,
    check_batch_first,
    hook_layer,
    layer_tensor,
    ran_again_error,
)
from latentsight.capture.pooling import LayerPooler
from latentsight.errors import ProjectError


class LayerRecorder:
    """Collects ``{layer: {view: B x D}}`` per forward pass; hooks live only inside ``attach``.

    Capture attaches the hooks once around the whole pass: registering them for every batch
    costs more than pooling a small layer. The activations of ``deferred`` layers, which the
    model never changes in place after the hook, are kept and pooled once the forward pass is
    over: on CPU, pooling between two layers' operations costs several times what it costs
    after them (the intra-op threads go idle and must be woken for the next operation). Which
    layers the model changes in place is read from the check batch: a model that changes an
    activation in place on some batches only (or through ``.data``) must record another layer.
    """

    def __init__(
        self,
        model: nn.Module,
        poolers: dict[LayerRef, LayerPooler],
        deferred: frozenset[LayerRef] = frozenset(),
    ) -> None:
        self.model = model
        self.poolers = poolers
        self.deferred = deferred
        modules = dict(model.named_modules())
        self.modules = {ref: modules[ref.module_name] for ref in poolers}
        self.pooled: dict[str, dict[str, torch.Tensor]] = {}
        self.kept: dict[LayerRef, torch.Tensor] = {}
        self.batch_size = 0
        self.mask: torch.Tensor | None = None

    def _record(self, ref: LayerRef, value: Any) -> None:
        activation = layer_tensor(ref, value)
        if ref in self.kept or ref.name in self.pooled:
            raise ran_again_error(ref)
        check_batch_first(ref, activation, self.batch_size)
        if ref in self.deferred:
            self.kept[ref] = activation
        else:
            self.pooled[ref.name] = self.poolers[ref](activation, self.mask)

    @contextmanager
    def attach(self) -> Iterator[LayerRecorder]:
        """Register the hooks for the duration of the block and always remove them after."""
        handles = []
        try:
            for ref, module in self.modules.items():
                handles.append(
                    hook_layer(module, ref, lambda value, ref=ref: self._record(ref, value))
                )
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def start(self, batch_size: int, mask: torch.Tensor | None) -> None:
        """Begin a forward pass over ``batch_size`` samples: forget what an earlier (possibly
        failed) one recorded, and pool masked sequence layers over ``mask``, the batch's real
        positions."""
        self.pooled = {}
        self.kept = {}
        self.batch_size = batch_size
        self.mask = mask

    def take(self) -> dict[str, dict[str, torch.Tensor]]:
        """The pooled views of the last forward pass, checking that every layer ran."""
        for ref, activation in self.kept.items():
            self.pooled[ref.name] = self.poolers[ref](activation, self.mask)
        self.kept = {}
        missing = [ref.name for ref in self.poolers if ref.name not in self.pooled]
        if missing:
            raise ProjectError(
                f"Layers {missing} did not run during the forward pass: choose modules that the "
                "model's forward() actually calls."
            )
        pooled, self.pooled = self.pooled, {}
        return pooled
