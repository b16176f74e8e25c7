"""The spurious-feature audit: which concepts drive each class's logit, and is it the class?

For a layer read directly by a linear head (the input of the final ``nn.Linear``), neuron j's
contribution to class c's logit is ``W[c, j]`` times j's mean activation over the samples
labelled c. The class's drivers are its neurons of largest positive contribution, each with its
INVERT label over the whole vocabulary. A driver whose best formula mentions no class label, and
is significant, detects something other than a class: a background colour, say. A class whose
drivers' contribution is held for at least ``min_share`` by such neurons likely leans on a
shortcut. Each driver also gets its best formula without the label concepts (``other_formula``),
to show what else a class neuron responds to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from latentsight.concepts.auc import score_concepts
from latentsight.concepts.beam import beam_search
from latentsight.concepts.errors import ConceptsError
from latentsight.concepts.formulas import Formula, concepts_of
from latentsight.concepts.vocabulary import LABEL
from latentsight.insights.base import Evidence, Insight

if TYPE_CHECKING:
    from torch import nn

    from latentsight.concepts.result import Concepts

KIND = "spurious_feature"


@dataclass(frozen=True)
class Driver:
    """A neuron that drives a class's logit, and what it detects."""

    neuron: int
    contribution: float  # weight x mean activation over the class's samples
    share: float  # of the class's positive contributions
    class_auc: float  # AUC of the neuron for "label == c"
    formula: Formula | None  # its INVERT label over every concept
    auc: float
    p_value: float
    q_value: float
    other_formula: Formula | None  # its best formula without the label concepts
    other_auc: float
    shortcut: bool  # its label is significant and mentions no class


@dataclass(frozen=True)
class ClassAudit:
    """One class's drivers and the verdict."""

    label: int
    name: str
    drivers: list[Driver]
    shortcut_share: float  # share of the drivers' contribution held by shortcut drivers
    likely_shortcut: bool

    @property
    def shortcut_formula(self) -> Formula | None:
        """The non-class formula of the strongest shortcut driver."""
        shortcuts = [d for d in self.drivers if d.shortcut]
        return max(shortcuts, key=lambda d: d.contribution).formula if shortcuts else None


@dataclass
class Audit:
    """The audit of every class: ``table`` (one row per class and driver) and ``insights``."""

    layer: str
    classes: list[ClassAudit]
    insights: list[Insight] = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        """Per class and driver: contribution, class AUC, non-class formula, AUC, q, verdicts."""
        rows = [
            {
                "class": audit.name,
                "label": audit.label,
                "neuron": d.neuron,
                "share": d.share,
                "class_auc": d.class_auc,
                "formula": str(d.formula) if d.formula is not None else "",
                "auc": d.auc,
                "q_value": d.q_value,
                "other_formula": str(d.other_formula) if d.other_formula is not None else "",
                "other_auc": d.other_auc,
                "shortcut_driver": d.shortcut,
                "shortcut_share": audit.shortcut_share,
                "likely_shortcut": audit.likely_shortcut,
            }
            for audit in self.classes
            for d in audit.drivers
        ]
        return pd.DataFrame(rows)


def _linear_head(model: nn.Module, layer: str, head: str | None, dim: int) -> np.ndarray:
    """The weight matrix of the linear layer that reads ``layer``."""
    from torch import nn

    name = head if head is not None else layer.removesuffix(":input")
    if head is None and not layer.endswith(":input"):
        raise ConceptsError(
            f"The audit needs the linear layer that reads {layer!r}: audit the input of the "
            "model's last linear layer (record it as 'fc:input'), or name it with head='...' "
            "if this layer feeds it directly."
        )
    modules = dict(model.named_modules())
    if name not in modules:
        raise ConceptsError(f"The model has no module {name!r}; give head= one of its modules.")
    module = modules[name]
    if not isinstance(module, nn.Linear) or module.in_features != dim:
        raise ConceptsError(
            f"Module {name!r} is {type(module).__name__}"
            + (f" with {module.in_features} inputs" if isinstance(module, nn.Linear) else "")
            + f"; the audit needs an nn.Linear reading the {dim} units of {layer!r}."
        )
    return module.weight.detach().cpu().double().numpy()


def spurious_audit(
    concepts: Concepts,
    model: nn.Module,
    *,
    layer: str | None = None,
    head: str | None = None,
    drivers: int = 5,
    min_share: float = 1 / 3,
) -> Audit:
    """For each class, the neurons that drive its logit, what they detect, and whether the class
    leans on concepts other than itself.

    Args:
        concepts: the labelling of a run (``run.concepts(...)``) that includes ``layer``.
        model: the run's model (the audit reads the weights of its linear head).
        layer: the labelled layer read by the head (default: the last labelled layer).
        head: the ``nn.Linear`` reading ``layer`` (default: the module of ``"<module>:input"``).
        drivers: neurons per class, by decreasing contribution.
        min_share: a class is a likely shortcut when shortcut drivers hold this share of its
            drivers' contribution.
    """
    layer = layer or concepts.layers[-1]
    labels = concepts.labels(layer)
    weights = _linear_head(model, layer, head, labels.activations.shape[1])
    targets = concepts.samples["target"].to_numpy(dtype=np.float64)
    present = [int(c) for c in np.unique(targets[~np.isnan(targets)])]
    if not present:
        raise ConceptsError("The audit needs labelled samples; this run has no targets.")
    if max(present) >= weights.shape[0]:
        raise ConceptsError(
            f"Class {max(present)} has no row in the head's {weights.shape[0]} outputs: is "
            f"{head or layer!r} the classification head?"
        )
    other = concepts.vocabulary.without(LABEL)
    if other.matrix.shape[1] == 0:
        raise ConceptsError(
            "The audit names what drives each class with concepts other than the class labels, "
            "and this run has none: give the Project metadata columns, or pass annotations= to "
            "run.concepts()."
        )
    picked: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for c in present:
        mean = labels.activations[targets == c].mean(axis=0)
        contribution = weights[c] * mean
        order = np.argsort(-contribution, kind="stable")
        top = [j for j in order[:drivers] if contribution[j] > 0]
        picked[c] = (np.array(top, dtype=np.int64), contribution)
    neurons = np.unique(np.concatenate([top for top, _ in picked.values()]))
    ranks = labels.ranks.select(neurons)
    besides = beam_search(ranks, other.matrix, other.names, concepts.settings)
    class_masks = np.column_stack([targets == c for c in present])
    class_auc = score_concepts(ranks, class_masks).auc
    position = {int(j): i for i, j in enumerate(neurons)}
    table = concepts.table.set_index(["layer", "neuron"])
    vocabulary = concepts.vocabulary
    class_concepts = {
        n for n, s in zip(vocabulary.names, vocabulary.sources, strict=True) if s == LABEL
    }
    audits = []
    for ci, c in enumerate(present):
        top, contribution = picked[c]
        total = contribution[contribution > 0].sum()
        found = []
        for j in top:
            i, row = position[int(j)], table.loc[(layer, int(j))]
            formula = row["explanation"]
            shortcut = (
                formula is not None
                and bool(row["significant"])
                and not concepts_of(formula) & class_concepts
            )
            found.append(
                Driver(
                    neuron=int(j),
                    contribution=float(contribution[j]),
                    share=float(contribution[j] / total),
                    class_auc=float(class_auc[i, ci]),
                    formula=formula,
                    auc=float(row["auc"]),
                    p_value=float(row["p_value"]),
                    q_value=float(row["q_value"]),
                    other_formula=besides.formulas[i][0] if besides.formulas[i] else None,
                    other_auc=float(besides.auc[i, 0]),
                    shortcut=bool(shortcut),
                )
            )
        driven = sum(d.contribution for d in found)
        share = sum(d.contribution for d in found if d.shortcut) / driven if driven else 0.0
        name = str(concepts.class_names.get(c, c))
        audits.append(ClassAudit(c, name, found, share, share >= min_share))
    audit = Audit(layer, audits)
    audit.insights = [_insight(concepts, layer, a) for a in audits if a.likely_shortcut]
    return audit


def _insight(concepts: Concepts, layer: str, audit: ClassAudit) -> Insight:
    """The insight a likely shortcut makes: the other-class samples carrying the concept."""
    formula = audit.shortcut_formula
    samples = concepts.samples
    mask = formula.evaluate(concepts.vocabulary.columns())
    is_class = (samples["target"] == audit.label).to_numpy(dtype=bool, na_value=False)
    other_class = samples["target"].notna().to_numpy() & ~is_class
    predicted = (samples["prediction"] == audit.label).to_numpy()
    population = mask & other_class
    rest = ~mask & other_class
    rate_in = float(predicted[population].mean()) if population.any() else 0.0
    rate_out = float(predicted[rest].mean()) if rest.any() else 0.0
    lead = max((d for d in audit.drivers if d.shortcut), key=lambda d: d.contribution)
    evidence = Evidence(
        detector="spurious_audit",
        effect=lead.auc,
        effect_name=(
            f"AUC of neuron {lead.neuron} of {layer} for '{formula}' (for the class itself: "
            f"{lead.class_auc:.2f})"
        ),
        p_value=lead.p_value,
        q_value=lead.q_value,
        n=int(population.sum()),
        counts={
            "class_with_concept": int((mask & is_class).sum()),
            "other_classes_with_concept": int(population.sum()),
        },
        details={
            "layer": layer,
            "class": audit.name,
            "shortcut_share": audit.shortcut_share,
            "predicted_as_class_with_concept": rate_in,
            "predicted_as_class_without_concept": rate_out,
            "drivers": [
                {
                    "neuron": d.neuron,
                    "share": d.share,
                    "formula": str(d.formula) if d.formula is not None else "",
                    "auc": d.auc,
                    "class_auc": d.class_auc,
                    "other_formula": str(d.other_formula) if d.other_formula is not None else "",
                    "shortcut": d.shortcut,
                }
                for d in audit.drivers
            ],
        },
    )
    return Insight(
        kind=KIND,
        title=f"Class {audit.name} leans on '{formula}'",
        population=samples["id"].to_numpy()[population].tolist(),
        evidence=[evidence],
        description=(
            f"{audit.shortcut_share:.0%} of what drives the '{audit.name}' logit in {layer} comes "
            f"from neurons whose best label is a concept, not a class: '{formula}'. Samples of other "
            f"classes with '{formula}' are predicted '{audit.name}' {rate_in:.1%} of the time, "
            f"against {rate_out:.1%} without it."
        ),
        action=(
            f"Add or augment '{audit.name}' samples without '{formula}' and samples of other "
            f"classes with it, then check the accuracy on those samples."
        ),
        score=float(population.sum()) * audit.shortcut_share,
    )
