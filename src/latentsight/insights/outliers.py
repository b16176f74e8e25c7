"""Outliers: samples far from every other sample in latent space.

A sample's remoteness is its mean distance to its ``k`` nearest neighbours in the shared kNN graph.
Its log is scored against the whole distribution with a robust z-score: centre the median, scale
the upper semi-interquartile range (the right tail of kNN distances is longer than the left, and
exact duplicates pile up at the left). A sample is an outlier when its z-score exceeds what the
largest of ``n`` normal draws reaches with probability ``FAMILY_RATE`` (so a clean data set flags
nothing however large it is) and its distance is at least ``MIN_DISTANCE_RATIO`` times the typical
one (in many dimensions distances concentrate, and a z-score alone would flag the tail of a smooth
cloud).

The set of outliers becomes an insight when it differs from the rest in a way that matters:
higher loss (one-sided rank test), or a share of samples outside the training subset (out-of-scope
inputs) or inside it (broken training samples) above the rest's (hypergeometric test), with
Benjamini-Hochberg across the three tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

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
from latentsight.insights.stats import benjamini_hochberg, enrichment_test, rank_test_greater

FAMILY_RATE = 0.01  # chance that a clean, normal-tailed data set has any outlier at all
MIN_Z = 4.0  # the z-score threshold never goes below this, however few samples
MIN_DISTANCE_RATIO = 1.5  # an outlier is at least this many times farther than the median sample
MIN_EFFECT = 1.5  # loss ratio or share ratio for the outliers to be notably different
MAX_EFFECT = 1e3  # a ratio with nothing outside is reported as this (keeps the ranking finite)
ACTION = "Check these for data errors or out-of-scope inputs."


def outlier_scores(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Robust z-score of the log mean kNN distance, the outlier flags, and the thresholds used.

    ``distances`` is the ``N x k`` distance matrix of the neighbour graph.
    """
    remoteness = distances.astype(np.float64).mean(axis=1)
    n = len(remoteness)
    positive = remoteness[remoteness > 0]
    threshold = max(MIN_Z, float(stats.norm.isf(FAMILY_RATE / max(n, 1))))
    info = {"z_threshold": threshold, "median_distance": float(np.median(remoteness)) if n else 0.0}
    if len(positive) < 3:
        return np.zeros(n), np.zeros(n, bool), info
    logs = np.log(np.maximum(remoteness, positive.min()))
    centre = float(np.median(logs))
    spread = (float(np.quantile(logs, 0.75)) - centre) / stats.norm.isf(0.25)
    if spread <= 0:
        spread = float(np.median(np.abs(logs - centre))) * 1.4826
    if spread <= 0:
        return np.zeros(n), np.zeros(n, bool), info
    z = (logs - centre) / spread
    far = remoteness >= MIN_DISTANCE_RATIO * np.median(remoteness)
    return z, (z > threshold) & far, info


@register
class Outliers(Detector):
    """Samples far from everything else, reported when they differ from the rest."""

    name = "outliers"
    description = (
        "Samples far from all others in latent space (robust z of the kNN distance); an insight "
        "when their loss or subset mix differs from the rest's (rank / hypergeometric test, BH)."
    )

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        """Score every sample, flag the outliers, and test whether they differ from the rest."""
        z, flags, info = outlier_scores(ctx.neighbors.distances)
        scores = pd.DataFrame(
            {"id": ctx.samples["id"].to_numpy(), "outlier_score": z, "is_outlier": flags}
        )
        info["outliers"] = int(flags.sum())
        if flags.sum() < ctx.settings.min_population:
            return DetectorResult([], scores=scores, info=info)

        remoteness = ctx.neighbors.distances.astype(np.float64).mean(axis=1)
        info["distance_ratio"] = float(
            np.median(remoteness[flags]) / max(np.median(remoteness), 1e-12)
        )
        tests = self._tests(ctx, flags)
        info["tests"] = {name: {"effect": e, "p_value": p} for name, (e, p, _) in tests.items()}
        q = benjamini_hochberg(np.array([p for _, p, _ in tests.values()]))
        counts = ctx.samples.loc[flags, "subset"].value_counts()
        evidence = [
            Evidence(
                detector=self.name,
                effect=effect,
                effect_name=f"{words} inside / outside",
                p_value=p,
                q_value=float(q_value),
                n=int(flags.sum()),
                counts={str(k): int(v) for k, v in counts.items()},
                details={
                    "test": name,
                    "z_threshold": info["z_threshold"],
                    "distance_ratio": info["distance_ratio"],
                },
            )
            for (name, (effect, p, words)), q_value in zip(tests.items(), q, strict=True)
            if q_value < ctx.settings.alpha and effect >= MIN_EFFECT
        ]
        if not evidence:
            return DetectorResult([], scores=scores, info=info)
        findings = ", ".join(
            f"{e.effect_name.removesuffix(' inside / outside')} {e.effect:.2g}x the rest's"
            for e in evidence
        )
        words = [e.text for e in enriched_metadata(ctx.samples, ctx.metadata_columns, flags)]
        insight = Insight(
            kind=self.name,
            title=f"{int(flags.sum())} outliers far from all other samples: {findings}",
            population=population_ids(ctx, flags),
            evidence=evidence,
            description=(
                f"{int(flags.sum())} samples lie far from all others in {ctx.layer}: their nearest "
                f"neighbours are on median {info['distance_ratio']:.2g}x farther away than a "
                f"typical sample's. Against the rest: {findings}."
                + (f" They stand out by {'; '.join(words)}." if words else "")
            ),
            action=ACTION,
        )
        return DetectorResult([insight], scores=scores, info=info)

    @staticmethod
    def _tests(ctx: AnalysisContext, flags: np.ndarray) -> dict[str, tuple[float, float, str]]:
        """name -> (effect ratio >= 0, p-value, effect name) for each property tested."""
        tests: dict[str, tuple[float, float, str]] = {}
        labeled = ctx.is_labeled
        if (flags & labeled).sum() >= 2 and (~flags & labeled).sum() >= 2:
            loss = ctx.samples["loss"].to_numpy(dtype=np.float64)[labeled]
            inside = flags[labeled]
            mean_in, mean_out = float(np.nanmean(loss[inside])), float(np.nanmean(loss[~inside]))
            ratio = mean_in / mean_out if mean_out > 0 else float("inf")
            p = float(rank_test_greater(loss, inside[None]).p[0])
            tests["loss"] = (min(ratio, MAX_EFFECT), p, "mean loss")
        n = ctx.n
        for name, mask, words in (
            ("outside_training", ~ctx.is_train, "share outside the training subset"),
            ("inside_training", ctx.is_train, "share inside the training subset"),
        ):
            if 0 < mask.sum() < n:
                p, ratio = enrichment_test(
                    np.array([(flags & mask).sum()]),
                    np.array([flags.sum()]),
                    np.array([mask.sum()]),
                    n,
                )
                tests[name] = (min(float(ratio[0]), MAX_EFFECT), float(p[0]), words)
        return tests
