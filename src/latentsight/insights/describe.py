"""Describing a population in words: the metadata that is enriched in it, backed by tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from latentsight.insights.columns import MAX_CATEGORIES, is_categorical
from latentsight.insights.stats import enrichment_test, rank_test_greater

MIN_SHARE_RATIO = 1.5  # a category must be this many times more common inside than outside
MIN_AUC_DISTANCE = 0.1  # a number must separate inside from outside with AUC >= 0.6 or <= 0.4


@dataclass(frozen=True)
class Enrichment:
    """A metadata property that sets a population apart, with its test."""

    column: str
    text: str  # e.g. "background = blue: 71% vs 6% elsewhere"
    p_value: float
    effect: float  # share ratio (categories) or AUC distance from 0.5 (numbers)


def enriched_metadata(
    samples: pd.DataFrame, columns: list[str], mask: np.ndarray, top: int = 3
) -> list[Enrichment]:
    """The ``top`` metadata properties most significantly enriched inside ``mask``."""
    found: list[Enrichment] = []
    n_in = int(mask.sum())
    if n_in == 0 or n_in == len(mask):
        return found
    for column in columns:
        series = samples[column]
        if is_categorical(series):
            values = series.astype("string").fillna("<missing>")
            counts = values.value_counts()
            if len(counts) > MAX_CATEGORIES:
                continue
            categories = counts.index.to_numpy()
            k_total = counts.to_numpy()
            k_in = values[mask].value_counts().reindex(categories, fill_value=0).to_numpy()
            p, ratio = enrichment_test(k_in, np.full(len(k_in), n_in), k_total, len(values))
            p = np.where((ratio >= MIN_SHARE_RATIO) & (k_in / n_in >= 0.1), p, 1.0)
            best = int(np.argmin(p))
            share_in = k_in[best] / n_in
            share_out = (k_total[best] - k_in[best]) / max(len(values) - n_in, 1)
            found.append(
                Enrichment(
                    column,
                    f"{column} = {categories[best]}: {share_in:.0%} vs {share_out:.0%} elsewhere",
                    float(p[best]),
                    float(ratio[best]),
                )
            )
        else:
            numbers = series.to_numpy(dtype=np.float64)
            if np.isnan(numbers).all():
                continue
            test = rank_test_greater(numbers, mask[None])
            auc = float(test.auc[0])
            if abs(auc - 0.5) < MIN_AUC_DISTANCE:
                continue
            p = float(min(test.p[0], rank_test_greater(-numbers, mask[None]).p[0]) * 2)
            direction = "higher" if auc > 0.5 else "lower"
            inside, outside = np.nanmedian(numbers[mask]), np.nanmedian(numbers[~mask])
            found.append(
                Enrichment(
                    column,
                    f"{column} {direction}: median {inside:.3g} vs {outside:.3g} elsewhere",
                    min(p, 1.0),
                    abs(auc - 0.5),
                )
            )
    found.sort(key=lambda e: (e.p_value, -e.effect))
    return [e for e in found[:top] if e.p_value < 0.05]


def stands_out(samples: pd.DataFrame, columns: list[str], mask: np.ndarray) -> str:
    """A sentence naming what sets a population apart (" It stands out by ..."), or ""."""
    words = [e.text for e in enriched_metadata(samples, columns, mask)]
    return f" It stands out by {'; '.join(words)}." if words else ""
