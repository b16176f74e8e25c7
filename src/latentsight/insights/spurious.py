"""Spurious correlations: a metadata attribute that predicts a class in training, and that the
model follows on evaluation data where it points to the wrong class.

For every metadata slice S (a categorical value or a numeric quantile bin) and class k:

1. Association, on the training subset: the share of class k inside S against outside S. Pairs
   whose share is at least ``MIN_LIFT`` times higher (and significant) are shortcut candidates.
2. Harm, on the evaluation subsets (data the association was not measured on): among samples
   whose label is *not* k, the rate of predicting k inside S against outside S, by a one-sided
   Fisher exact test; Benjamini-Hochberg across all candidates.

The population is the evaluation samples the shortcut misleads: inside S, labelled other than k.
"""

from __future__ import annotations

import numpy as np

from latentsight.insights.base import (
    AnalysisContext,
    Detector,
    DetectorResult,
    Evidence,
    Insight,
    population_ids,
    register,
)
from latentsight.insights.populations import Population, metadata_populations
from latentsight.insights.stats import benjamini_hochberg, enrichment_test

MIN_LIFT = 2.0  # share of the class inside the slice / outside it, on training data
_SMOOTHING = 0.5  # added to counts in the reported rate ratio, so a zero rate stays finite


def _rate_ratio(k_in: int, n_in: int, k_out: int, n_out: int) -> float:
    """The ratio of two rates with a half-count added to each, finite when a rate is zero."""
    return ((k_in + _SMOOTHING) / (n_in + 2 * _SMOOTHING)) / (
        (k_out + _SMOOTHING) / (n_out + 2 * _SMOOTHING)
    )


@register
class SpuriousCorrelations(Detector):
    """Metadata that predicts a class in training and misleads the model on evaluation data."""

    name = "spurious_correlation"
    uses_latents = False
    tasks = ("classification",)
    description = (
        "Metadata slices associated with a class in training (share >= 2x, Fisher) whose "
        "evaluation samples of other classes are predicted as that class more often (Fisher, BH)."
    )

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        """Find shortcut candidates on training data, test their harm on evaluation data."""
        if "prediction" not in ctx.samples:
            return DetectorResult([], info={"tested": 0, "skipped": "the run has no predictions"})
        train, evals = ctx.is_train & ctx.is_labeled, ctx.is_eval
        if train.sum() < ctx.settings.min_population or evals.sum() < ctx.settings.min_population:
            return DetectorResult([], info={"tested": 0, "skipped": "needs train and eval data"})
        target = ctx.samples["target"].to_numpy()
        predicted = ctx.samples["prediction"].to_numpy()
        candidates = []
        for population in metadata_populations(ctx):
            for k in np.unique(target[train]):
                candidate = self._candidate(ctx, population, int(k), target, predicted)
                if candidate is not None:
                    candidates.append(candidate)
        if not candidates:
            return DetectorResult([], info={"tested": 0})
        q = benjamini_hochberg(np.array([c["p_value"] for c in candidates]))
        insights = [
            self._insight(ctx, candidate, float(q_value))
            for candidate, q_value in zip(candidates, q, strict=True)
        ]
        return DetectorResult(insights, info={"tested": len(candidates)})

    @staticmethod
    def _candidate(
        ctx: AnalysisContext,
        population: Population,
        k: int,
        target: np.ndarray,
        predicted: np.ndarray,
    ) -> dict | None:
        """The association and harm figures of slice x class, or None when it is no candidate."""
        train, evals = ctx.is_train & ctx.is_labeled, ctx.is_eval
        inside = population.mask
        is_k = target == k
        n_in, n_train = int((inside & train).sum()), int(train.sum())
        k_in, k_train = int((inside & train & is_k).sum()), int((train & is_k).sum())
        if n_in < ctx.settings.min_population or n_in == n_train:
            return None
        association_p, lift = enrichment_test(k_in, n_in, k_train, n_train)
        if float(lift) < MIN_LIFT or float(association_p) >= ctx.settings.alpha:
            return None
        others = evals & ~is_k
        misled = others & inside
        if misled.sum() < ctx.settings.min_population:
            return None
        as_k = predicted == k
        m_in, n_misled = int((misled & as_k).sum()), int(misled.sum())
        m_all, n_others = int((others & as_k).sum()), int(others.sum())
        harm_p, _ = enrichment_test(m_in, n_misled, m_all, n_others)
        return {
            "population": population,
            "class": k,
            "mask": misled,
            "p_value": float(harm_p),
            "train_share_inside": k_in / n_in,
            "train_share_outside": (k_train - k_in) / max(n_train - n_in, 1),
            "association_p": float(association_p),
            "rate_inside": m_in / n_misled,
            "rate_outside": (m_all - m_in) / max(n_others - n_misled, 1),
            "effect": _rate_ratio(m_in, n_misled, m_all - m_in, n_others - n_misled),
        }

    def _insight(self, ctx: AnalysisContext, c: dict, q_value: float) -> Insight:
        """The insight of one tested shortcut candidate."""
        name, k, mask = c["population"].name, c["class"], c["mask"]
        label = ctx.class_label(k)
        loss = ctx.samples["loss"].to_numpy(dtype=np.float64)
        others = ctx.is_eval & (ctx.samples["target"].to_numpy() != k)
        loss_ratio = float(np.nanmean(loss[mask]) / max(np.nanmean(loss[others & ~mask]), 1e-12))
        evidence = Evidence(
            detector=self.name,
            effect=c["effect"],
            effect_name=f"rate of predicting {label} inside / outside (other classes, eval)",
            p_value=c["p_value"],
            q_value=q_value,
            n=int(mask.sum()),
            counts={
                str(s): int(v)
                for s, v in ctx.samples.loc[mask, "subset"].value_counts().to_dict().items()
            },
            details={
                "slice": name,
                "class": k,
                "train_share_inside": c["train_share_inside"],
                "train_share_outside": c["train_share_outside"],
                "association_p": c["association_p"],
                "predicted_as_class_inside": c["rate_inside"],
                "predicted_as_class_outside": c["rate_outside"],
                "loss_ratio": loss_ratio,
            },
        )
        return Insight(
            kind=self.name,
            title=(
                f"Shortcut {name} -> {label}: {round(c['rate_inside'] * mask.sum())} of "
                f"{int(mask.sum())} other-class evaluation samples with it predicted {label} "
                f"({c['rate_inside']:.0%} against {c['rate_outside']:.1%} elsewhere)"
            ),
            population=population_ids(ctx, mask),
            evidence=[evidence],
            description=(
                f"In training, {c['train_share_inside']:.0%} of {name} samples are {label} "
                f"against {c['train_share_outside']:.0%} elsewhere, and the model follows it: "
                f"evaluation samples of other classes with {name} are predicted {label} "
                f"{c['rate_inside']:.0%} of the time against {c['rate_outside']:.1%} elsewhere, "
                f"and their loss is {loss_ratio:.2g}x that of other classes' samples elsewhere."
            ),
            action=(
                f"Break the shortcut: add training samples with {name} from other classes (and of "
                f"{label} without it), or remove the cue; check with Grad-CAM that the model "
                "looks at the object on these samples."
            ),
        )
