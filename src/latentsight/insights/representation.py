"""Representation: populations whose share of the training data differs from their share of the
evaluation data (labeled subsets other than the training subset).

How it works, and why its tests are honest:

* The labeled samples are split in two halves, stratified by train / evaluation and seeded. A
  kernel logistic regression (RBF Nystroem features of the standardised reduced latents, then
  logistic regression) fitted on one half tells training from evaluation samples; applied to the
  other half it gives each sample a cross-fitted density ratio: how many times more common samples
  like it are in evaluation than in training (``log_ratio``, per-sample score). A sample's score
  is the fitted ratio averaged over the sample and its kNN neighbours, all read from the model of
  the other half: one point's kernel estimate is noisy, and a few noisy seeds are enough to chain
  two distinct evaluation-heavy populations into one component. ``REGULARISATION_C`` is 3: the
  value 3-fold log-loss cross-validation picks (from 0.3 to 30) on every layer of the demo at both
  its default size and 3,000 / 1,000; at 1 the shrunk estimate yields fewer seeds (on the demo's
  grayscale images, recall 0.53 against 0.59 in its second convolution, and 0.12 against 0.60 in
  its first at 3,000 / 1,000).
* Seeds: samples whose ratio is at least ``RATIO_THRESHOLD`` (evaluation-heavy) or at most its
  inverse (training-heavy). Seeds of one half joined through the shared kNN graph (edges inside
  that half only) form that half's candidate groups. A group's membership depends on the other
  half's train / evaluation labels and on features only, never on its own members' labels, so
  its members' counts are an honest sample: each group is tested with an exact binomial test of
  its evaluation count against the half's evaluation share.
* Reported population: the seeds of both halves joined through the kNN graph (the connected
  component holding the tested group); the evidence carries the tested half's counts.
* Latent clusters and metadata slices are tested the same way on all labeled samples (they are
  chosen without the labels, so no split is needed).
* Benjamini-Hochberg runs across every tested candidate. Effect: the population's share of the
  evaluation data over its share of the training data (under-represented), or the inverse
  (over-represented), with half a count added to each side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

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
from latentsight.insights.stats import benjamini_hochberg, binomial_test

RATIO_THRESHOLD = 3.0  # a seed's estimated density ratio (eval / train, or its inverse)
MIN_EFFECT = 1.5  # a population's share ratio must reach this to be reported
NYSTROEM_COMPONENTS = 300
REGULARISATION_C = 3.0
MAX_FIT_SAMPLES = 50_000  # the classifier of each half is fitted on at most this many samples
UNDER, OVER = "under_represented", "over_represented"
ACTIONS = {
    UNDER: "Collect or label more training samples like these.",
    OVER: "Down-sample or de-duplicate; the model may be spending capacity on them.",
}


@dataclass(frozen=True)
class _Candidate:
    """A population to report and the counts its test used."""

    name: str
    source: str  # "density ratio", "cluster" or "metadata"
    mask: np.ndarray  # the population reported (labeled samples)
    k_eval: int  # evaluation samples among the tested samples
    k_train: int  # training samples among the tested samples
    n_eval: int  # evaluation samples in the tested scope
    n_train: int  # training samples in the tested scope
    direction: str | None = None  # the density-ratio direction that seeded it


def split_halves(train: np.ndarray, evals: np.ndarray, seed: int) -> np.ndarray:
    """Half 0 or 1 per labeled sample (stratified by train / evaluation), -1 elsewhere."""
    rng = np.random.default_rng(seed)
    half = np.full(len(train), -1, dtype=np.int64)
    for group in (train, evals):
        members = rng.permutation(np.flatnonzero(group))
        half[members[::2]] = 0
        half[members[1::2]] = 1
    return half


def density_log_ratio(
    vectors: np.ndarray, evals: np.ndarray, half: np.ndarray, neighbors: np.ndarray, seed: int
) -> np.ndarray:
    """Cross-fitted log(p(x | evaluation) / p(x | train)) per labeled sample (NaN elsewhere).

    Each half is scored by a kernel logistic regression fitted on the other half; the model's
    log-odds minus the prior log-odds of the half it was fitted on is the log density ratio at a
    point. A sample's score is that function averaged over the sample and its kNN neighbours
    (``neighbors``, n x k indices), read from the same model throughout, so no label of the
    scored half is used; the average steadies a ratio that one point's kernel estimate leaves
    noisy.
    """
    x = vectors - vectors.mean(axis=0)
    x = x / (x.std(axis=0) + 1e-9)
    rng = np.random.default_rng(seed)
    log_ratio = np.full(len(x), np.nan)
    neighbourhood = np.concatenate([np.arange(len(x))[:, None], neighbors], axis=1)
    for h in (0, 1):
        fit = np.flatnonzero(half == 1 - h)
        if len(fit) > MAX_FIT_SAMPLES:
            fit = np.sort(rng.choice(fit, MAX_FIT_SAMPLES, replace=False))
        labels = evals[fit]
        prior = labels.mean()
        if prior in (0.0, 1.0):
            continue
        model = make_pipeline(
            Nystroem(
                gamma=1.0 / x.shape[1],
                n_components=min(NYSTROEM_COMPONENTS, len(fit)),
                random_state=seed,
            ),
            LogisticRegression(C=REGULARISATION_C, max_iter=1000),
        ).fit(x[fit], labels)
        at_point = model.decision_function(x) - np.log(prior / (1 - prior))
        scored = half == h
        log_ratio[scored] = at_point[neighbourhood[scored]].mean(axis=1)
    return log_ratio


def _components(mask: np.ndarray, neighbors: np.ndarray, same: np.ndarray | None) -> np.ndarray:
    """Connected components of the kNN graph restricted to ``mask`` (and to ``same``-labelled
    pairs when given); -1 outside the mask."""
    n, k = neighbors.shape
    rows = np.repeat(np.arange(n), k)
    cols = neighbors.ravel()
    keep = mask[rows] & mask[cols]
    if same is not None:
        keep &= same[rows] == same[cols]
    graph = sparse.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.int8), (rows[keep], cols[keep])), shape=(n, n)
    )
    _, labels = connected_components(graph, directed=False)
    return np.where(mask, labels, -1)


def _density_candidates(
    ctx: AnalysisContext, train: np.ndarray, evals: np.ndarray, half: np.ndarray, log_ratio
) -> list[_Candidate]:
    """Groups of seeds, one half at a time, each with the counts of its own half."""
    min_tested = max(ctx.settings.min_population // 2, 5)
    found: list[_Candidate] = []
    scored = ~np.isnan(log_ratio)
    for direction, sign in ((UNDER, 1.0), (OVER, -1.0)):
        seeds = scored & (sign * np.nan_to_num(log_ratio) >= np.log(RATIO_THRESHOLD))
        within = _components(seeds, ctx.neighbors.indices, half)
        joined = _components(seeds, ctx.neighbors.indices, None)
        labels, sizes = np.unique(within[within >= 0], return_counts=True)
        for label in labels[sizes >= min_tested]:
            group = within == label
            h = int(half[group][0])
            population = joined == joined[group][0]
            if population.sum() < ctx.settings.min_population:
                continue
            found.append(
                _Candidate(
                    name="",
                    source="density ratio",
                    mask=population,
                    k_eval=int((group & evals).sum()),
                    k_train=int((group & train).sum()),
                    n_eval=int((evals & (half == h)).sum()),
                    n_train=int((train & (half == h)).sum()),
                    direction=direction,
                )
            )
    return found


def _share_ratio(c: _Candidate) -> float:
    """The population's share of evaluation over its share of training (half-count smoothed)."""
    return ((c.k_eval + 0.5) / c.n_eval) / ((c.k_train + 0.5) / c.n_train)


@register
class Representation(Detector):
    """Under- and over-represented populations: training share far from evaluation share."""

    name = "representation"
    description = (
        "Populations whose share of the training data differs from their share of the "
        "evaluation data (cross-fitted density ratio, exact binomial tests, BH)."
    )

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        """Score every labeled sample's density ratio, group and test the candidates."""
        labeled = ctx.is_labeled
        train = ctx.is_train & labeled
        evals = ctx.is_eval
        minimum = ctx.settings.min_population
        if train.sum() < minimum or evals.sum() < minimum:
            return DetectorResult([], info={"tested": 0, "skipped": "too few labeled samples"})
        half = split_halves(train, evals, ctx.settings.seed)
        log_ratio = density_log_ratio(
            ctx.reduced, evals, half, ctx.neighbors.indices, ctx.settings.seed
        )
        candidates = _density_candidates(ctx, train, evals, half, log_ratio)
        n_train, n_eval = int(train.sum()), int(evals.sum())
        for population in cluster_populations(ctx) + metadata_populations(ctx):
            mask = population.mask & labeled
            if mask.sum() < minimum:
                continue
            candidates.append(
                _Candidate(
                    name=population.name,
                    source=population.source,
                    mask=mask,
                    k_eval=int((mask & evals).sum()),
                    k_train=int((mask & train).sum()),
                    n_eval=n_eval,
                    n_train=n_train,
                )
            )
        scores = pd.DataFrame({"id": ctx.samples["id"].to_numpy(), f"{self.name}_score": log_ratio})
        if not candidates:
            return DetectorResult([], scores=scores, info={"tested": 0})
        p = np.array(
            [
                binomial_test(
                    [c.k_eval], [c.k_eval + c.k_train], c.n_eval / (c.n_eval + c.n_train)
                )[0]
                for c in candidates
            ]
        )
        q = benjamini_hochberg(p)
        insights = self._insights(ctx, candidates, p, q)
        info = {
            "tested": len(candidates),
            "density_candidates": sum(c.source == "density ratio" for c in candidates),
            "seeds_under": int(np.sum(log_ratio >= np.log(RATIO_THRESHOLD))),
            "seeds_over": int(np.sum(log_ratio <= -np.log(RATIO_THRESHOLD))),
        }
        return DetectorResult(insights, scores=scores, info=info)

    def _insights(
        self, ctx: AnalysisContext, candidates: list[_Candidate], p: np.ndarray, q: np.ndarray
    ) -> list[Insight]:
        """One insight per significant population; density groups sharing a population merge."""
        by_population: dict[bytes, Insight] = {}
        region = 0
        for j in np.argsort(p, kind="stable"):
            c = candidates[j]
            ratio = _share_ratio(c)
            kind = UNDER if ratio >= 1 else OVER
            effect = ratio if kind == UNDER else 1.0 / ratio
            if effect < MIN_EFFECT or (c.direction is not None and c.direction != kind):
                continue
            key = np.packbits(c.mask).tobytes()
            subsets = ctx.samples.loc[c.mask, "subset"].value_counts().to_dict()
            evidence = Evidence(
                detector=self.name,
                effect=float(effect),
                effect_name=(
                    "share of evaluation / share of training"
                    if kind == UNDER
                    else "share of training / share of evaluation"
                ),
                p_value=float(p[j]),
                q_value=float(q[j]),
                n=int(c.mask.sum()),
                counts={str(k): int(v) for k, v in subsets.items()},
                details={
                    "source": c.source,
                    "tested_eval": c.k_eval,
                    "tested_train": c.k_train,
                    "expected_eval_share": c.n_eval / (c.n_eval + c.n_train),
                    "tested_on": "one half of the labeled samples (the other half chose it)"
                    if c.source == "density ratio"
                    else "all labeled samples",
                },
            )
            if key in by_population:
                by_population[key].evidence.append(evidence)
                continue
            if c.source == "density ratio":
                region += 1
                name = ctx.region_name(f"latent region {region}")
            else:
                name = c.name
            n_train_in = int((c.mask & ctx.is_train).sum())
            n_eval_in = int((c.mask & ctx.is_eval).sum())
            share_eval = n_eval_in / max(int(ctx.is_eval.sum()), 1)
            share_train = n_train_in / max(int((ctx.is_train & ctx.is_labeled).sum()), 1)
            more = "evaluation" if kind == UNDER else "training"
            less = "training" if kind == UNDER else "evaluation"
            by_population[key] = Insight(
                kind=kind,
                title=f"{name}: {effect:.2g}x more common in {more} than in {less} data",
                population=population_ids(ctx, c.mask),
                evidence=[evidence],
                description=(
                    f"{name} ({int(c.mask.sum())} samples) holds {share_eval:.1%} of the "
                    f"evaluation data but {share_train:.1%} of the training data."
                    + stands_out(ctx.samples, ctx.metadata_columns, c.mask)
                ),
                action=ACTIONS[kind],
            )
        return list(by_population.values())
