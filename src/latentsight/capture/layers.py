"""Choosing layers by module name, and the default choice when the user names none."""

from __future__ import annotations

import copy
import difflib
import inspect
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from latentsight.errors import ProjectError

INPUT_SUFFIX = ":input"
Point = Literal["output", "input"]


@dataclass(frozen=True)
class LayerRef:
    """A place in the model to record: a module's output, or (``name:input``) what enters it."""

    name: str
    module_name: str
    point: Point

    @classmethod
    def parse(cls, name: str) -> LayerRef:
        """Split ``"fc:input"`` into module ``"fc"`` and point ``"input"``."""
        if name.endswith(INPUT_SUFFIX):
            return cls(name, name[: -len(INPUT_SUFFIX)], "input")
        return cls(name, name, "output")


def resolve_layers(model: nn.Module, names: Sequence[str]) -> list[LayerRef]:
    """Check that every named layer exists in the model, listing near names when one does not."""
    modules = dict(model.named_modules())
    refs: list[LayerRef] = []
    for name in names:
        if not isinstance(name, str):
            known = [key for key, module in modules.items() if module is name]
            hint = f": this module is named {known[0]!r}" if known else ""
            raise ProjectError(
                f"Layer names must be strings (from dict(model.named_modules())), got "
                f"{type(name).__name__}{hint}."
            )
        ref = LayerRef.parse(name)
        if not ref.module_name:
            raise ProjectError(
                f"Layer {name!r} names the whole model, not a module inside it (its outputs are "
                "stored already, as predictions and probabilities): name a module from "
                "dict(model.named_modules()), such as the input of the last linear layer."
            )
        module, colon, point = name.rpartition(":")
        if ref.module_name not in modules and colon and module in modules:
            raise ProjectError(
                f"Layer {name!r}: {module!r} is a module, but ':{point}' is not a point of it. "
                f"Write {module!r} for what leaves it or {module + INPUT_SUFFIX!r} for what "
                "enters it."
            )
        if ref.module_name not in modules:
            candidates = [n for n in modules if n]
            near = difflib.get_close_matches(ref.module_name, candidates, n=5, cutoff=0.4)
            if near:
                hint = f" Near names: {', '.join(near)}."
            else:
                shown = ", ".join(candidates[:12]) + (", ..." if len(candidates) > 12 else "")
                hint = f" Its modules: {shown}."
            raise ProjectError(
                f"Layer {name!r} is not a module of {type(model).__name__}.{hint} "
                "Layer names come from dict(model.named_modules()); append ':input' to record "
                "what enters a module."
            )
        if ref in refs:
            raise ProjectError(f"Layer {name!r} is listed twice in Project.layers: list it once.")
        refs.append(ref)
    return refs


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor in a module's output or input (modules may return tuples or dicts)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for inner in value:
            found = first_tensor(inner)
            if found is not None:
                return found
    return None


def with_first_tensor(value: Any, replace: Callable[[torch.Tensor], Any]) -> tuple[Any, bool]:
    """``value`` with its first tensor (the one :func:`first_tensor` finds) swapped for
    ``replace(tensor)``, and whether it held one; tuples, named tuples, lists and mappings keep
    their type and their other entries, so the code after a hook reads the value as it would."""
    if isinstance(value, torch.Tensor):
        return replace(value), True
    if isinstance(value, dict):
        for key, inner in value.items():
            swapped, found = with_first_tensor(inner, replace)
            if found:
                rebuilt = copy.copy(value)
                rebuilt[key] = swapped
                return rebuilt, True
    elif isinstance(value, (list, tuple)):
        for position, inner in enumerate(value):
            swapped, found = with_first_tensor(inner, replace)
            if found:
                entries = [*value[:position], swapped, *value[position + 1 :]]
                if hasattr(value, "_make"):  # a named tuple
                    return value._make(entries), True
                return type(value)(entries), True
    return value, False


def hook_layer(
    module: nn.Module, ref: LayerRef, receive: Callable[[Any], None]
) -> torch.utils.hooks.RemovableHandle:
    """Hand ``receive`` what the layer records each time its module runs: the output, or with
    ':input' the positional then the keyword arguments (a module called with keywords only, as
    Hugging Face blocks are, is seen too)."""
    if ref.point == "input":
        return module.register_forward_pre_hook(
            lambda _m, args, kwargs: receive((args, in_signature_order(module, kwargs))),
            with_kwargs=True,
        )
    return module.register_forward_hook(lambda _m, _i, output: receive(output))


def in_signature_order(module: nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments in the order ``forward`` declares them, not the order of the call, so
    that ``block(mask=m, hidden_states=h)`` records ``hidden_states`` when it comes first."""
    if len(kwargs) < 2:
        return kwargs
    try:
        order = list(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):  # a forward with no signature to read (scripted, built in)
        return kwargs
    return dict(
        sorted(
            kwargs.items(),
            key=lambda item: order.index(item[0]) if item[0] in order else len(order),
        )
    )


def layer_tensor(ref: LayerRef, value: Any) -> torch.Tensor:
    """The activation a layer records: the first tensor of what :func:`hook_layer` handed on."""
    tensor = first_tensor(value)
    if tensor is None:
        raise ProjectError(no_tensor_message(ref))
    if tensor.is_nested:
        raise ProjectError(
            f"Layer {ref.name!r} gives a nested tensor (one length per sample), as the layers "
            "inside an nn.TransformerEncoder do in eval mode with a padding mask (PyTorch's "
            "fast path): record the encoder itself, whose output is padded again, or build it "
            "with nn.TransformerEncoder(..., enable_nested_tensor=False) to record its layers."
        )
    return tensor


def no_tensor_message(ref: LayerRef) -> str:
    """Why a layer whose module's output (or input) holds no tensor cannot be used."""
    what = "its module's arguments hold" if ref.point == "input" else "its module returned"
    return (
        f"Layer {ref.name!r} has no tensor to record ({what} none): choose a layer whose "
        "output (or, with ':input', whose input) is a tensor."
    )


def check_batch_first(ref: LayerRef, activation: torch.Tensor, batch_size: int) -> None:
    """Refuse an activation that does not hold one row per sample of the batch, batch first."""
    if activation.dim() == 0 or activation.shape[0] != batch_size:
        raise ProjectError(
            f"Layer {ref.name!r} gave an activation of shape {tuple(activation.shape)} for a "
            f"batch of {batch_size} samples: latentsight pools one row per sample, so the "
            "activation must have the batch first. A sequence-first module (nn.GRU, nn.LSTM or "
            "a transformer layer without batch_first=True) or one the model calls on part of the "
            "batch (each image alone) cannot be recorded: choose a module that runs on the whole "
            "batch, batch first."
        )


def ran_again_error(ref: LayerRef) -> ProjectError:
    """The error for a layer whose module ran twice in one forward pass."""
    return ProjectError(
        f"Layer {ref.name!r} ran more than once in one forward pass (the model calls its module "
        "several times: once per image, per time step or in two branches), so its activations "
        "cannot be told apart: choose a module that runs once per batch."
    )


def default_layers(model: nn.Module, forward: Callable[[], Any], batch_size: int) -> list[LayerRef]:
    """Pick the last spatial feature map (the last convolutional block) and the classifier's input.

    Runs ``forward`` once with a hook on every module to see, in execution order, which modules
    produce spatial maps and which Linear module runs last; a module that runs more than once or
    whose output is not batch first (or is nested, one length per sample) is never chosen.
    """
    fired: list[tuple[str, torch.Tensor | None]] = []
    handles = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: fired.append((name, first_tensor(out)))
        )
        for name, module in model.named_modules()
        if name
    ]
    try:
        forward()
    finally:
        for handle in handles:
            handle.remove()
    modules = dict(model.named_modules())
    runs = Counter(name for name, _ in fired)
    fired = [
        (name, out)
        for name, out in fired
        if runs[name] == 1
        and (out is None or (not out.is_nested and out.dim() > 0 and out.shape[0] == batch_size))
    ]
    chosen: list[LayerRef] = []
    spatial = [
        name
        for name, out in fired
        if out is not None and out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1
    ]
    if spatial:
        chosen.append(LayerRef.parse(spatial[-1]))
    linears = [name for name, _ in fired if isinstance(modules[name], nn.Linear)]
    if linears:
        chosen.append(LayerRef.parse(linears[-1] + INPUT_SUFFIX))
    if not chosen:
        tensors = [name for name, out in fired if out is not None and out.dim() >= 2]
        if tensors:
            chosen.append(LayerRef.parse(tensors[-1]))
    if not chosen:
        raise ProjectError(
            f"Could not choose default layers for {type(model).__name__}: name them with "
            "Project(layers=[...]) using names from dict(model.named_modules())."
        )
    return chosen
