"""Tying discovered concepts to the loss: concepts whose samples cost significantly more than the
rest of their class become insights.

A sample is *dominated* by the concept with its largest code in its group's dictionary. For each
concept, the samples it dominates are compared with the other samples of its group (the class,
for per-class dictionaries, so a concept is judged against its own class's difficulty) on the
evaluation subsets when the run has enough of them, else on every labeled sample.

The test asks whether they cost more *than samples the model was as sure about*: each sample's
loss minus the mean loss of its group's samples in the same confidence decile (when the run
records a confidence), then a one-sided Mann-Whitney test of that excess inside against
outside, with Benjamini-Hochberg across every concept tested. Without this, any concept that
sits near the decision boundary would be reported, since low-confidence samples always cost
more; a shortcut shows as confident mistakes, which the excess keeps. The effect reported is the
plain ratio of mean losses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from latentsight.insights.base import Evidence, Insight
from latentsight.insights.describe import stands_out
from latentsight.insights.stats import benjamini_hochberg, rank_test_greater

if TYPE_CHECKING:
    from latentsight.discovery.result import ConceptBank

KIND = "concept_aggressor"
MIN_LOSS_RATIO = 1.5


def _excess_over_confidence(
    loss: np.ndarray, confidence: np.ndarray | None, rows: np.ndarray
) -> np.ndarray:
    """Each loss minus the mean loss of the samples in its confidence decile (of ``rows``)."""
    if confidence is None:
        return loss - loss.mean()
    ranks = pd.Series(confidence[rows]).rank(method="first").to_numpy()
    decile = np.minimum((10 * (ranks - 1) / len(ranks)).astype(int), 9)
    means = pd.Series(loss).groupby(decile).transform("mean").to_numpy()
    return loss - means


def dominant_concepts(bank: ConceptBank) -> np.ndarray:
    """Per sample of the bank, the concept id with its largest code in its group (-1: none)."""
    dominant = np.full(len(bank.samples), -1, dtype=np.int64)
    for group in bank.banks:
        strongest = group.dominant()
        dominant[group.rows] = np.where(strongest >= 0, group.first + strongest, -1)
    return dominant


def concept_loss_insights(
    bank: ConceptBank,
    *,
    alpha: float,
    min_population: int,
    metadata_columns: list[str],
    train_subset: str = "train",
) -> list[Insight]:
    """The concepts whose dominated samples have significantly higher loss than their group's
    other samples; each insight's population is the tested samples the concept dominates."""
    samples = bank.samples
    if "loss" not in samples:
        return []
    loss = samples["loss"].to_numpy(dtype=np.float64)
    labeled = ~np.isnan(loss)
    evaluation = labeled & (samples["subset"] != train_subset).to_numpy()
    scope = evaluation if evaluation.sum() >= min_population else labeled
    dominant = dominant_concepts(bank)
    confidence = (
        samples["confidence"].to_numpy(dtype=np.float64) if "confidence" in samples else None
    )
    excess = np.full(len(samples), np.nan)
    tested: list[tuple[int, np.ndarray, np.ndarray]] = []  # concept, its samples, the rest
    p_values: list[np.ndarray] = []
    for group in bank.banks:
        in_group = np.zeros(len(samples), bool)
        in_group[group.rows] = True
        in_group &= scope
        excess[in_group] = _excess_over_confidence(loss[in_group], confidence, in_group)
        found = []
        for concept in range(group.first, group.first + group.dictionary.k):
            inside = in_group & (dominant == concept)
            outside = in_group & ~inside
            if inside.sum() >= min_population and outside.sum() >= min_population:
                found.append((concept, inside, outside))
        if found:  # every concept of the group in one vectorised test over the group's samples
            masks = np.stack([inside[in_group] for _, inside, _ in found])
            p_values.append(rank_test_greater(excess[in_group], masks).p)
            tested.extend(found)
    if not tested:
        return []
    p = np.concatenate(p_values)
    q = benjamini_hochberg(p)
    names = bank.table.set_index("concept")
    on = "evaluation subsets" if scope is evaluation else "labeled subsets"
    insights = []
    for (concept, inside, outside), p_value, q_value in zip(tested, p, q, strict=True):
        mean_in, mean_out = float(loss[inside].mean()), float(loss[outside].mean())
        ratio = mean_in / mean_out if mean_out > 0 else float("inf")
        if q_value >= alpha or ratio < MIN_LOSS_RATIO or excess[inside].mean() <= 0:
            continue
        row = names.loc[concept]
        label = f"concept {concept}" + (f" ('{row['name']}')" if row["named"] else " (unnamed)")
        klass = None if pd.isna(row["class"]) else int(row["class"])
        of_class = f" of class {klass}" if klass is not None else ""
        subsets = samples.loc[inside, "subset"].value_counts().to_dict()
        evidence = Evidence(
            detector=KIND,
            effect=ratio,
            effect_name="mean loss of the concept's samples / the rest of its class",
            p_value=float(p_value),
            q_value=float(q_value),
            n=int(inside.sum()),
            counts={str(k): int(v) for k, v in subsets.items()},
            details={
                "concept": int(concept),
                "class": klass,
                "name": str(row["name"]),
                "mean_inside": mean_in,
                "mean_outside": mean_out,
                "mean_excess_over_same_confidence": float(excess[inside].mean()),
                "tested_on": on,
            },
            layer=bank.layer,
        )
        insights.append(
            Insight(
                kind=KIND,
                title=f"Samples{of_class} dominated by {label}: loss {ratio:.2g}x the rest",
                population=samples.loc[inside, "id"].astype(str).tolist(),
                evidence=[evidence],
                description=(
                    f"{int(inside.sum())} samples{of_class} ({on}) whose strongest concept at "
                    f"{bank.layer} is {label} have mean loss {mean_in:.3g} against "
                    f"{mean_out:.3g} for the rest of their class."
                    + stands_out(samples, metadata_columns, inside)
                ),
                action=(
                    "Look at the concept's top samples (run.discover_concepts(...).top_samples"
                    f"({concept})): if it is a shortcut or a hard sub-population, rebalance, "
                    "augment or collect data that breaks it."
                ),
            )
        )
    return insights
