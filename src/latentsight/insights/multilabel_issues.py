"""Label issues of multilabel runs: samples with a label that looks wrong, and the regions of latent
space or metadata where they concentrate.

A sample (C independent 0/1 labels) is a suspect when cleanlab's confident learning for multilabel
data flags it (``find_label_issues(..., multi_label=True)`` on the stored per-label sigmoids), or
when, for one of its labels, at least ``NEIGHBOUR_MAJORITY`` of its labelled latent neighbours
carry the other value and the model agrees with them. ``label_issue_score`` is ``1 - `` cleanlab's
multilabel quality score; ``is_label_issue`` marks the suspects.

Regions (latent clusters, metadata slices) are reported when their rate of suspects is
significantly above the rate elsewhere (hypergeometric test, Benjamini-Hochberg) and at least
``MIN_RATE_RATIO`` times it; the insight names the label most often doubted there. As for
single-label runs, nothing is judged against a model that has not learned the labels: its share
of right label decisions must be significantly above always answering each label's commoner value.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from latentsight.insights.base import (
    AnalysisContext,
    Detector,
    DetectorResult,
    Evidence,
    Insight,
    population_ids,
    register,
)
from latentsight.insights.describe import enriched_metadata
from latentsight.insights.label_issues import ACTION, KIND, NEIGHBOUR_MAJORITY, suspect_rates
from latentsight.insights.populations import cluster_populations, metadata_populations
from latentsight.insights.stats import binomial_test


def _labels_and_probabilities(
    ctx: AnalysisContext,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    """(labelled mask, n x C 0/1 labels, n x C sigmoids of the labelled rows) or why there are none."""
    if "probabilities" not in ctx.samples or "target" not in ctx.samples:
        return "the run stores no probabilities or targets"
    targets = ctx.samples["target"].to_numpy()
    probabilities = ctx.samples["probabilities"].to_numpy()
    usable = np.array(
        [
            np.ndim(t) == 1 and np.ndim(p) == 1 and np.size(t) == np.size(p) > 1
            for t, p in zip(targets, probabilities, strict=True)
        ]
    )
    labeled = ctx.is_labeled & usable
    if labeled.sum() < ctx.settings.min_population:
        return "too few labelled samples"
    labels = np.stack([np.asarray(t, dtype=np.float64) for t in targets[labeled]]) >= 0.5
    matrix = np.stack([np.asarray(p, dtype=np.float64) for p in probabilities[labeled]])
    return labeled, labels, np.clip(matrix, 0.0, 1.0)


def _model_has_learned(
    ctx: AnalysisContext, labeled: np.ndarray, labels: np.ndarray, probabilities: np.ndarray
) -> dict[str, float | bool]:
    """Whether the model's label decisions beat answering each label's commoner value, on
    evaluation samples (all labelled samples when there are too few)."""
    on_eval = ctx.is_eval[labeled]
    rows = on_eval if on_eval.sum() >= ctx.settings.min_population else np.ones(len(labels), bool)
    right = (probabilities[rows] > 0.5) == labels[rows]
    share_on = labels[rows].mean(axis=0)
    baseline = float(np.maximum(share_on, 1 - share_on).mean())
    decisions = np.array([right.size])
    p = float(binomial_test(np.array([right.sum()]), decisions, baseline)[0])
    accuracy = float(right.mean())
    return {
        "learned": bool(accuracy > baseline and p < ctx.settings.alpha),
        "label_accuracy": accuracy,
        "commoner_value_share": baseline,
        "p_value": p,
    }


def _neighbour_flags(
    ctx: AnalysisContext, labeled: np.ndarray, labels: np.ndarray, probabilities: np.ndarray
) -> np.ndarray:
    """n x C: the labels where most labelled neighbours and the model both say the other value."""
    position = np.full(ctx.n, -1, dtype=np.int64)
    position[labeled] = np.arange(len(labels))
    neighbours = position[ctx.neighbors.indices[labeled]]  # n x k, -1 = unlabelled
    known = neighbours >= 0
    counted = np.maximum(known.sum(axis=1, keepdims=True), 1)
    share_on = (labels[np.maximum(neighbours, 0)] & known[:, :, None]).sum(axis=1) / counted
    neighbours_disagree = np.where(labels, 1 - share_on, share_on) >= NEIGHBOUR_MAJORITY
    model_disagrees = (probabilities > 0.5) != labels
    return neighbours_disagree & model_disagrees & known.any(axis=1, keepdims=True)


def _cleanlab(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's multilabel flags and label quality scores (1 = surely right)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    given = [np.flatnonzero(row).tolist() for row in labels]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "too few examples of a label": nothing to act on
        flags = find_label_issues(given, probabilities, multi_label=True, n_jobs=1)
        quality = get_label_quality_scores(given, probabilities)
    return np.asarray(flags, dtype=bool), np.asarray(quality, dtype=np.float64)


@register
class MultilabelLabelIssues(Detector):
    """Likely label errors of multilabel samples, and the regions where they concentrate."""

    name = "multilabel_label_issues"
    tasks = ("multilabel",)
    description = (
        "Multilabel samples with a label that disagrees with the model (cleanlab) or with their "
        "latent neighbours and the model, and regions where they concentrate (hypergeometric, BH)."
    )

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        """Flag suspects, then test regions for a raised rate of them."""
        found = _labels_and_probabilities(ctx)
        if isinstance(found, str):
            return DetectorResult([], info={"skipped": found})
        labeled, labels, probabilities = found
        gate = _model_has_learned(ctx, labeled, labels, probabilities)
        cleanlab_flags, quality = _cleanlab(labels, probabilities)
        doubted = _neighbour_flags(ctx, labeled, labels, probabilities)
        suspects = (cleanlab_flags | doubted.any(axis=1)) & bool(gate["learned"])
        scores = pd.DataFrame(
            {
                "id": ctx.samples["id"].to_numpy(),
                "label_issue_score": np.nan,
                "is_label_issue": False,
            }
        )
        scores.loc[labeled, "label_issue_score"] = np.clip(1.0 - quality, 0.0, 1.0)
        scores.loc[labeled, "is_label_issue"] = suspects
        info: dict = {
            "model_check": gate,
            "labeled": int(labeled.sum()),
            "suspects": int(suspects.sum()),
            "cleanlab_flagged": int(cleanlab_flags.sum()),
            "neighbour_flagged": int(doubted.any(axis=1).sum()),
        }
        if not gate["learned"]:
            info["skipped"] = (
                f"the model's label decisions ({gate['label_accuracy']:.1%} right) are not "
                f"significantly better than each label's commoner value "
                f"({gate['commoner_value_share']:.1%}): labels are not judged against a model "
                "that has not learned them"
            )
            return DetectorResult([], scores=scores, info=info)
        regions = [
            r
            for r in cluster_populations(ctx) + metadata_populations(ctx)
            if (r.mask & labeled).sum() >= ctx.settings.min_population
        ]
        info["tested"] = len(regions)
        if not regions:
            return DetectorResult([], scores=scores, info=info)
        rates = suspect_rates(regions, labeled, suspects)
        masks, k_in, n_in, p, ratio, q = (
            rates.masks,
            rates.k_in,
            rates.n_in,
            rates.p,
            rates.ratio,
            rates.q,
        )
        wrong = (probabilities > 0.5) != labels
        insights = []
        for j, region in enumerate(regions):
            if not rates.reported(j, ctx.settings):
                continue
            inside = masks[j] & suspects
            label = int(wrong[inside].sum(axis=0).argmax())
            given_on = int((inside & wrong[:, label] & labels[:, label]).sum())
            given_off = int((inside & wrong[:, label] & ~labels[:, label]).sum())
            population = np.zeros(ctx.n, bool)
            population[labeled] = inside
            rate_in, rate_out = k_in[j] / n_in[j], rates.rate_out[j]
            n_out = max(len(labels) - n_in[j], 1)
            # with no suspect outside, the ratio is read with half a suspect there (finite rank)
            effect = float(ratio[j]) if rate_out > 0 else rate_in / (0.5 / n_out)
            elsewhere = f"{ratio[j]:.2g}x the rate elsewhere" if rate_out > 0 else "none elsewhere"
            name = ctx.class_names.get(label, f"label {label}")
            words = [
                e.text for e in enriched_metadata(ctx.samples, ctx.metadata_columns, population)
            ]
            evidence = Evidence(
                detector=self.name,
                effect=effect,
                effect_name="share of likely label issues inside / outside",
                p_value=float(p[j]),
                q_value=float(q[j]),
                n=int(k_in[j]),
                counts={
                    str(k): int(v)
                    for k, v in ctx.samples.loc[population, "subset"].value_counts().items()
                },
                details={
                    "region": region.name,
                    "source": region.source,
                    "region_size": int(n_in[j]),
                    "rate_inside": float(rate_in),
                    "rate_outside": float(rate_out),
                    "label": label,
                    "given_on_model_says_off": given_on,
                    "given_off_model_says_on": given_off,
                },
            )
            insights.append(
                Insight(
                    kind=KIND,
                    title=f"{region.name}: {int(k_in[j])} likely label issues ({elsewhere}), "
                    f"mostly {name}",
                    population=population_ids(ctx, population),
                    evidence=[evidence],
                    description=(
                        f"{region.name[0].upper()}{region.name[1:]} ({int(n_in[j])} labelled "
                        f"samples): {rate_in:.0%} of them have a label that looks wrong against "
                        f"{rate_out:.0%} elsewhere, most often {name} ({given_on} given but "
                        f"absent to the model, {given_off} missing but present to it)."
                        + (f" These samples stand out by {'; '.join(words)}." if words else "")
                    ),
                    action=ACTION,
                )
            )
        return DetectorResult(insights, scores=scores, info=info)
