"""``run.check_explanations``: faithfulness and sanity figures of one method on samples of a run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from latentsight.errors import ExplanationError
from latentsight.explain.attribution import AttributionSettings, Baseline, Method, method_class
from latentsight.explain.explainer import Attributor, explain
from latentsight.explain.faithfulness import (
    area,
    infidelity_of,
    perturbation_curves,
    random_maps,
    sensitivity_of,
)
from latentsight.explain.result import Explanation
from latentsight.explain.sanity import cascading_randomization
from latentsight.explain.session import ModelSession, sample_ids, sample_rows
from latentsight.explain.targets import Target, TargetLike, parse_target, scoring_forward

if TYPE_CHECKING:
    from latentsight.store.run import Run


@dataclass
class ExplanationChecks:
    """Faithfulness and sanity figures of one method (and layer) on some samples.

    Attributes:
        method, layer, target: what was checked.
        ids: the samples checked.
        samples: per sample: deletion and insertion AUC of the method and of a random order,
            infidelity and max-sensitivity.
        curves: mean deletion and insertion curves by fraction of pixels, method and random.
        randomization: cascading model randomisation: per step, the layer re-initialised and the
            mean Spearman correlation of the maps with the original ones (empty when skipped).
    """

    method: str
    layer: str | None
    target: str
    ids: list[str]
    samples: pd.DataFrame
    curves: pd.DataFrame
    randomization: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> dict[str, Any]:
        """The headline figures: mean AUCs (method and random), infidelity, sensitivity, and the
        rank correlation left after the whole model was randomised."""
        means = self.samples.drop(columns=["id", "class"]).mean()
        figures: dict[str, Any] = {
            "method": self.method,
            "layer": self.layer,
            "samples": len(self.ids),
            **{name: float(value) for name, value in means.items()},
        }
        if len(self.randomization):
            figures["spearman_after_randomization"] = float(self.randomization["spearman"].iloc[-1])
        return figures

    def __repr__(self) -> str:
        figures = self.summary()
        return (
            f"ExplanationChecks(method={self.method!r}, samples={len(self.ids)}, deletion "
            f"{figures['deletion_auc']:.3f} vs random {figures['deletion_auc_random']:.3f}, "
            f"insertion {figures['insertion_auc']:.3f} vs random "
            f"{figures['insertion_auc_random']:.3f})"
        )


def _numpy(classes: torch.Tensor | None) -> np.ndarray | None:
    return None if classes is None else classes.cpu().numpy()


def _default_ids(run: Run, n: int, seed: int) -> list[str]:
    samples = run.samples
    picked = samples.sample(n=min(n, len(samples)), random_state=seed)
    return list(picked["id"])


def _scorer(
    forward: Callable[[torch.Tensor], torch.Tensor], classes: np.ndarray | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The explained score: the class probability (softmax), or the target function's value."""

    def score(inputs: torch.Tensor) -> torch.Tensor:
        outputs = forward(inputs)
        if classes is None:
            return outputs
        chosen = torch.as_tensor(classes, device=inputs.device)
        return F.softmax(outputs, dim=1).gather(1, chosen[:, None])[:, 0]

    return score


def check_explanations(
    run: Run,
    method: str = "gradcam",
    *,
    layer: str | None = None,
    target: TargetLike = "predicted",
    ids: str | Sequence[str] | None = None,
    n: int = 32,
    steps: int = 20,
    random_orders: int = 4,
    baseline: Baseline = "blur",
    sanity: bool = True,
    settings: AttributionSettings | None = None,
    batch_size: int = 32,
    seed: int = 0,
    device: str | torch.device | None = None,
    cache: bool = True,
) -> ExplanationChecks:
    """Check a method on ``ids`` (default: ``n`` samples drawn with ``seed``).

    ``steps`` fractions of pixels are deleted or inserted, replaced by ``baseline``, in the
    map's order and in ``random_orders`` random orders (averaged, the reference); ``sanity``
    adds the cascading model randomisation; ``cache`` reads and stores the maps in the run.
    """
    if steps < 2:
        raise ExplanationError(f"steps must be at least 2, got {steps}.")
    if random_orders < 1:
        raise ExplanationError(f"random_orders must be at least 1, got {random_orders}.")
    chosen = sample_ids(ids) if ids is not None else _default_ids(run, n, seed)
    settings = settings or AttributionSettings()
    parsed = parse_target(target, run.class_names)
    method_type = method_class(method)
    if method_type.layered and layer == "all":
        raise ExplanationError("check_explanations takes one layer at a time, not 'all'.")
    found = cast(
        Explanation,
        explain(
            run,
            chosen,
            method=method_type.name,
            layer=layer,
            target=target,
            settings=settings,
            batch_size=batch_size,
            device=device,
            cache=cache,
        ),
    )
    session = ModelSession(run, device)
    rows = sample_rows(run, chosen)
    attributor = Attributor(method_type, session.model, found.layer, parsed, settings)
    forward = scoring_forward(session.model, parsed)
    per_sample, curves = [], []
    for start in range(0, len(chosen), batch_size):
        stop = start + batch_size
        inputs = session.inputs(rows.iloc[start:stop])
        classes = None if parsed.kind == "function" else found.classes[start:stop]
        target_tensor = None if classes is None else torch.as_tensor(classes, device=inputs.device)
        maps = torch.as_tensor(found.maps[start:stop], device=inputs.device)
        score = _scorer(forward, classes)
        deletion, insertion = perturbation_curves(
            score, inputs, maps, steps=steps, baseline=baseline
        )
        references = [
            perturbation_curves(
                score,
                inputs,
                random_maps(tuple(maps.shape), seed + start + order, inputs.device),
                steps=steps,
                baseline=baseline,
            )
            for order in range(random_orders)
        ]
        random_deletion = np.mean([curves[0] for curves in references], axis=0)
        random_insertion = np.mean([curves[1] for curves in references], axis=0)
        spread = float(inputs.max() - inputs.min())
        raw = torch.as_tensor(found.raw[start:stop], device=inputs.device)
        attributions = (
            raw
            if raw.shape == inputs.shape
            else (maps[:, None] / inputs.shape[1]).expand_as(inputs).contiguous()
        )
        unfaithful = infidelity_of(
            forward, inputs, attributions, target_tensor, noise=0.02 * spread, seed=seed
        )
        sensitive = sensitivity_of(
            lambda values, chosen: attributor(values, _numpy(chosen))[0],
            inputs,
            target_tensor,
            radius=0.02 * spread,
            seed=seed,
        )
        per_sample.append(
            pd.DataFrame(
                {
                    "id": chosen[start:stop],
                    "class": found.classes[start:stop],
                    "deletion_auc": area(deletion),
                    "deletion_auc_random": area(random_deletion),
                    "insertion_auc": area(insertion),
                    "insertion_auc_random": area(random_insertion),
                    "infidelity": unfaithful,
                    "sensitivity": sensitive,
                }
            )
        )
        curves.append(np.stack([deletion, random_deletion, insertion, random_insertion]))
    stacked = np.concatenate(curves, axis=1).mean(axis=1)
    curve_frame = pd.DataFrame(
        {
            "fraction": np.linspace(0.0, 1.0, steps + 1),
            "deletion": stacked[0],
            "deletion_random": stacked[1],
            "insertion": stacked[2],
            "insertion_random": stacked[3],
        }
    )
    randomization = pd.DataFrame()
    if sanity:
        randomization = _randomization(
            session, rows, found, method_type, parsed, settings, batch_size, seed
        )
    return ExplanationChecks(
        method=method_type.name,
        layer=found.layer,
        target=found.target,
        ids=chosen,
        samples=pd.concat(per_sample, ignore_index=True),
        curves=curve_frame,
        randomization=randomization,
    )


def _randomization(
    session: ModelSession,
    rows: pd.DataFrame,
    found: Explanation,
    method: type[Method],
    target: Target,
    settings: AttributionSettings,
    batch_size: int,
    seed: int,
) -> pd.DataFrame:
    """Cascading randomisation of the session's model: maps of the same samples and classes."""
    inputs = [
        session.inputs(rows.iloc[start : start + batch_size])
        for start in range(0, len(rows), batch_size)
    ]

    def maps_under(model: nn.Module) -> np.ndarray:
        attributor = Attributor(method, model, found.layer, target, settings)
        parts = []
        for position, batch in enumerate(inputs):
            start = position * batch_size
            classes = (
                None if target.kind == "function" else found.classes[start : start + batch_size]
            )
            parts.append(attributor(batch, classes)[0].float().cpu().numpy())
        return np.concatenate(parts)

    return cascading_randomization(session.model, maps_under, found.maps, seed=seed)
