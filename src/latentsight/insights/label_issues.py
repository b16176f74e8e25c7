"""Label issues: samples whose label disagrees with the model and with their latent neighbours, and
the regions of latent space or metadata where such samples concentrate (inconsistent labelling).

Two signals are combined per sample:

- cleanlab's confident learning on the stored predicted probabilities (``find_label_issues``) and
  its label quality score (``get_label_quality_scores``);
- label consistency with the latent neighbours (the shared kNN graph): the share of a sample's
  labelled neighbours that carry another label, and the label a majority of them agree on. This
  part does not depend on what the model predicts, so it still sees label errors that the model
  memorised during training.

``label_issue_score`` (in [0, 1]) is the mean of ``1 - quality`` and the neighbour disagreement;
``is_label_issue`` marks a cleanlab flag or at least ``NEIGHBOUR_MAJORITY`` of the neighbours
agreeing on one other label; ``suggested_label`` is that label (else the model's prediction for
a cleanlab flag, else the given label).

Candidate regions are the latent territories of each class (samples whose neighbours agree on
it), the latent clusters and the metadata slices. A region is reported when its rate of suspects
is significantly above the rate elsewhere (hypergeometric test, Benjamini-Hochberg) and at least
``MIN_RATE_RATIO`` times it, and when the model backs it: on the region's held-out suspects, the
model mostly doubts the given label too, significantly more often than it doubts other held-out
labels (an early layer that groups samples by colour makes minority labels look wrong where the
model's output has them right).

Only a model that has learned the labels gives latents and probabilities against which a label can
be judged: when its accuracy is not significantly above always answering the most common class,
nothing is flagged (a model with random weights groups samples by colour or texture, and the
minority labels inside such a group would otherwise look like label errors).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from latentsight.insights.base import (
    AnalysisContext,
    AnalysisSettings,
    Detector,
    DetectorResult,
    Evidence,
    Insight,
    population_ids,
    register,
)
from latentsight.insights.describe import enriched_metadata
from latentsight.insights.populations import (
    Population,
    cluster_populations,
    metadata_populations,
)
from latentsight.insights.stats import benjamini_hochberg, binomial_test, enrichment_test

CLASSIFICATION_TASKS = ("classification", "binary")
NEIGHBOUR_MAJORITY = 0.6  # a suspect's neighbours must agree on one other label at least this often
MIN_RATE_RATIO = 2.0  # a region's suspect rate must be this many times the rate elsewhere
KIND = "inconsistent_labels"
MIN_HELD_OUT = 5  # held-out suspects needed to check a region against the model
MIN_HELD_OUT_SUPPORT = 0.5  # share of them whose label the model doubts too (at least)
ACTION = "Review and relabel these samples (listed with scores in run.scores)."


def _labels_and_probabilities(
    ctx: AnalysisContext,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    """(labelled mask, integer labels, probabilities of the labelled rows) or why there are none."""
    if "probabilities" not in ctx.samples or "target" not in ctx.samples:
        return "the run stores no probabilities or targets"
    target = pd.to_numeric(ctx.samples["target"], errors="coerce").to_numpy(dtype=np.float64)
    probabilities = ctx.samples["probabilities"].to_numpy()
    has_probabilities = np.array([p is not None and np.size(p) > 1 for p in probabilities])
    labeled = ctx.is_labeled & ~np.isnan(target) & has_probabilities
    if labeled.sum() < ctx.settings.min_population:
        return "too few labelled samples"
    labels = target[labeled]
    matrix = np.stack([np.asarray(p, dtype=np.float64) for p in probabilities[labeled]])
    n_classes = matrix.shape[1]
    if np.any(labels != np.round(labels)) or labels.min() < 0 or labels.max() >= n_classes:
        return "targets are not class indices of the stored probabilities"
    matrix = np.clip(matrix, 0.0, None)
    matrix /= np.maximum(matrix.sum(axis=1, keepdims=True), 1e-12)
    return labeled, labels.astype(np.int64), matrix


@dataclass(frozen=True)
class SuspectRates:
    """Each tested region's rate of suspects against the rate elsewhere (hypergeometric, BH);
    arrays by region, ``masks`` over the labelled samples."""

    masks: np.ndarray
    k_in: np.ndarray
    n_in: np.ndarray
    p: np.ndarray
    ratio: np.ndarray
    q: np.ndarray
    rate_out: np.ndarray

    def reported(self, j: int, settings: AnalysisSettings) -> bool:
        """Whether region ``j`` holds significantly and substantially more suspects."""
        return bool(
            self.q[j] < settings.alpha
            and self.ratio[j] >= MIN_RATE_RATIO
            and self.k_in[j] >= settings.min_population
        )


def suspect_rates(
    regions: list[Population], labeled: np.ndarray, suspects: np.ndarray
) -> SuspectRates:
    """Test every region for a raised rate of suspects among its labelled samples."""
    masks = np.stack([r.mask[labeled] for r in regions])
    k_in, n_in = (masks & suspects).sum(axis=1), masks.sum(axis=1)
    k_total, n_total = int(suspects.sum()), len(suspects)
    p, ratio = enrichment_test(k_in, n_in, np.full(len(regions), k_total), n_total)
    rate_out = (k_total - k_in) / np.maximum(n_total - n_in, 1)
    return SuspectRates(masks, k_in, n_in, p, ratio, benjamini_hochberg(p), rate_out)


def _model_has_learned(
    ctx: AnalysisContext, labeled: np.ndarray, labels: np.ndarray, probabilities: np.ndarray
) -> dict[str, float | bool | str]:
    """Whether the model's accuracy is significantly above always answering the commonest class,
    on evaluation samples (all labelled samples when there are too few)."""
    on_eval = ctx.is_eval[labeled]
    rows = on_eval if on_eval.sum() >= ctx.settings.min_population else np.ones(len(labels), bool)
    correct = probabilities[rows].argmax(axis=1) == labels[rows]
    accuracy = float(correct.mean())
    baseline = float(np.bincount(labels[rows]).max() / rows.sum())
    p = float(binomial_test(np.array([correct.sum()]), np.array([rows.sum()]), baseline)[0])
    return {
        "learned": bool(accuracy > baseline and p < ctx.settings.alpha),
        "accuracy": accuracy,
        "majority_class_share": baseline,
        "p_value": p,
        "measured_on": "evaluation subsets" if rows is on_eval else "labeled subsets",
    }


def _neighbour_shares(
    ctx: AnalysisContext, labeled: np.ndarray, labels: np.ndarray, n_classes: int
) -> np.ndarray:
    """Per labelled sample, the share of its labelled neighbours carrying each class (NaN rows when
    no neighbour is labelled)."""
    full = np.full(ctx.n, -1, dtype=np.int64)
    full[labeled] = labels
    neighbour_labels = full[ctx.neighbors.indices[labeled]]  # n_labeled x k, -1 = unlabelled
    counts = np.zeros((len(labels), n_classes))
    rows = np.broadcast_to(np.arange(len(labels))[:, None], neighbour_labels.shape)
    known = neighbour_labels >= 0
    np.add.at(counts, (rows[known], neighbour_labels[known]), 1.0)
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts / total, np.nan)


def _cleanlab(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's confident-learning flags and label quality scores (1 = surely right)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "too few examples in class": nothing to act on
        flags = find_label_issues(labels, probabilities, n_jobs=1)
        quality = get_label_quality_scores(labels, probabilities)
    return np.asarray(flags, dtype=bool), np.asarray(quality, dtype=np.float64)


def _pair_summary(pairs: pd.Series, top: int = 3) -> str:
    """'labelled class 0 but neighbours say class 2 (31), ...' for the most common pairs."""
    counts = pairs.value_counts()
    parts = [
        f"labelled {given} but neighbours say {said} ({n})" for (given, said), n in counts.items()
    ]
    more = f", and {len(parts) - top} more pairs" if len(parts) > top else ""
    return "; ".join(parts[:top]) + more


@register
class LabelIssues(Detector):
    """Likely label errors per sample, and the regions where they concentrate."""

    name = "label_issues"
    tasks = CLASSIFICATION_TASKS
    description = (
        "Samples whose label disagrees with the model (cleanlab) or with their latent neighbours, "
        "and regions where they concentrate (hypergeometric test, BH)."
    )

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        """Score every labelled sample, then test regions for a raised rate of suspects."""
        found = _labels_and_probabilities(ctx)
        if isinstance(found, str):
            return DetectorResult([], info={"skipped": found})
        labeled, labels, probabilities = found
        n_classes = probabilities.shape[1]
        gate = _model_has_learned(ctx, labeled, labels, probabilities)

        cleanlab_flags, quality = _cleanlab(labels, probabilities)
        shares = _neighbour_shares(ctx, labeled, labels, n_classes)
        has_neighbours = ~np.isnan(shares[:, 0])
        rows = np.arange(len(labels))
        disagreement = np.where(has_neighbours, 1.0 - np.nan_to_num(shares)[rows, labels], np.nan)
        agreed = np.nan_to_num(shares, nan=-1.0).argmax(axis=1)
        majority = np.nan_to_num(shares).max(axis=1) >= NEIGHBOUR_MAJORITY
        neighbour_flags = has_neighbours & majority & (agreed != labels)
        score = np.where(
            has_neighbours, 0.5 * (1.0 - quality) + 0.5 * np.nan_to_num(disagreement), 1 - quality
        )
        suspects = (neighbour_flags | cleanlab_flags) & bool(gate["learned"])
        suggested = np.where(
            neighbour_flags, agreed, np.where(cleanlab_flags, probabilities.argmax(axis=1), labels)
        )
        scores = self._scores(ctx, labeled, score, suspects, suggested)
        info = {
            "model_check": gate,
            "labeled": int(labeled.sum()),
            "suspects": int(suspects.sum()),
            "cleanlab_flagged": int(cleanlab_flags.sum()),
            "neighbour_flagged": int(neighbour_flags.sum()),
        }
        if not gate["learned"]:
            info["skipped"] = (
                f"the model's accuracy ({gate['accuracy']:.1%}) is not significantly above the "
                f"most common class's share ({gate['majority_class_share']:.1%}): labels are not "
                "judged against a model that has not learned them"
            )
            return DetectorResult([], scores=scores, info=info)

        territory = np.full(ctx.n, -1, dtype=np.int64)
        territory[labeled] = np.where(has_neighbours & majority, agreed, -1)
        regions = (
            [
                Population(
                    f"where the latent neighbours say {ctx.class_label(c)}",
                    "neighbour labels",
                    mask,
                )
                for c in range(n_classes)
                if (mask := territory == c).sum() >= ctx.settings.min_population
            ]
            + cluster_populations(ctx)
            + metadata_populations(ctx)
        )
        # every region large enough is tested (and counted by BH), whatever its suspect count
        regions = [r for r in regions if (r.mask & labeled).sum() >= ctx.settings.min_population]
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
        given = pd.Series([ctx.class_label(c) for c in labels])
        said = pd.Series([ctx.class_label(c) for c in suggested])
        insights = []
        held_out = ctx.is_eval[labeled]
        model_doubts = probabilities.argmax(axis=1) != labels
        for j, region in enumerate(regions):
            if not rates.reported(j, ctx.settings):
                continue
            inside = masks[j] & suspects
            n_held_out = int((inside & held_out).sum())
            doubted = int((inside & held_out & model_doubts).sum())
            support = doubted / max(n_held_out, 1)
            # the model doubts these held-out labels, and more often than the other held-out ones
            p_support = float(
                enrichment_test(
                    np.array([doubted]),
                    np.array([n_held_out]),
                    np.array([(held_out & model_doubts).sum()]),
                    int(held_out.sum()),
                )[0][0]
            )
            backed = support >= MIN_HELD_OUT_SUPPORT and p_support < ctx.settings.alpha
            if n_held_out >= MIN_HELD_OUT and not backed:
                info.setdefault("not_backed_by_model", []).append(region.name)
                continue
            population = np.zeros(ctx.n, bool)
            population[labeled] = inside
            rate_in, rate_out = k_in[j] / n_in[j], rates.rate_out[j]
            pairs = pd.Series(list(zip(given[inside], said[inside], strict=True)))
            words = [
                e.text for e in enriched_metadata(ctx.samples, ctx.metadata_columns, population)
            ]
            subsets = ctx.samples.loc[population, "subset"].value_counts().to_dict()
            evidence = Evidence(
                detector=self.name,
                effect=float(ratio[j]),
                effect_name="share of likely label issues inside / outside",
                p_value=float(p[j]),
                q_value=float(q[j]),
                n=int(k_in[j]),
                counts={str(k): int(v) for k, v in subsets.items()},
                details={
                    "region": region.name,
                    "source": region.source,
                    "region_size": int(n_in[j]),
                    "rate_inside": float(rate_in),
                    "rate_outside": float(rate_out),
                    "cleanlab_flagged": int((inside & cleanlab_flags).sum()),
                    "neighbour_flagged": int((inside & neighbour_flags).sum()),
                    "held_out_suspects": n_held_out,
                    "held_out_model_disagrees": support if n_held_out >= MIN_HELD_OUT else None,
                    "held_out_p_value": p_support if n_held_out >= MIN_HELD_OUT else None,
                    "label_pairs": {
                        f"{g} -> {s}": int(n) for (g, s), n in pairs.value_counts().items()
                    },
                },
            )
            insights.append(
                Insight(
                    kind=KIND,
                    title=f"{region.name}: {int(k_in[j])} likely label issues "
                    f"({ratio[j]:.2g}x the rate elsewhere)",
                    population=population_ids(ctx, population),
                    evidence=[evidence],
                    description=(
                        f"{region.name[0].upper()}{region.name[1:]} ({int(n_in[j])} labelled "
                        f"samples), {rate_in:.0%} of the labels look wrong against {rate_out:.0%} "
                        f"elsewhere: {_pair_summary(pairs)}."
                        + (f" These samples stand out by {'; '.join(words)}." if words else "")
                    ),
                    action=ACTION,
                )
            )
        return DetectorResult(insights, scores=scores, info=info)

    @staticmethod
    def _scores(
        ctx: AnalysisContext,
        labeled: np.ndarray,
        score: np.ndarray,
        suspects: np.ndarray,
        suggested: np.ndarray,
    ) -> pd.DataFrame:
        """Per-sample columns for run.scores (unlabelled samples get no score)."""
        frame = pd.DataFrame(
            {
                "id": ctx.samples["id"].to_numpy(),
                "label_issue_score": np.nan,
                "is_label_issue": False,
                "suggested_label": pd.array([pd.NA] * ctx.n, dtype="Int64"),
            }
        )
        frame.loc[labeled, "label_issue_score"] = np.clip(score, 0.0, 1.0)
        frame.loc[labeled, "is_label_issue"] = suspects
        frame.loc[labeled, "suggested_label"] = suggested
        return frame
