"""Near-duplicates and leakage: samples whose nearest neighbour is far closer than is typical.

How samples are called near-duplicates, and how that is tested:

* Typical distance: the median first-neighbour distance of the samples that are not themselves
  near-duplicates (a few fixed-point iterations of "median of those above the threshold", so that
  a data set that is one quarter copies keeps an honest reference).
* Candidates: a pair is a candidate when its distance is below ``ratio`` (default 0.25) times the
  typical distance, in the reduced space the neighbour graph uses *and* in the layer's full latent
  space (PCA can only shrink distances, so the full space vetoes pairs that merely agree in the
  leading components). Both are relative to their own typical distance: no tuning to a layer's
  scale. Candidate pairs are joined into groups (connected components, scipy.sparse.csgraph).
* Gap test, one per group: a dense region also has small first-neighbour distances, so closeness
  alone is not evidence. A group is kept when it is separated from the rest of the data by a gap
  that a locally uniform point cloud would rarely leave. From the group's centre ``c`` (the member
  whose farthest fellow member is nearest) the ``g - 1`` other members lie within ``r_in``; the
  ``OUTSIDE``-th (5th) nearest unflagged sample lies at ``r_out``, with ``J`` samples closer than
  it. In a Poisson cloud of intrinsic dimension ``m`` the volumes to successive neighbours are the
  arrival times of a Poisson process, so ``(r_in / r_out) ** m`` is at least the ratio of the
  ``(g - 1)``-th to the ``(J + 1)``-th arrival, which is Beta(g - 1, J + 2 - g): its CDF is a
  p-value ``u`` whatever the local density. A fitted global distribution of distances is not: on
  the shapes layers and on synthetic clouds, density that varies across the space made a Weibull
  fitted to the first-neighbour distances understate the chance of close pairs 2-10x. Flagged
  samples of other groups between ``r_in`` and ``r_out`` count towards ``J`` (conservative); the
  5th rather than the 1st unflagged sample keeps a few look-alikes just above the threshold from
  hiding a gap. ``m`` is the Levina-Bickel maximum-likelihood intrinsic dimension (median over
  unflagged samples; it underestimates high dimensions, so the test errs conservative). When the
  neighbour graph holds fewer than 5 unflagged neighbours of ``c``, one exact distance row is
  computed. On clouds without duplicates a run raises an insight about ``alpha`` of the time.
* Every sample is a potential group centre, so the groups' ``u`` are corrected by
  Benjamini-Hochberg over all ``N`` samples; groups with ``q < alpha`` are kept. A group with
  training and evaluation members is leakage; one inside the training subset is redundancy; one
  inside another subset only gets per-sample scores. With class labels, copies share the label
  held by a strict majority of their group's training members: only evaluation members with it
  leak, and only training members with it are redundant. On the demo, faint objects too small
  to see make near-identical images of different classes, whose evaluation loss is high, not
  inflated (a false "leakage" before this rule); groups without a majority label are counted in
  ``info["conflicting_groups"]``. An insight's p-value is the Simes
  combination of its groups' ``u`` over the same ``N``.
* Collapsed classes: a group whose labelled members carry two classes or more, in any subsets.
  The model represents them as near-identical, so it cannot give each its own class: either the
  inputs are copies and labels disagree (the members outside the group's majority class are
  listed as the likely errors), or the inputs differ and the model does not separate them. On
  the default demo this is one group of grayscale images of several shapes (the
  under-represented population), with ten times the mean loss.
* Effect: typical distance / the population's median duplicate distance ("how many times closer
  than usual"), capped at ``MAX_EFFECT`` so that exact copies (distance 0) stay finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse, stats
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
from latentsight.insights.stats import benjamini_hochberg, simes

DUPLICATE_RATIO = 0.25  # a pair closer than this fraction of the typical distance is a candidate
MAX_EFFECT = 1000.0  # effects and scores are capped here (exact copies have distance 0)
TYPICAL_ITERATIONS = 5
MAX_EXACT_ROWS = 1000  # groups whose gap needs an exact distance row; beyond: u = 1
OUTSIDE = 5  # the gap is measured to this nearest unflagged sample (the 5th)
MAX_PAIRWISE = 2000  # groups up to this size get their exact centre
_CHUNK = 4096
_BATCH = 64  # exact distance rows computed at once


@dataclass(frozen=True)
class DuplicateGroups:
    """Near-duplicate groups of one context, before and after the gap test."""

    candidates: np.ndarray  # N int: candidate group per sample, -1 for none
    ratio: np.ndarray  # N float: relative distance to the nearest candidate partner (or neighbour)
    u: np.ndarray  # per candidate group: the gap test's p-value
    q: np.ndarray  # per candidate group: Benjamini-Hochberg over the N samples
    labels: np.ndarray  # N int: kept group per sample (-1 for none), numbered largest first
    typical: float  # typical first-neighbour distance in the reduced space
    typical_full: float  # the same in the full latent space
    dimension: float  # intrinsic dimension used by the gap test
    threshold: float  # the relative threshold used


def typical_distance(first: np.ndarray, ratio: float) -> float:
    """Median first-neighbour distance of the samples not below ``ratio`` times it (iterated)."""
    positive = first[first > 0]
    if positive.size == 0:
        return 0.0
    typical = float(np.median(positive))
    for _ in range(TYPICAL_ITERATIONS):
        kept = first[first >= ratio * typical]
        updated = float(np.median(kept)) if kept.size else typical
        if updated == typical:
            break
        typical = updated
    return typical


def intrinsic_dimension(distances: np.ndarray) -> float:
    """Median Levina-Bickel maximum-likelihood intrinsic dimension over rows of sorted kNN
    distances (rows with a zero distance are left out)."""
    rows = distances[(distances > 0).all(axis=1)].astype(np.float64)
    if len(rows) == 0 or rows.shape[1] < 3:
        return 1.0
    logs = np.log(rows[:, -1:] / rows[:, :-1]).sum(axis=1)
    with np.errstate(divide="ignore"):
        estimates = (rows.shape[1] - 1) / logs
    estimates = estimates[np.isfinite(estimates)]
    return float(np.median(estimates)) if estimates.size else 1.0


def row_distances(vectors: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Euclidean distances between ``vectors[rows]`` and ``vectors[cols]``, in chunks."""
    out = np.empty(len(rows), dtype=np.float64)
    for start in range(0, len(rows), _CHUNK):
        sl = slice(start, start + _CHUNK)
        diff = vectors[rows[sl]].astype(np.float64) - vectors[cols[sl]].astype(np.float64)
        out[sl] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def _components(n: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Connected components of the pairs: group per sample (-1 alone), numbered largest first."""
    graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, components = connected_components(graph, directed=False)
    return _renumber(components, np.bincount(components)[components] > 1)


def _renumber(groups: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Groups where ``keep``, numbered 0.. by size (largest first, ties by first row); else -1."""
    out = np.full(len(groups), -1)
    if not keep.any():
        return out
    ids, first, sizes = np.unique(groups[keep], return_index=True, return_counts=True)
    order = np.lexsort((np.flatnonzero(keep)[first], -sizes))
    new = np.empty(len(ids), dtype=np.int64)
    new[order] = np.arange(len(ids))
    out[keep] = new[np.searchsorted(ids, groups[keep])]
    return out


def _centre(points: np.ndarray) -> tuple[int, float]:
    """The member whose farthest fellow member is nearest (its row) and that distance."""
    if len(points) > MAX_PAIRWISE:  # too many for all pairs: the member nearest the mean
        row = int(np.argmin(np.linalg.norm(points - points.mean(axis=0), axis=1)))
        return row, float(np.linalg.norm(points - points[row], axis=1).max())
    squared = np.einsum("ij,ij->i", points, points)
    pairwise = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * points @ points.T, 0))
    farthest = pairwise.max(axis=1)
    row = int(np.argmin(farthest))
    return row, float(farthest[row])


def gap_test(
    ctx: AnalysisContext, candidates: np.ndarray, dimension: float
) -> tuple[np.ndarray, np.ndarray]:
    """The gap test's p-value ``u`` per candidate group, and the central member it used.

    From the group's centre ``c``: its ``g - 1`` fellow members lie within ``r_in``, the
    ``OUTSIDE``-th nearest unflagged sample at ``r_out`` with ``J`` samples closer;
    ``u = BetaCDF((r_in / r_out) ** m; g - 1, J + 2 - g)`` (see the module docstring).
    """
    indices, distances = ctx.neighbors.indices, ctx.neighbors.distances.astype(np.float64)
    vectors = ctx.reduced.astype(np.float64)
    flagged = candidates >= 0
    n_groups = int(candidates.max()) + 1
    members = np.flatnonzero(flagged)
    members = members[np.argsort(candidates[members], kind="stable")]
    bounds = np.searchsorted(candidates[members], np.arange(n_groups + 1))
    sizes = np.diff(bounds)
    centres = np.empty(n_groups, dtype=np.int64)
    r_in = np.empty(n_groups)
    for group in range(n_groups):
        rows = members[bounds[group] : bounds[group + 1]]
        at, r_in[group] = _centre(vectors[rows])
        centres[group] = rows[at]
    # The OUTSIDE-th nearest unflagged sample, and how many samples of any kind are closer: from
    # the neighbour list when it holds that many unflagged ones, else from an exact row.
    unflagged = ~flagged[indices[centres]]
    counts = np.cumsum(unflagged, axis=1)
    listed = counts[:, -1] >= OUTSIDE
    slot = np.argmax(counts >= OUTSIDE, axis=1)
    r_out = np.where(listed, distances[centres, slot], np.nan)
    closer = np.where(listed, slot, 0)
    beyond = np.flatnonzero(~listed)[:MAX_EXACT_ROWS]
    if beyond.size and (~flagged).sum() >= OUTSIDE:
        norms = np.einsum("ij,ij->i", vectors, vectors)
        for start in range(0, len(beyond), _BATCH):
            groups = beyond[start : start + _BATCH]
            rows = centres[groups]
            block = norms[rows, None] + norms[None, :] - 2.0 * vectors[rows] @ vectors.T
            block[np.arange(len(rows)), rows] = np.inf
            out = np.partition(block[:, ~flagged], OUTSIDE - 1, axis=1)[:, OUTSIDE - 1]
            r_out[groups] = np.sqrt(np.maximum(out, 0.0))
            closer[groups] = (block < out[:, None]).sum(axis=1)
    # Order statistics: the (g-1)-th nearest point within r_in, the (closer + 1)-th at r_out.
    u = np.ones(n_groups)
    ok = np.isfinite(r_out) & (r_out > 0) & (closer + 1 > sizes - 1)
    x = np.minimum(1.0, r_in[ok] / r_out[ok]) ** dimension
    u[ok] = stats.beta.cdf(x, sizes[ok] - 1, closer[ok] + 1 - (sizes[ok] - 1))
    return u, centres


def find_duplicate_groups(
    ctx: AnalysisContext, ratio: float = DUPLICATE_RATIO, alpha: float | None = None
) -> DuplicateGroups:
    """Candidate pairs (below ``ratio`` of the typical distance in the reduced and full spaces),
    their groups, and the groups that pass the gap test at false discovery rate ``alpha``."""
    n = ctx.n
    alpha = ctx.settings.alpha if alpha is None else alpha
    indices = ctx.neighbors.indices
    distances = ctx.neighbors.distances.astype(np.float64)
    typical = typical_distance(distances[:, 0], ratio)
    latents = ctx.latents.reshape(n, -1)
    first_full = row_distances(latents, np.arange(n), indices[:, 0])
    typical_full = typical_distance(first_full, ratio)
    none = np.full(n, -1)
    if typical <= 0 or typical_full <= 0:  # every sample has an exact copy
        return DuplicateGroups(
            none, np.zeros(n), np.ones(0), np.ones(0), none, typical, typical_full, 1.0, ratio
        )
    relative = distances / typical
    # Per sample: the verified ratio of its closest candidate pair, else of its first neighbour.
    sample_ratio = np.maximum(relative[:, 0], first_full / typical_full)
    rows, slots = np.nonzero(relative < ratio)
    cols = indices[rows, slots]
    pair_ratio = np.maximum(
        relative[rows, slots], row_distances(latents, rows, cols) / typical_full
    )
    np.minimum.at(sample_ratio, rows, pair_ratio)
    np.minimum.at(sample_ratio, cols, pair_ratio)
    keep = pair_ratio < ratio
    candidates = _components(n, rows[keep], cols[keep])
    dimension = intrinsic_dimension(distances[candidates < 0])
    if candidates.max() < 0:
        return DuplicateGroups(
            candidates,
            sample_ratio,
            np.ones(0),
            np.ones(0),
            none,
            typical,
            typical_full,
            dimension,
            ratio,
        )
    u, _ = gap_test(ctx, candidates, dimension)
    padded = np.ones(max(n, len(u)))
    padded[: len(u)] = u
    q = benjamini_hochberg(padded)[: len(u)]
    in_kept = (candidates >= 0) & (q[np.maximum(candidates, 0)] < alpha)
    labels = _renumber(candidates, in_kept)
    return DuplicateGroups(
        candidates, sample_ratio, u, q, labels, typical, typical_full, dimension, ratio
    )


def effect_of(ratios: np.ndarray) -> float:
    """Typical distance / the median duplicate distance (both relative), capped."""
    return float(min(1.0 / max(float(np.median(ratios)), 1.0 / MAX_EFFECT), MAX_EFFECT))


def _class_targets(ctx: AnalysisContext) -> np.ndarray | None:
    """The class labels as floats (NaN where missing), or None where labels are not classes
    (regression, multi-label, no targets)."""
    if ctx.task not in ("classification", "binary") or "target" not in ctx.samples:
        return None
    return pd.to_numeric(ctx.samples["target"], errors="coerce").to_numpy(dtype=np.float64)


def _strict_majority(counts: pd.DataFrame) -> pd.Series:
    """Per row of class counts, the class holding more than half of the row; rows without one
    are left out."""
    return counts.idxmax(axis=1)[counts.max(axis=1) * 2 > counts.sum(axis=1)]


def _labelled_like_train(
    ctx: AnalysisContext, groups: np.ndarray, target: np.ndarray | None
) -> np.ndarray:
    """Per sample: whether it carries the class label held by most of its group's training members.

    Copies share their label. A group whose training members have no majority label holds
    near-identical inputs of different classes (an object too small or faint to see), not copies;
    and an evaluation sample that nearly copies training samples of another class is no leak: the
    model learned the other label for it, so its loss is high, not inflated. A strict majority
    keeps one mislabelled training copy from hiding the rest. All True where labels are not
    classes (regression, multi-label, no targets).
    """
    if target is None or np.isnan(target[ctx.is_labeled]).any():
        return np.ones(ctx.n, dtype=bool)
    in_train = (groups >= 0) & ctx.is_train
    majority = _strict_majority(pd.crosstab(groups[in_train], target[in_train]))
    return target == majority.reindex(groups).to_numpy(dtype=np.float64)


def _class_counts(
    ctx: AnalysisContext, groups: np.ndarray, target: np.ndarray | None
) -> pd.DataFrame:
    """Per group (rows) the number of labelled members of each class (columns); empty where
    labels are not classes."""
    if target is None:
        return pd.DataFrame()
    counted = (groups >= 0) & ctx.is_labeled & ~np.isnan(target)
    return pd.crosstab(groups[counted], target[counted].astype(np.int64))


def _minority(
    ctx: AnalysisContext,
    members: np.ndarray,
    classes: pd.Series,
    majority: int | None,
    target: np.ndarray,
) -> dict[str, Any]:
    """A collapsed group's classes, its strict-majority class (None without one) and the ids of
    the members outside it (all labelled members without a majority): the likely errors when the
    members are copies."""
    outside = members & ctx.is_labeled
    if majority is not None:
        outside &= target != majority
    return {
        "classes": {str(label): int(count) for label, count in classes.items() if count > 0},
        "majority_class": None if majority is None else int(majority),
        "minority_ids": population_ids(ctx, outside)[:IDS_LISTED],
    }


@register
class NearDuplicates(Detector):
    """Near-duplicate groups: leakage between training and evaluation data, redundancy in train."""

    name = "duplicate"
    description = (
        "Samples far closer to a neighbour than typical, grouped and gap-tested; groups spanning "
        "train and evaluation are leakage, groups inside train are redundancy, groups holding "
        "several classes are collapsed classes."
    )

    def __init__(self, ratio: float = DUPLICATE_RATIO) -> None:
        self.ratio = ratio

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        """Find the groups, test leakage and redundancy, and score every sample."""
        if ctx.n < 3:
            return DetectorResult([], info={"tested": 0})
        found = find_duplicate_groups(ctx, self.ratio)
        labels = found.labels
        scores = pd.DataFrame(
            {
                "id": ctx.samples["id"].to_numpy(),
                "duplicate_group": labels,
                "duplicate_score": np.minimum(
                    1.0 / np.maximum(found.ratio, 1.0 / MAX_EFFECT), MAX_EFFECT
                ),
            }
        )
        n_groups = int(labels.max()) + 1
        grouped = labels >= 0
        train_count = np.bincount(labels[grouped], ctx.is_train[grouped], n_groups)
        eval_count = np.bincount(labels[grouped], ctx.is_eval[grouped], n_groups)
        target = _class_targets(ctx)
        like_train = _labelled_like_train(ctx, labels, target)
        spanning = np.flatnonzero((train_count > 0) & (eval_count > 0))
        leaked = np.isin(labels, spanning) & ctx.is_eval & like_train
        leaking = np.unique(labels[leaked])
        inside_train = np.flatnonzero((train_count >= 2) & (eval_count == 0))
        train_copies = np.bincount(labels[grouped], (ctx.is_train & like_train)[grouped], n_groups)
        redundant = inside_train[train_copies[inside_train] >= 2]
        # The gap test's u of each kept group (kept groups are candidate groups, renumbered).
        kept_u = np.ones(n_groups)
        kept_u[labels[grouped]] = found.u[found.candidates[grouped]]
        classes = _class_counts(ctx, labels, target)
        mixed = classes[(classes > 0).sum(axis=1) >= 2]
        collapsed = mixed.index.to_numpy(dtype=np.int64)
        info = {
            "threshold_ratio": self.ratio,
            "typical_distance": found.typical,
            "typical_distance_full": found.typical_full,
            "intrinsic_dimension": found.dimension,
            "candidate_groups": int(found.candidates.max()) + 1,
            "candidate_samples": int((found.candidates >= 0).sum()),
            "groups": n_groups,
            "grouped_samples": int(grouped.sum()),
            "leaking_groups": len(leaking),
            "conflicting_groups": len(spanning) - len(leaking) + len(inside_train) - len(redundant),
            "redundant_groups": len(redundant),
            "collapsed_groups": len(collapsed),
        }
        candidates = []
        if leaking.size:
            candidates.append(("leakage", leaking))
        copies = np.isin(labels, redundant) & (like_train | ~ctx.is_train)
        if redundant.size and copies.sum() >= ctx.settings.min_population:
            candidates.append(("redundancy", redundant))
        if collapsed.size:
            candidates.append(("collapsed_classes", collapsed))
        p_values = np.array([simes(kept_u[groups], ctx.n) for _, groups in candidates])
        q_values = benjamini_hochberg(p_values)
        members = {
            "leakage": np.isin(labels, leaking) & (ctx.is_train | leaked),
            "redundancy": copies,
            "collapsed_classes": np.isin(labels, collapsed),
        }
        insights = [
            self._insight(
                ctx, found, kind, groups, members[kind], float(p), float(q), mixed, target
            )
            for (kind, groups), p, q in zip(candidates, p_values, q_values, strict=True)
        ]
        return DetectorResult(insights, scores=scores, info={**info, "tested": len(candidates)})

    def _insight(
        self,
        ctx: AnalysisContext,
        found: DuplicateGroups,
        kind: str,
        groups: np.ndarray,
        mask: np.ndarray,
        p: float,
        q: float,
        classes: pd.DataFrame,
        target: np.ndarray | None,
    ) -> Insight:
        """One leakage, redundancy or collapsed-classes insight over the members (``mask``) of
        its groups; ``classes`` counts the classes in each collapsed group of ``target``."""
        samples = ctx.samples
        subsets = samples.loc[mask, "subset"].value_counts().to_dict()
        effect = effect_of(found.ratio[mask])
        collapsing = kind == "collapsed_classes"
        majority = _strict_majority(classes.loc[groups]) if collapsing else pd.Series()
        listed = []
        for group in groups[:GROUPS_LISTED]:
            members = mask & (found.labels == group)
            entry = {
                "group": int(group),
                "size": int(members.sum()),
                "subsets": {
                    str(k): int(v) for k, v in samples.loc[members, "subset"].value_counts().items()
                },
                "ids": population_ids(ctx, members)[:IDS_LISTED],
            }
            if collapsing:
                entry.update(
                    _minority(ctx, members, classes.loc[group], majority.get(group), target)
                )
            listed.append(entry)
        details = {
            "groups": listed,
            "n_groups": len(groups),
            "threshold_ratio": found.threshold,
            "typical_distance": found.typical,
            "intrinsic_dimension": found.dimension,
            "test": "gap test per group (uniform under a locally uniform cloud), BH over all "
            "samples, Simes across the groups",
        }
        n_groups, n = len(groups), int(mask.sum())
        if kind == "leakage":
            leaked = mask & ctx.is_eval
            n_eval = int(leaked.sum())
            if "loss" in samples:
                loss = samples["loss"].to_numpy(dtype=np.float64)
                rest = ctx.is_eval & ~leaked
                details["eval_mean_loss_leaked"] = float(np.nanmean(loss[leaked]))
                details["eval_mean_loss_rest"] = (
                    float(np.nanmean(loss[rest])) if rest.any() else None
                )
            title = f"Leakage: {n_eval} evaluation samples near-duplicate training samples"
            description = (
                f"{n_groups} near-duplicate group{'s' if n_groups > 1 else ''} ({n} samples) "
                f"span training and evaluation data: {n_eval} evaluation samples sit "
                f"{effect:.3g}x closer to a training sample than neighbours typically are."
            )
            action = (
                "Remove the evaluation copies or move them to train: evaluation scores are "
                "inflated."
            )
        elif kind == "collapsed_classes":
            n_classes = int((classes.loc[groups] > 0).any(axis=0).sum())
            title = (
                f"Collapsed classes: {n} samples of {n_classes} classes that the model represents "
                "as near-identical"
            )
            groups_text = (
                f"{n_groups} groups of near-identical latent vectors ({n} samples, largest "
                f"{listed[0]['size']})"
                if n_groups > 1
                else f"A group of {n} near-identical latent vectors"
            )
            description = (
                f"{groups_text}, {effect:.3g}x closer to each other than neighbours typically "
                f"are, hold{'' if n_groups > 1 else 's'} {n_classes} classes: the model cannot "
                "tell these samples apart, so some are misclassified whatever it predicts."
            )
            action = (
                "Look at each group: if the inputs are copies, their labels disagree and the "
                "minority ones are likely wrong (relabel them); if the inputs differ, the model "
                "does not separate them (collect more samples like them)."
            )
        else:
            title = f"Redundancy: {n} training samples in {n_groups} near-duplicate groups"
            description = (
                f"{n_groups} group{'s' if n_groups > 1 else ''} of near-identical training "
                f"samples ({n} samples, largest {listed[0]['size']}) are {effect:.3g}x closer to "
                f"each other than neighbours typically are; {n - n_groups} of them add little."
            )
            action = "De-duplicate: keep one or a few of each group."
        evidence = Evidence(
            detector=self.name,
            effect=effect,
            effect_name="typical neighbour distance / duplicate distance",
            p_value=p,
            q_value=q,
            n=n,
            counts={str(k): int(v) for k, v in subsets.items()},
            details=details,
        )
        return Insight(
            kind=kind,
            title=title,
            population=population_ids(ctx, mask),
            evidence=[evidence],
            description=description,
            action=action,
        )
