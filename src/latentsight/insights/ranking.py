"""One scale for every finding: significant insights ranked by impact, overlapping ones merged."""

from __future__ import annotations

import math
from collections import Counter

from latentsight.insights.base import Insight

MERGE_JACCARD = 0.5
KIND_DECAY = 0.5  # each earlier insight of the same kind halves the next one's claim to a place


def impact(insight: Insight) -> float:
    """Samples affected times the log of the strongest effect ratio (DESIGN.md's one scale)."""
    strongest = max(e.effect for e in insight.evidence)
    return insight.size * math.log(max(strongest, 1.0 + 1e-9))


def jaccard(a: set[str], b: set[str]) -> float:
    """Overlap of two populations: |a & b| / |a | b|."""
    return len(a & b) / len(a | b) if a or b else 0.0


def rank_insights(insights: list[Insight], alpha: float) -> list[Insight]:
    """Keep insights significant at ``alpha``, score them, merge overlapping ones, best first.

    An insight whose population overlaps a better one's by Jaccard >= 0.5 is folded into it: the
    better one keeps its title and gains the other's evidence. The order then favours variety
    (see :func:`diversify`).
    """
    significant = [insight for insight in insights if insight.q_value < alpha]
    for insight in significant:
        insight.score = impact(insight)
    significant.sort(key=lambda insight: (-insight.score, insight.q_value, insight.title))
    kept: list[tuple[Insight, set[str]]] = []
    for insight in significant:
        population = set(insight.population)
        for existing, existing_population in kept:
            if jaccard(population, existing_population) >= MERGE_JACCARD:
                existing.evidence.extend(insight.evidence)
                existing.merged.append(insight.title)
                break
        else:
            kept.append((insight, population))
    return diversify([insight for insight, _ in kept])


def diversify(ranked: list[Insight]) -> list[Insight]:
    """Reorder so that the k-th insight of a kind competes with ``KIND_DECAY ** k`` of its impact.

    Twenty metadata slices with higher loss should not push the only label-issue finding off the
    first screen: the list opens with the strongest finding of each kind, and a kind's weaker
    findings follow where their discounted impact places them. Scores are left as they are.
    """
    remaining = list(ranked)
    placed: Counter[str] = Counter()
    ordered = []
    while remaining:
        best = max(remaining, key=lambda i: i.score * KIND_DECAY ** placed[i.kind])
        remaining.remove(best)
        placed[best.kind] += 1
        ordered.append(best)
    return ordered
