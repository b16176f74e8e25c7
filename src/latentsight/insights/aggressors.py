"""Performance aggressors: populations whose loss is significantly above the rest's."""

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
from latentsight.insights.describe import stands_out
from latentsight.insights.populations import cluster_populations, metadata_populations
from latentsight.insights.stats import benjamini_hochberg, rank_test_greater

MIN_LOSS_RATIO = 1.1


def failure_columns(ctx: AnalysisContext) -> dict[str, np.ndarray]:
    """Per-sample values where larger means failing: each loss column, and metrics by direction."""
    columns = {name: ctx.samples[name].to_numpy(dtype=np.float64) for name in ctx.loss_columns}
    for metric, better in ctx.metrics.items():
        values = ctx.samples[f"metric_{metric}"].to_numpy(dtype=np.float64)
        columns[f"metric_{metric}"] = -values if better == "higher" else values
    return columns


@register
class PerformanceAggressors(Detector):
    """Clusters and metadata slices whose loss (any component, any metric) exceeds the rest's."""

    name = "performance_aggressor"
    description = (
        "Populations whose loss is significantly above the rest (one-sided rank test, BH)."
    )

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        """Test every population against every failure column; report the significant ones."""
        on_eval = ctx.is_eval.sum() >= ctx.settings.min_population
        scope = ctx.is_eval if on_eval else ctx.is_labeled
        populations = [
            p
            for p in cluster_populations(ctx) + metadata_populations(ctx)
            if (p.mask & scope).sum() >= ctx.settings.min_population
        ]
        columns = failure_columns(ctx)
        if not populations or not columns:
            return DetectorResult([], info={"tested": 0})
        masks = np.stack([p.mask[scope] for p in populations])
        tests = {name: rank_test_greater(values[scope], masks) for name, values in columns.items()}
        q = benjamini_hochberg(np.concatenate([t.p for t in tests.values()])).reshape(
            len(tests), -1
        )
        insights = []
        for j, population in enumerate(populations):
            best = int(np.argmin(q[:, j]))
            column = list(tests)[best]
            values = columns[column][scope]
            inside, outside = values[masks[j]], values[~masks[j]]
            mean_in, mean_out = float(np.nanmean(inside)), float(np.nanmean(outside))
            ratio = mean_in / mean_out if mean_out > 0 else float("inf")
            if not column.startswith("loss"):
                ratio = float(tests[column].auc[j] / max(1 - tests[column].auc[j], 1e-9))
            if ratio < MIN_LOSS_RATIO:
                continue
            full_mask = population.mask & ctx.is_labeled
            subsets = ctx.samples.loc[full_mask, "subset"].value_counts().to_dict()
            evidence = Evidence(
                detector=self.name,
                effect=ratio,
                effect_name=f"mean {column} inside / outside"
                if column.startswith("loss")
                else f"odds that {column} is worse inside",
                p_value=float(tests[column].p[j]),
                q_value=float(q[best, j]),
                n=int(full_mask.sum()),
                counts={str(k): int(v) for k, v in subsets.items()},
                details={
                    "column": column,
                    "mean_inside": mean_in,
                    "mean_outside": mean_out,
                    "auc": float(tests[column].auc[j]),
                    "source": population.source,
                    "tested_on": "evaluation subsets"
                    if scope is not ctx.is_labeled
                    else "labeled subsets",
                },
            )
            insights.append(
                Insight(
                    kind=self.name,
                    title=f"{population.name}: {column} {ratio:.2g}x the rest",
                    population=population_ids(ctx, full_mask),
                    evidence=[evidence],
                    description=(
                        f"{population.name} ({_counted(int(full_mask.sum()), len(inside))}) has "
                        f"mean {column} {mean_in:.3g} against {mean_out:.3g} elsewhere."
                        + stands_out(
                            ctx.samples,
                            [c for c in ctx.metadata_columns if c != population.column],
                            population.mask,
                        )
                    ),
                    action=(
                        "Inspect these samples first: collect or up-weight training data like "
                        "them, and check whether the enriched metadata names a cause."
                    ),
                )
            )
        return DetectorResult(insights, info={"tested": len(populations) * len(columns)})


def _counted(population: int, tested: int) -> str:
    """The population's size, and how many of its samples the test read when fewer (the
    evaluation subsets only)."""
    if tested == population:
        return f"{population} samples"
    return f"{population} samples, {tested} of them in the evaluation subsets the means are of"
