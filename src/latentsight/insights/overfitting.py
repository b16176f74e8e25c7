"""Overfitting: regions where evaluation loss is far above training loss compared with the global
gap, and memorised regions of training near-copies with near-zero loss.

How candidates are found and tested:

* Overfitting regions (kind "overfitting"): every latent cluster and metadata slice with enough
  training and evaluation members. Two statistics, both computed on the same permutations:
  the additive excess gap, (mean evaluation loss - mean training loss) inside minus the same
  over all samples, and the multiplicative one, log(evaluation / training mean loss) inside
  minus the same overall. The additive gap alone grows with how hard a region is: a model that
  fits all its training samples has a gap close to its evaluation loss, so every hard region
  (small, occluded objects) "overfits" on that scale, clean data included. The ratio does not
  grow with difficulty; a region must pass both (intersection-union test: the larger p-value).
  Null: region membership shuffled within the training samples and within the evaluation
  samples separately (``N_PERMUTATIONS`` seeded permutations drawn from a random subgroup: one
  seeded shuffle of each side, then random cyclic shifts of it, whose sums for every region
  come from one FFT per region; a Monte Carlo test over a group the null leaves invariant is
  exact); one-sided permutation p-values. When the observed value beats every permutation,
  the tail beyond the permutations' resolution is the normal tail of the same permutation
  distribution, never above the permutation p-value. Effect: the region's evaluation / training
  loss ratio over the overall one.
* Memorised regions (kind "memorization"): labeled samples whose nearest neighbour is far closer
  than typical (``NEAR_COPY`` times the typical first-neighbour distance) are near-copies; they
  are joined through the shared kNN graph into groups. Grouping looks at latents only, never at
  subsets or losses, so two honest tests follow: an exact binomial test that the group is
  training-heavy (training count against the global training share), and a one-sided rank test
  that its training samples' loss is below the evaluation samples' (the model fits them better
  than it does unseen data; on a model that fits all its training data this is the only
  reference that says "near zero"). A group's p-value is the larger of the two. The groups are
  one finding (a data set copied from 36 images is one problem, not 36): their family's p-value
  is Simes' combination of the groups' (the smallest of their Benjamini-Hochberg q values), and
  the insight covers the groups significant within the family, each listed in its details with
  its own tests. Effect: the typical first-neighbour distance over the near-copies' median one
  ("how many times closer"). Only training members are the population.
* Benjamini-Hochberg runs across the overfitting regions and the memorization family.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft, sparse, stats
from scipy.sparse.csgraph import connected_components

from latentsight.insights.base import (
    GROUPS_LISTED,
    IDS_LISTED,
    AnalysisContext,
    Detector,
    DetectorResult,
    Evidence,
    Insight,
    population_ids,
    register,
)
from latentsight.insights.describe import stands_out
from latentsight.insights.populations import (
    Population,
    cluster_populations,
    metadata_populations,
)
from latentsight.insights.stats import benjamini_hochberg, binomial_test, rank_test_greater

N_PERMUTATIONS = 999
TIE_TOLERANCE = 1e-9  # relative: equal sums differ by FFT rounding (~1e-13)
REGION_CHUNK = 64  # regions transformed at once (bounds memory to 64 x samples)
MIN_PER_SIDE = 5  # a region needs this many training and this many evaluation samples
MIN_EFFECT = 1.2  # overfitting: the eval / train loss ratio inside over the overall one
NEAR_COPY = 0.5  # a near-copy: first-neighbour distance below this times the typical one
MAX_EFFECT = 1e3
OVERFITTING, MEMORIZATION = "overfitting", "memorization"
ACTIONS = {
    OVERFITTING: (
        "The model fits these training samples but does not generalise to similar evaluation "
        "samples: add more varied training data like these, augment or regularise, and check "
        "whether training and evaluation samples here differ in how they were labelled."
    ),
    MEMORIZATION: (
        "The model memorises these near-copies: de-duplicate or down-weight them; they inflate "
        "training metrics and spend capacity that rarer samples need."
    ),
}


@dataclass(frozen=True)
class GapTest:
    """Per region: the excess gap on both scales and their one-sided permutation p-values."""

    excess_gap: np.ndarray  # (eval - train) inside minus (eval - train) overall
    ratio: np.ndarray  # (eval / train) inside over (eval / train) overall
    p_gap: np.ndarray
    p_ratio: np.ndarray

    @property
    def p(self) -> np.ndarray:
        """Both must hold (intersection-union test): the larger of the two p-values."""
        return np.maximum(self.p_gap, self.p_ratio)


def _tail_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One-sided permutation p-value per row; beyond the permutations' resolution (no
    permutation reaches the observed value) the normal tail of the same null, never above
    the permutation p-value."""
    spread = np.abs(null).max(axis=1, initial=0.0) + np.abs(observed)
    beaten = (null >= (observed - TIE_TOLERANCE * spread)[:, None]).sum(axis=1)
    p = (1.0 + beaten) / (null.shape[1] + 1.0)
    sd = null.std(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (observed - null.mean(axis=1)) / sd, 0.0)
    return np.where(beaten == 0, np.minimum(p, stats.norm.sf(z)), p)


def _shifted_sums(masks: np.ndarray, values: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """``R x S``: per region, the sum of ``values`` over its members moved ``shifts`` positions on.

    Entry (r, j) is ``sum_i masks[r, i] * values[(i + shifts[j]) % n]``: a circular
    cross-correlation, computed for all shifts at once through the FFT.
    """
    n = len(values)
    spectrum = fft.rfft(values)
    sums = []
    for start in range(0, len(masks), REGION_CHUNK):
        block = fft.rfft(masks[start : start + REGION_CHUNK].astype(np.float64), axis=1)
        sums.append(fft.irfft(np.conj(block) * spectrum, n=n, axis=1)[:, shifts])
    return np.concatenate(sums) if sums else np.zeros((0, len(shifts)))


def permutation_gap_test(
    loss: np.ndarray,
    train: np.ndarray,
    evals: np.ndarray,
    masks: np.ndarray,
    n_permutations: int = N_PERMUTATIONS,
    seed: int = 0,
) -> GapTest:
    """One-sided permutation tests that each region's generalisation gap exceeds the global one.

    Two statistics from the same permutations: the additive excess gap (mean eval loss - mean
    train loss inside, minus the same over all samples) and the multiplicative one (log of the
    eval / train loss ratio inside minus the same overall), which does not grow with how hard a
    region is. Region membership is shuffled within training and within evaluation samples
    separately, by permutations drawn from a random subgroup: one seeded shuffle of each side,
    then cyclic shifts of it (valid because, under the null, the losses are exchangeable under
    every permutation of a side; every shift's sums come from one FFT per region).
    """
    masks = np.atleast_2d(np.asarray(masks, dtype=bool))
    rng = np.random.default_rng(seed)
    means, overall = [], []
    for side in (train, evals):
        order = rng.permutation(np.flatnonzero(side))
        values = loss[order].astype(np.float64)
        members = masks[:, order]
        counts = members.sum(axis=1).astype(np.float64)
        shifts = np.concatenate([[0], rng.integers(0, len(values), n_permutations)])
        sums = _shifted_sums(members, values, shifts)
        means.append(sums / counts[:, None])
        overall.append(values.mean())
    (mean_t, mean_e), (overall_t, overall_e) = means, overall
    floor = 1e-9 * max(abs(overall_e), 1e-12)
    gap = mean_e - mean_t - (overall_e - overall_t)
    log_ratio = np.log(np.maximum(mean_e, floor) / np.maximum(mean_t, floor)) - np.log(
        max(overall_e, floor) / max(overall_t, floor)
    )
    return GapTest(
        excess_gap=gap[:, 0],
        ratio=np.exp(log_ratio[:, 0]),
        p_gap=_tail_p(gap[:, 0], gap[:, 1:]),
        p_ratio=_tail_p(log_ratio[:, 0], log_ratio[:, 1:]),
    )


def typical_distance(first: np.ndarray, ratio: float = NEAR_COPY, rounds: int = 3) -> float:
    """The median first-neighbour distance of samples that are not near-copies themselves."""
    typical = float(np.median(first))
    for _ in range(rounds):
        rest = first[first >= ratio * typical]
        if len(rest) == 0:
            break
        typical = float(np.median(rest))
    return typical


def near_copy_groups(ctx: AnalysisContext, labeled: np.ndarray) -> tuple[np.ndarray, float]:
    """Group label per near-copy sample (-1 elsewhere), and the typical first-neighbour distance.

    Near-copies are joined when one is among the other's ``k`` nearest neighbours; the grouping
    looks at latents only.
    """
    first = ctx.neighbors.distances[:, 0].astype(np.float64)
    typical = typical_distance(first[labeled]) if labeled.any() else 0.0
    near = labeled & (first < NEAR_COPY * typical)
    n, k = ctx.neighbors.indices.shape
    rows = np.repeat(np.arange(n), k)
    cols = ctx.neighbors.indices.ravel()
    keep = near[rows] & near[cols]
    graph = sparse.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.int8), (rows[keep], cols[keep])), shape=(n, n)
    )
    _, labels = connected_components(graph, directed=False)
    return np.where(near, labels, -1), typical


@register
class Overfitting(Detector):
    """Regions whose evaluation loss exceeds their training loss far more than on average, and
    memorised groups of near-copy training samples."""

    name = "overfitting"
    description = (
        "Regions whose train-to-evaluation loss gap exceeds the global gap (permutation test), "
        "and memorised near-copy training groups (binomial and rank tests), BH."
    )

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        """Test every region's gap and every near-copy group; report the significant ones."""
        labeled = ctx.is_labeled
        train, evals = ctx.is_train & labeled, ctx.is_eval
        minimum = ctx.settings.min_population
        if train.sum() < minimum or evals.sum() < minimum or "loss" not in ctx.samples:
            return DetectorResult([], info={"tested": 0, "skipped": "too few labeled samples"})
        loss = ctx.samples["loss"].to_numpy(dtype=np.float64)
        regions = [
            p
            for p in cluster_populations(ctx) + metadata_populations(ctx)
            if (p.mask & train).sum() >= MIN_PER_SIDE
            and (p.mask & evals).sum() >= MIN_PER_SIDE
            and (p.mask & labeled).sum() >= minimum
        ]
        gap_global = float(loss[evals].mean() - loss[train].mean())
        gap_test = permutation_gap_test(
            loss,
            train,
            evals,
            np.stack([p.mask for p in regions]) if regions else np.zeros((0, ctx.n), bool),
            seed=ctx.settings.seed,
        )
        p_regions = gap_test.p

        groups, typical = near_copy_groups(ctx, labeled)
        first = ctx.neighbors.distances[:, 0].astype(np.float64)
        share_train = float(train.sum() / labeled.sum())
        memorised: list[tuple[np.ndarray, float, dict]] = []
        labels, sizes = np.unique(groups[groups >= 0], return_counts=True)
        for label in labels[sizes >= minimum]:
            group = groups == label
            k_train, k_eval = int((group & train).sum()), int((group & evals).sum())
            if k_train < minimum or k_train / (k_train + k_eval) <= share_train:
                continue
            p_dup = float(binomial_test([k_train], [k_train + k_eval], share_train)[0])
            members = group & train
            scope = members | evals
            p_low = float(rank_test_greater(-loss[scope], members[scope][None]).p[0])
            memorised.append(
                (
                    members,
                    max(p_dup, p_low),
                    {
                        "group": int(label),
                        "p_training_heavy": p_dup,
                        "p_low_loss": p_low,
                        "n_train": k_train,
                        "n_eval": k_eval,
                        "median_distance": float(np.median(first[members])),
                        "mean_loss_inside": float(loss[members].mean()),
                        "median_loss_inside": float(np.median(loss[members])),
                    },
                )
            )
        # The groups are one family, one hypothesis among the regions: its p-value, Simes' over
        # the groups, is the smallest of their BH q values within the family.
        q_within = benjamini_hochberg(np.array([m[1] for m in memorised]))
        p_family = [float(q_within.min())] if memorised else []
        p_all = np.concatenate([p_regions, p_family])
        if len(p_all) == 0:
            return DetectorResult([], info={"tested": 0})
        q_all = benjamini_hochberg(p_all)
        insights = []
        for j, region in enumerate(regions):
            insight = self._region_insight(ctx, region, loss, train, evals, gap_test, j, q_all[j])
            if insight is not None:
                insights.append(insight)
        if memorised:
            insights.append(
                self._memorised_insight(
                    ctx, memorised, q_within, p_family[0], q_all[-1], loss, first, typical
                )
            )
        info = {
            "tested": len(p_all),
            "regions": len(regions),
            "near_copy_groups": len(memorised),
            "global_gap": gap_global,
            "typical_distance": typical,
        }
        return DetectorResult(insights, info=info)

    def _region_insight(
        self,
        ctx: AnalysisContext,
        region: Population,
        loss: np.ndarray,
        train: np.ndarray,
        evals: np.ndarray,
        test: GapTest,
        j: int,
        q: float,
    ) -> Insight | None:
        """The insight of one tested region, or None when its gap is not above the global one
        on both scales."""
        mean_t = float(loss[region.mask & train].mean())
        mean_e = float(loss[region.mask & evals].mean())
        gap_global = float(loss[evals].mean() - loss[train].mean())
        effect = float(min(test.ratio[j], MAX_EFFECT))
        if test.excess_gap[j] <= 0 or effect < MIN_EFFECT:
            return None
        full = region.mask & ctx.is_labeled
        subsets = ctx.samples.loc[full, "subset"].value_counts().to_dict()
        evidence = Evidence(
            detector=self.name,
            effect=effect,
            effect_name="evaluation / training loss ratio inside / the same ratio overall",
            p_value=float(test.p[j]),
            q_value=float(q),
            n=int(full.sum()),
            counts={str(k): int(v) for k, v in subsets.items()},
            details={
                "source": region.source,
                "mean_train_loss": mean_t,
                "mean_eval_loss": mean_e,
                "gap": mean_e - mean_t,
                "global_gap": gap_global,
                "excess_gap": float(test.excess_gap[j]),
                "p_gap": float(test.p_gap[j]),
                "p_ratio": float(test.p_ratio[j]),
                "permutations": N_PERMUTATIONS,
            },
        )
        return Insight(
            kind=OVERFITTING,
            title=(
                f"{region.name}: evaluation loss {mean_e:.3g} vs training {mean_t:.3g}, "
                f"a gap {effect:.2g}x the usual"
            ),
            population=population_ids(ctx, full),
            evidence=[evidence],
            description=(
                f"{region.name} ({int(full.sum())} samples): mean evaluation loss {mean_e:.3g} "
                f"against {mean_t:.3g} on its training samples, a gap of {mean_e - mean_t:.3g} "
                f"where the data set as a whole has {gap_global:.3g}; its evaluation / training "
                f"loss ratio is {effect:.2g}x the overall one."
                + stands_out(ctx.samples, ctx.metadata_columns, region.mask)
            ),
            action=ACTIONS[OVERFITTING],
        )

    def _memorised_insight(
        self,
        ctx: AnalysisContext,
        groups: list[tuple[np.ndarray, float, dict]],
        q_within: np.ndarray,
        p: float,
        q: float,
        loss: np.ndarray,
        first: np.ndarray,
        typical: float,
    ) -> Insight:
        """One insight over the near-copy groups significant within their family (``q_within``,
        BH across the groups; the best group when none is); ``p`` and ``q`` are the family's."""
        alpha = ctx.settings.alpha
        kept = [k for k in range(len(groups)) if q_within[k] < alpha] or [int(np.argmin(q_within))]
        kept.sort(key=lambda k: -groups[k][2]["n_train"])
        members = np.logical_or.reduce([groups[k][0] for k in kept])
        evals = ctx.is_eval
        n, n_eval = int(members.sum()), sum(groups[k][2]["n_eval"] for k in kept)
        median_distance = float(np.median(first[members]))
        effect = max(min(typical / max(median_distance, 1e-12), MAX_EFFECT), 1.0)
        listed = [
            {
                **groups[k][2],
                "p_value": groups[k][1],
                "q_within_groups": float(q_within[k]),
                "ids": population_ids(ctx, groups[k][0])[:IDS_LISTED],
            }
            for k in kept[:GROUPS_LISTED]
        ]
        details = {
            "source": "near-copies",
            "groups": listed,
            "n_groups": len(kept),
            "n_train": n,
            "n_eval": n_eval,
            "typical_distance": typical,
            "median_distance": median_distance,
            "mean_loss_inside": float(loss[members].mean()),
            "mean_loss_eval": float(loss[evals].mean()),
            "median_loss_inside": float(np.median(loss[members])),
            "median_loss_eval": float(np.median(loss[evals])),
        }
        in_groups = f"in {len(kept)} group{'s' if len(kept) > 1 else ''}"
        evidence = Evidence(
            detector=self.name,
            effect=float(effect),
            effect_name="typical nearest-neighbour distance / the near-copies' median",
            p_value=float(p),
            q_value=float(q),
            n=n,
            counts={"train": n},
            details=details,
        )
        return Insight(
            kind=MEMORIZATION,
            title=(
                f"Memorization: {n} training near-copies {in_groups}, mean loss "
                f"{details['mean_loss_inside']:.2g}"
            ),
            population=population_ids(ctx, members),
            evidence=[evidence],
            description=(
                f"{n} training samples {in_groups} of near-copies (largest "
                f"{listed[0]['n_train']}; the groups also hold {n_eval} evaluation samples) sit "
                f"{effect:.2g}x closer to their nearest neighbour than is typical; their median "
                f"loss {details['median_loss_inside']:.2g} is below the evaluation samples' "
                f"{details['median_loss_eval']:.2g}."
                + stands_out(ctx.samples, ctx.metadata_columns, members)
            ),
            action=ACTIONS[MEMORIZATION],
        )
