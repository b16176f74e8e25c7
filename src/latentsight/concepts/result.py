"""The neuron labels of one or more layers, and the questions asked of them.

A neuron's best formula is tested with the two-sided Mann-Whitney U test, as INVERT does; since
the search tried many formulas for it, the p-value is multiplied by the number of formulas the
search scored for that neuron (Bonferroni within the neuron), then Benjamini-Hochberg controls
the false discovery rate across the neurons of a layer. A label is significant when that
q-value is below ``alpha``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from latentsight.concepts.auc import ConceptScores, Ranks, score_concepts
from latentsight.concepts.beam import SearchResult, SearchSettings
from latentsight.concepts.errors import ConceptsError
from latentsight.concepts.formulas import Formula, Literal, concepts_of, length
from latentsight.concepts.vocabulary import Vocabulary
from latentsight.insights.stats import benjamini_hochberg

if TYPE_CHECKING:
    from torch import nn

    from latentsight.concepts.audit import Audit
    from latentsight.project import Project


@dataclass(frozen=True)
class LayerLabels:
    """One layer's search result, the AUC of every neuron for every concept, and its inputs."""

    layer: str
    activations: np.ndarray  # N x M, rows as the vocabulary's
    ranks: Ranks
    search: SearchResult
    atomic: ConceptScores  # M x C


class Concepts:
    """INVERT labels of a run's neurons: per neuron the formula over concepts it detects best.

    Get one with ``run.concepts(layer=...)``, which stores each layer's ``table`` in the run
    (``latentsight.store.concepts``); an audit of it is stored there too.
    """

    def __init__(
        self,
        layers: list[LayerLabels],
        vocabulary: Vocabulary,
        samples: pd.DataFrame,
        settings: SearchSettings,
        *,
        alpha: float = 0.05,
        class_names: dict[int, str] | None = None,
        project: Project | None = None,
        run_path: Path | None = None,
    ) -> None:
        self._layers = {labels.layer: labels for labels in layers}
        self.vocabulary = vocabulary
        self.samples = samples.reset_index(drop=True)
        self.settings = settings
        self.alpha = alpha
        self.class_names = class_names or {}
        self.project = project
        self.run_path = run_path  # where the audit is stored; None keeps it in memory

    def __repr__(self) -> str:
        return (
            f"Concepts(layers={self.layers}, concepts={len(self.vocabulary)}, "
            f"samples={len(self.samples)})"
        )

    @property
    def layers(self) -> list[str]:
        """The labelled layers, in the order given."""
        return list(self._layers)

    def labels(self, layer: str) -> LayerLabels:
        """The raw search result of one labelled layer."""
        if layer not in self._layers:
            raise ConceptsError(f"Layer {layer!r} was not labelled; labelled: {self.layers}.")
        return self._layers[layer]

    def _layer_table(self, labels: LayerLabels) -> pd.DataFrame:
        search = labels.search
        best_p = search.p[:, 0]
        adjusted = np.minimum(1.0, best_p * np.maximum(search.tested, 1))
        adjusted = np.where(np.isnan(best_p), 1.0, adjusted)
        # a constant (dead) neuron gets no label
        constant = labels.ranks.tie_term == float(labels.ranks.n) ** 3 - labels.ranks.n
        adjusted = np.where(constant, 1.0, adjusted)
        q = benjamini_hochberg(adjusted)
        rows = []
        for k, formulas in enumerate(search.formulas):
            formulas = [] if constant[k] else formulas
            best = formulas[0] if formulas else None
            rows.append(
                {
                    "layer": labels.layer,
                    "neuron": k,
                    "formula": str(best) if best is not None else "",
                    "explanation": best,
                    "auc": search.auc[k, 0] if best is not None else np.nan,
                    "p_value": best_p[k] if best is not None else np.nan,
                    "p_adjusted": adjusted[k],
                    "q_value": q[k],
                    "significant": bool(q[k] < self.alpha),
                    "fraction": search.fraction[k, 0] if best is not None else np.nan,
                    "length": length(best) if best is not None else 0,
                    "tested": int(search.tested[k]),
                    "runner_ups": [str(f) for f in formulas[1:]],
                    "runner_up_auc": [float(a) for a in search.auc[k, 1 : len(formulas)]],
                }
            )
        return pd.DataFrame(rows)

    @cached_property
    def table(self) -> pd.DataFrame:
        """Per neuron: best formula (text and object), AUC, p and q values, share of positives,
        significance, and the runner-up formulas with their AUCs."""
        return pd.concat(
            [self._layer_table(labels) for labels in self._layers.values()], ignore_index=True
        )

    def _concept_mask(self, concept: str | Formula) -> np.ndarray:
        if isinstance(concept, str):
            negated = concept.startswith("NOT ")
            name = concept[4:] if negated else concept
            concept = Literal(name, negated)
            self.vocabulary.index(name)
        missing = concepts_of(concept) - set(self.vocabulary.names)
        if missing:
            self.vocabulary.index(sorted(missing)[0])
        return concept.evaluate(self.vocabulary.columns())

    def neurons_for(self, concept: str | Formula, *, layer: str | None = None) -> pd.DataFrame:
        """The neurons that detect a concept (a name, ``"NOT name"``, or a Formula), by AUC.

        Every neuron of the labelled layers (or of ``layer``) is scored against the concept; the
        p-values are two-sided Mann-Whitney, q-values Benjamini-Hochberg within each layer.
        ``labelled`` says whether the concept appears in the neuron's own best formula.
        """
        mask = self._concept_mask(concept)[:, None]
        wanted = concepts_of(Literal(concept) if isinstance(concept, str) else concept)
        wanted = {name.removeprefix("NOT ") for name in wanted}
        table = self.table.set_index(["layer", "neuron"])
        frames = []
        for name in [layer] if layer else self.layers:
            labels = self.labels(name)
            scores = score_concepts(labels.ranks, mask)
            p = scores.p[:, 0]
            q = benjamini_hochberg(np.where(np.isnan(p), 1.0, p))
            best = [table.loc[(name, k), "explanation"] for k in range(labels.ranks.m)]
            frames.append(
                pd.DataFrame(
                    {
                        "layer": name,
                        "neuron": np.arange(labels.ranks.m),
                        "auc": scores.auc[:, 0],
                        "p_value": p,
                        "q_value": q,
                        "significant": q < self.alpha,
                        "best_formula": [str(f) if f is not None else "" for f in best],
                        "labelled": [f is not None and bool(wanted & concepts_of(f)) for f in best],
                    }
                )
            )
        found = pd.concat(frames, ignore_index=True)
        return found.sort_values("auc", ascending=False, kind="stable").reset_index(drop=True)

    @cached_property
    def depth(self) -> pd.DataFrame:
        """Concepts x layers: how many significant neurons of each layer have the concept in
        their best formula; read across to see a concept move with depth."""
        counts = {
            layer: Counter(
                name
                for formula in group.loc[group["significant"], "explanation"]
                for name in sorted(concepts_of(formula))
            )
            for layer, group in self.table.groupby("layer", sort=False)
        }
        frame = pd.DataFrame(counts).reindex(columns=self.layers).fillna(0).astype(int)
        return frame.loc[frame.sum(axis=1).sort_values(ascending=False, kind="stable").index]

    @cached_property
    def layer_summary(self) -> pd.DataFrame:
        """Per layer: neurons, how many have a significant label, their mean AUC, and the
        concepts that label the most of them."""
        rows = []
        for layer, group in self.table.groupby("layer", sort=False):
            significant = group[group["significant"]]
            top = self.depth[layer].sort_values(ascending=False, kind="stable")
            rows.append(
                {
                    "layer": layer,
                    "neurons": len(group),
                    "significant": len(significant),
                    "share_significant": len(significant) / max(len(group), 1),
                    "mean_auc": float(significant["auc"].mean()) if len(significant) else np.nan,
                    "top_concepts": [f"{name} ({n})" for name, n in top[top > 0].head(5).items()],
                }
            )
        return pd.DataFrame(rows)

    def audit(
        self,
        model: nn.Module | Project | None = None,
        *,
        layer: str | None = None,
        head: str | None = None,
        drivers: int = 5,
        min_share: float = 1 / 3,
    ) -> Audit:
        """The spurious-feature audit: per class, the neurons of ``layer`` that drive its logit
        and whether they detect the class or something else; see
        :func:`latentsight.concepts.audit.spurious_audit`. ``model`` defaults to the model of
        the Project attached to the run (``run.attach(project)``)."""
        from latentsight.concepts.audit import spurious_audit

        model = model if model is not None else self.project
        if model is None:
            raise ConceptsError(
                "The audit reads the weights of the model's head: give the model (or its "
                "Project), or attach the Project to the run first with run.attach(project); on "
                "the command line, pass --project module:project."
            )
        if not hasattr(model, "named_modules"):
            model = model.resolve_model()
        if self.run_path is not None:
            from latentsight.capture.fingerprint import check_run_model
            from latentsight.store.manifest import read_manifest

            check_run_model(model, read_manifest(self.run_path), self.run_path)
        found = spurious_audit(
            self, model, layer=layer, head=head, drivers=drivers, min_share=min_share
        )
        if self.run_path is not None:
            from latentsight.store.concepts import audit_file, save_table

            info = {"layer": found.layer, "drivers": drivers, "min_share": min_share}
            save_table(audit_file(self.run_path), found.table, info)
        return found
