"""The model behind a run, made ready to explain: attached Project, device, layers, inputs by id."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from latentsight.capture.forward import call_model
from latentsight.capture.items import FailedItem, collate, load_item, to_device
from latentsight.capture.plan import resolve_device
from latentsight.errors import ExplanationError, NotRecordedError
from latentsight.render import default_render, render_batch

if TYPE_CHECKING:
    from latentsight.store.run import Run

NO_MODEL_HELP = (
    "this run has no model attached. Attach the Project it was captured from: "
    "latentsight.open_run(path, project=project) (or run.attach(project)); from the command line, "
    "pass --project module:project."
)


def sample_ids(ids: str | Sequence[str]) -> list[str]:
    """Normalise one id or a sequence of ids to a non-empty list of strings."""
    listed = [ids] if isinstance(ids, str) else list(ids)
    if not listed:
        raise ExplanationError("No sample ids given: pass one id or a list, e.g. ['val/0'].")
    return [str(sample_id) for sample_id in listed]


def sample_rows(run: Run, ids: Sequence[str]) -> pd.DataFrame:
    """The run's rows of these samples, in the order asked, or an error naming the unknown ids."""
    samples = run.samples.set_index("id", drop=False)
    missing = [sample_id for sample_id in ids if sample_id not in samples.index]
    if missing:
        quarantined = set(run.quarantine["id"]) & set(missing)
        why = (
            f" ({len(quarantined)} of them were quarantined during capture)" if quarantined else ""
        )
        raise NotRecordedError(
            f"{len(missing)} sample id(s) are not in this run{why}, e.g. {missing[:3]}; ids look "
            f"like {list(samples.index[:3])}: take them from run.samples['id']."
        )
    return samples.loc[list(ids)].reset_index(drop=True)


def spatial_modules(model: nn.Module) -> list[str]:
    """Names of the model's 2-D convolutions, in definition order."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


@contextmanager
def no_inplace(model: nn.Module) -> Iterator[None]:
    """Turn off in-place activations while gradients flow (hooks need the tensors intact)."""
    switched = [module for module in model.modules() if getattr(module, "inplace", False) is True]
    for module in switched:
        module.inplace = False
    try:
        yield
    finally:
        for module in switched:
            module.inplace = True


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """No gradients for the model's parameters while inputs are optimised (restored after)."""
    parameters = list(model.parameters())
    needed = [parameter.requires_grad for parameter in parameters]
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(parameters, needed, strict=True):
            parameter.requires_grad_(flag)


class ModelSession:
    """A run's attached model on its device, with access to inputs and layers by name."""

    def __init__(self, run: Run, device: str | torch.device | None = None) -> None:
        project = run.project
        if project is None:
            raise ExplanationError("This needs the model, and " + NO_MODEL_HELP)
        self.run = run
        self.project = project
        self.device = resolve_device(device)
        self.model = project.resolve_model().to(self.device).eval()

    @property
    def n_classes(self) -> int | None:
        """Classes of a classification run, else None."""
        return self.run.manifest.get("n_classes")

    def module(self, layer: str) -> nn.Module:
        """The module named ``layer``, or an error listing near names."""
        modules = dict(self.model.named_modules())
        if layer in modules and layer:
            return modules[layer]
        near = difflib.get_close_matches(layer, [name for name in modules if name], n=5)
        hint = f" Near names: {', '.join(near)}." if near else ""
        raise ExplanationError(
            f"Layer {layer!r} is not a module of {type(self.model).__name__}.{hint} Layer names "
            "come from dict(model.named_modules())."
        )

    def inputs(self, rows: pd.DataFrame, *, images: bool = True) -> Any:
        """The model inputs of these samples as one batch on the device: image tensors only, or
        with ``images=False`` whatever the model takes (e.g. for a pass that patches a layer)."""
        items = []
        for sample_id, subset, index in zip(rows["id"], rows["subset"], rows["index"], strict=True):
            if subset not in self.project.data:
                raise ExplanationError(
                    f"Sample {sample_id!r} is in subset {subset!r}, which the attached Project "
                    f"does not have (it has {list(self.project.data)}): attach the Project the "
                    "run was captured from."
                )
            item = load_item(self.project.data[subset], subset, int(index))
            if isinstance(item, FailedItem):
                raise ExplanationError(f"Loading {sample_id!r} failed: {item.error}.")
            if item.id != sample_id:
                raise ExplanationError(
                    f"Item {index} of subset {subset!r} now has id {item.id!r}, but the run "
                    f"recorded {sample_id!r} there: the data set changed since the capture; "
                    "attach the data the run was captured from."
                )
            items.append(item)
        batch = collate(items, self.project.collate).inputs
        if not images:
            return to_device(batch, self.device)
        if not isinstance(batch, torch.Tensor) or batch.dim() != 4:
            shape = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
            raise ExplanationError(
                f"Explanations need image inputs, a batch of shape (N, C, H, W); this Project's "
                f"inputs collate to {shape}. Their maps are drawn over the image, so tabular rows "
                "and token ids are not explained (see docs/explanations.md)."
            )
        return to_device(batch, self.device).float()

    def spread_inputs(self, count: int) -> torch.Tensor:
        """Up to ``count`` inputs spread evenly over the run (for statistics of the data)."""
        samples = self.run.samples
        positions = np.unique(np.linspace(0, len(samples) - 1, min(len(samples), count)))
        return self.inputs(samples.iloc[positions.astype(int)])

    def images(self, inputs: torch.Tensor) -> np.ndarray:
        """How the inputs look, ``N x H x W x 3`` uint8, drawn by the Project's render (or, by
        default, as :func:`latentsight.render.default_render` draws them, for the whole batch)."""
        if self.project.render is not None:
            pictures = []
            for value in inputs.detach().cpu():
                drawn = self.project.render(value)
                drawn = drawn if hasattr(drawn, "convert") else default_render(np.asarray(drawn))
                pictures.append(np.asarray(drawn.convert("RGB")))
            return np.stack(pictures)
        pixels = render_batch(inputs[:, :3] if inputs.shape[1] >= 3 else inputs[:, :1])
        return pixels if pixels.shape[3] == 3 else np.repeat(pixels, 3, axis=3)

    def predict(self, inputs: torch.Tensor) -> np.ndarray:
        """The predicted class of each input (arg-max of the outputs)."""
        with torch.inference_mode():
            outputs = call_model(self.model, inputs)
        if not isinstance(outputs, torch.Tensor) or outputs.dim() != 2:
            raise ExplanationError(
                "target='predicted' needs outputs of shape (B, classes); for other outputs give "
                "a function target=lambda outputs: ... returning one score per sample."
            )
        return outputs.argmax(1).cpu().numpy()

    @cached_property
    def input_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one input."""
        rows = self.run.samples.iloc[:1]
        return tuple(self.inputs(rows).shape[1:])

    def layer_outputs(self, inputs: torch.Tensor, layers: Sequence[str]) -> dict[str, Any]:
        """One forward pass keeping each named layer's last output."""
        seen: dict[str, torch.Tensor] = {}
        handles = []
        for layer in layers:

            def keep(_module: nn.Module, _inputs: Any, output: Any, layer: str = layer) -> None:
                seen[layer] = output

            handles.append(self.module(layer).register_forward_hook(keep))
        try:
            with torch.inference_mode(), no_inplace(self.model):
                call_model(self.model, inputs)
        finally:
            for handle in handles:
                handle.remove()
        return seen
