"""The attached model of a run, ready to decode one layer's concepts: inputs by sample row, a
decoder per dictionary, attributions and scores under concept masks."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from latentsight.capture.forward import call_model
from latentsight.capture.layers import LayerRef, first_tensor, hook_layer
from latentsight.discovery.attribution import (
    ROW_BUDGET,
    AttributionSettings,
    concept_attributions,
    masked_scores,
)
from latentsight.discovery.decoder import ConceptDecoder
from latentsight.discovery.errors import DiscoveryError
from latentsight.errors import ExplanationError

if TYPE_CHECKING:
    from latentsight.discovery.result import Bank, ConceptBank
    from latentsight.store.run import Run

NO_MODEL = (
    "{what} needs the model: attach the Project the run was captured from with "
    "run.attach(project) (or latentsight.open_run(path, project=project); on the command line, "
    "--project module:project)"
)


def probe(
    model: nn.Module, inputs: Any, layer: str
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward pass: the tensor at ``layer`` and every module's output, in execution order."""
    ref = LayerRef.parse(layer)
    seen: dict[str, torch.Tensor] = {}
    at: list[torch.Tensor] = []
    handles = []

    def keep_at(value: Any) -> None:
        tensor = first_tensor(value)
        if tensor is not None:
            at.append(tensor.detach())

    for name, module in model.named_modules():
        if not name:
            continue
        if name == ref.module_name:
            handles.append(hook_layer(module, ref, keep_at))

        def keep(_m: nn.Module, _args: tuple, output: Any, name: str = name) -> None:
            if isinstance(output, torch.Tensor):
                seen[name] = output.detach().clone()

        handles.append(module.register_forward_hook(keep))
    try:
        with torch.no_grad():
            call_model(model, inputs)
    finally:
        for handle in handles:
            handle.remove()
    if not at:
        raise DiscoveryError(f"Layer {layer!r} did not run in the model's forward pass.")
    return at[0], seen


class ConceptModel:
    """A run's model for the concepts of ``layer``; ``samples`` are the ConceptBank's rows."""

    def __init__(self, run: Run, layer: str, samples: pd.DataFrame, what: str) -> None:
        from latentsight.explain.session import ModelSession

        if run.project is None:
            raise DiscoveryError(NO_MODEL.format(what=what) + ".")
        try:
            self.session = ModelSession(run)
        except ExplanationError as error:
            raise DiscoveryError(f"{what}: {error}") from error
        self.layer = layer
        self.samples = samples
        self._decoders: dict[int, ConceptDecoder] = {}

    @property
    def model(self) -> nn.Module:
        """The model, in eval mode on its device."""
        return self.session.model

    def inputs(self, rows: np.ndarray, *, images: bool = False) -> Any:
        """The model inputs of these rows of the bank's samples (image tensors only, if asked)."""
        try:
            return self.session.inputs(self.samples.iloc[np.asarray(rows)], images=images)
        except ExplanationError as error:
            raise DiscoveryError(str(error)) from error

    @cached_property
    def width(self) -> int:
        """Values of the layer per sample (positions x dimensions), to size the batches."""
        live, _ = probe(self.model, self.inputs(np.arange(1)), self.layer)
        return int(live[0].numel())

    def decoder(self, bank: Bank) -> ConceptDecoder:
        """The decoder of a bank's dictionary at the layer."""
        if bank.first not in self._decoders:
            self._decoders[bank.first] = ConceptDecoder(
                self.model, self.layer, bank.dictionary.components
            )
        return self._decoders[bank.first]

    def attributions(
        self,
        bank: Bank,
        rows: np.ndarray,
        labels: np.ndarray,
        method: str,
        settings: AttributionSettings | None = None,
    ) -> np.ndarray:
        """Attributions (len(rows) x k) of the class scores to the bank's concepts."""
        rows = np.asarray(rows)
        return concept_attributions(
            self.decoder(bank),
            lambda idx: self.inputs(rows[idx]),
            bank.codes[rows],
            labels,
            method,
            settings,
            width=self.width,
        )

    def scores(
        self, bank: Bank, rows: np.ndarray, labels: np.ndarray, masks: np.ndarray
    ) -> np.ndarray:
        """Class scores (len(rows) x M) under concept masks (M x k, or len(rows) x M x k)."""
        rows = np.asarray(rows)
        width = self.width * masks.shape[-2]
        return masked_scores(
            self.decoder(bank),
            lambda idx: self.inputs(rows[idx]),
            bank.codes[rows],
            np.asarray(labels, dtype=int),
            masks,
            batch_size=max(1, ROW_BUDGET // width),
        )


def fill_table_importance(concepts: ConceptBank) -> None:
    """The table's importance through the model (gradient x input) where no linear head reads
    the layer; what stops it becomes a note."""
    predictions = concepts.samples["prediction"].to_numpy()
    try:
        for bank in concepts.banks:
            labels = (
                np.full(len(bank.rows), bank.label)
                if bank.label is not None
                else predictions[bank.rows].astype(int)
            )
            phi = concepts.attributions(bank, bank.rows, labels, "gradient")
            where = concepts.table["concept"].between(
                bank.first, bank.first + bank.dictionary.k - 1
            )
            concepts.table.loc[where, "importance"] = np.abs(phi).mean(axis=0)
            concepts.table.loc[where, "signed_importance"] = phi.mean(axis=0)
    except DiscoveryError as error:
        concepts.notes.append(f"no importance through the model: {error}")
        return
    concepts.notes.append("importance: gradient x input through the model")
