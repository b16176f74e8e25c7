"""``run.explain``: attribution maps for samples of a run, batched, cached in the run directory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn

from latentsight.errors import ExplanationError
from latentsight.explain.attribution import AttributionSettings, Method, method_class
from latentsight.explain.result import Explanation, LayerSweep
from latentsight.explain.session import (
    ModelSession,
    no_inplace,
    sample_ids,
    sample_rows,
    spatial_modules,
)
from latentsight.explain.targets import (
    Target,
    TargetLike,
    parse_target,
    scoring_forward,
    target_classes,
)
from latentsight.store.explanations import Cached, CacheKey, ExplanationCache
from latentsight.store.files import check_writable
from latentsight.store.manifest import render_parts
from latentsight.store.renders import picture
from latentsight.store.run import COPY_THE_RUN, stored_renders

if TYPE_CHECKING:
    from latentsight.store.run import Run

DEFAULT_BATCH_SIZE = 32


class Attributor:
    """One method bound to a model, a layer and a target: attributes batches of inputs."""

    def __init__(
        self,
        method: type[Method],
        model: nn.Module,
        layer: str | None,
        target: Target,
        settings: AttributionSettings,
    ) -> None:
        self.method = method
        self.model = model
        self.layer = layer
        self.target = target
        module = dict(model.named_modules())[layer] if layer is not None else None
        self.instance = method(scoring_forward(model, target), settings, module)

    def __call__(
        self, inputs: torch.Tensor, classes: np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(maps N x H x W, raw)`` for a batch; ``classes`` are the explained classes or None."""
        target = None if classes is None else torch.as_tensor(classes, device=inputs.device)
        with no_inplace(self.model):
            raw = self.instance.attribute(inputs.detach().requires_grad_(), target).detach()
        if self.layer is not None:
            check_layer_output(self.layer, self.instance.layer, raw)
        return self.instance.to_maps(raw, tuple(inputs.shape[-2:])), raw


def check_layer_output(layer: str, module: nn.Module, raw: torch.Tensor) -> None:
    """Refuse a layer whose output was not a spatial map: layer methods need one."""
    if raw.dim() != 3 or raw.shape[-2:].numel() < 2:
        raise ExplanationError(
            f"Layer {layer!r} ({type(module).__name__}) does not output a spatial map "
            "(N, C, H, W) with H x W > 1 (its map came out as "
            f"{tuple(raw.shape[1:])}): Grad-CAM and LayerCAM need a convolutional layer."
        )


def default_layer(session: ModelSession) -> str:
    """The last convolution of the model: the usual Grad-CAM layer."""
    convolutions = spatial_modules(session.model)
    if not convolutions:
        raise ExplanationError(
            f"{type(session.model).__name__} has no Conv2d layer: name the convolutional layer "
            "to explain at with layer=..., or, for image inputs, use an input method such as "
            "'integrated_gradients'."
        )
    return convolutions[-1]


def stored_images(run: Run, ids: Sequence[str]) -> np.ndarray | None:
    """The run's stored pictures of these samples (``N x H x W x 3``), or None if it has none."""
    if not render_parts(run.path):
        return None
    found = {
        sample_id: drawn
        for sample_id, drawn in stored_renders(run.path, ids).items()
        if not isinstance(drawn, str)
    }
    if len(found) < len(set(ids)):
        return None
    pictures = [picture(found[sample_id]).convert("RGB") for sample_id in ids]
    size = pictures[0].size
    return np.stack([np.asarray(picture.resize(size)) for picture in pictures])


def explain(
    run: Run,
    ids: str | Sequence[str],
    *,
    method: str = "gradcam",
    layer: str | None = None,
    target: TargetLike = "predicted",
    settings: AttributionSettings | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    cache: bool = True,
) -> Explanation | LayerSweep:
    """Attribution maps of samples; ``layer="all"`` sweeps a layer method over every convolution."""
    ids = sample_ids(ids)
    method_type = method_class(method)
    parsed = parse_target(target, run.class_names)
    settings = settings or AttributionSettings()
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ExplanationError(f"batch_size must be a positive integer, got {batch_size!r}.")
    rows = sample_rows(run, ids)
    if not method_type.layered and layer is not None:
        raise ExplanationError(
            f"{method_type.name} attributes to the input pixels and takes no layer; layer= "
            "applies to 'gradcam' and 'layercam'."
        )
    sessions: list[ModelSession] = []

    def session() -> ModelSession:
        if not sessions:
            sessions.append(ModelSession(run, device))
        return sessions[0]

    explainer = _Explainer(run, rows, method_type, parsed, settings, batch_size, session, cache)
    if method_type.layered and layer == "all":
        return LayerSweep({name: explainer.at(name) for name in spatial_modules(session().model)})
    if method_type.layered and layer is None:
        layer = default_layer(session())
    return explainer.at(layer)


class _Explainer:
    """Explains a fixed set of rows at one layer after another, reading and filling the cache."""

    def __init__(
        self,
        run: Run,
        rows: pd.DataFrame,
        method: type[Method],
        target: Target,
        settings: AttributionSettings,
        batch_size: int,
        session: Callable[[], ModelSession],
        cache: bool,
    ) -> None:
        self.run, self.rows, self.method, self.target = run, rows, method, target
        self.settings, self.batch_size, self.session = settings, batch_size, session
        self.cache = ExplanationCache(run.path) if cache and target.key is not None else None
        self.images = stored_images(run, list(rows["id"]))

    def key(self, layer: str | None) -> CacheKey:
        return CacheKey(
            method=self.method.name,
            layer=layer,
            target=self.target.key or "",
            settings=tuple(sorted(self.settings.used_by(self.method).items())),
            model_fingerprint=self.run.manifest["provenance"]["model_fingerprint"],
        )

    def at(self, layer: str | None) -> Explanation:
        ids = list(self.rows["id"])
        found = self.cache.read(self.key(layer), ids) if self.cache is not None else None
        have = set(found.ids) if found is not None else set()
        missing = self.rows[~self.rows["id"].isin(have)]
        parts = [found] if found is not None else []
        if len(missing):
            if self.cache is not None:  # refused before the work, which would be lost
                check_writable(
                    self.cache.root,
                    folder=True,
                    fix="run.explain caches its maps in the run: pass cache=False to compute "
                    f"them without storing them, or {COPY_THE_RUN}",
                )
            computed = self._compute(missing, layer)
            if self.cache is not None:
                self.cache.write(self.key(layer), computed)
            parts.append(computed)
        by_id = {
            sample_id: (part, position)
            for part in parts
            for position, sample_id in enumerate(part.ids)
        }
        pick = [by_id[sample_id] for sample_id in ids]
        return Explanation(
            method=self.method.name,
            layer=layer,
            target=self.target.description,
            ids=ids,
            maps=np.stack([part.maps[position] for part, position in pick]),
            raw=np.stack([part.raw[position] for part, position in pick]),
            classes=np.array([part.classes[position] for part, position in pick]),
            images=self.images,
            sign="absolute" if self.method.signed else "positive",
        )

    def _compute(self, rows: pd.DataFrame, layer: str | None) -> Cached:
        session = self.session()
        if layer is not None:
            session.module(layer)
        attributor = Attributor(self.method, session.model, layer, self.target, self.settings)
        maps, raws, classes, pictures = [], [], [], []
        for start in range(0, len(rows), self.batch_size):
            batch = rows.iloc[start : start + self.batch_size]
            inputs = session.inputs(batch)
            chosen = target_classes(
                self.target, batch, session.n_classes, lambda inputs=inputs: session.predict(inputs)
            )
            batch_maps, raw = attributor(inputs, chosen)
            maps.append(batch_maps.float().cpu().numpy())
            raws.append(raw.float().cpu().numpy())
            classes.append(np.full(len(batch), -1) if chosen is None else chosen)
            if self.images is None:
                pictures.append(session.images(inputs))
        if self.images is None and len(rows) == len(self.rows):
            self.images = np.concatenate(pictures)
        return Cached(
            ids=list(rows["id"]),
            maps=np.concatenate(maps),
            raw=np.concatenate(raws),
            classes=np.concatenate(classes).astype(np.int64),
        )
