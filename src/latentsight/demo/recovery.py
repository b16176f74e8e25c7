"""How well a ranked list of populations recovers the demo's planted failure modes.

Each planted mode is a set of samples known from the hidden ground truth. A finder (latentsight's
insights, or a peer's slices) returns populations in rank order. Per mode, as the Domino paper
scores slice discovery, we take the population among the top ``k`` that matches the mode best
(highest F1) and report its precision and recall, and, with its members ordered hardest first
(by loss, as a gallery shows them), its precision among the first 10 and its average precision.
Beside them, ``list_average_precision`` scores the whole list read top-down: the sample ranking
it induces (members of the first population first, then new members of the second, and so on).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from latentsight.demo.shapes import SPURIOUS_BACKGROUND, SPURIOUS_CLASS

PLANTED_MODES = (
    "spurious correlation",
    "under-represented population",
    "inconsistent labels",
    "over-represented easy samples",
)


def planted_masks(samples: pd.DataFrame, truth: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per planted mode, the mask (in ``samples`` order) of the samples the mode harms.

    The spurious correlation harms evaluation images whose background says "circle" while the
    object is not one; the other modes are the planted samples themselves.
    """
    table = samples[["id", "subset"]].merge(truth, on="id", how="left", validate="one_to_one")
    background = samples["background"].astype(str).to_numpy()
    is_eval = (table["subset"] != "train").to_numpy()
    misleading = (background == SPURIOUS_BACKGROUND) & (
        table["true_shape"].to_numpy() != SPURIOUS_CLASS
    )
    return {
        "spurious correlation": misleading & is_eval,
        "under-represented population": table["grayscale"].to_numpy(bool),
        "inconsistent labels": table["label_flipped"].to_numpy(bool),
        "over-represented easy samples": table["easy_copy"].to_numpy(bool),
    }


def _average_precision(populations: Sequence[np.ndarray], truth: np.ndarray) -> float:
    """AP of the sample ranking induced by the ranked populations (unlisted samples never hit)."""
    seen = np.zeros_like(truth)
    hits = 0
    listed = 0
    precision_sum = 0.0
    for members in populations:
        new = members & ~seen
        seen |= new
        new_hits = truth[new]
        ranks = listed + np.arange(1, new.sum() + 1)
        cumulative = hits + np.cumsum(new_hits)
        precision_sum += float((cumulative / ranks)[new_hits].sum())
        hits += int(new_hits.sum())
        listed += int(new.sum())
    return precision_sum / max(int(truth.sum()), 1)


def _ordered_precision(
    members: np.ndarray, truth: np.ndarray, hardness: np.ndarray, top: int
) -> tuple[float, float]:
    """Precision among the ``top`` hardest members, and the average precision of the members
    ranked hardest first (non-members never ranked)."""
    rows = np.flatnonzero(members)
    ranked = truth[rows[np.argsort(-hardness[rows], kind="stable")]]
    precision_at_top = float(ranked[:top].mean()) if len(ranked) else 0.0
    hits = np.cumsum(ranked)
    average = float((hits / np.arange(1, len(ranked) + 1))[ranked].sum())
    return precision_at_top, average / max(int(truth.sum()), 1)


def recovery_table(
    finder: str,
    populations: Sequence[np.ndarray],
    masks: dict[str, np.ndarray],
    hardness: np.ndarray,
    k: int = 10,
    top: int = 10,
) -> pd.DataFrame:
    """Per planted mode: rank, precision, recall and F1 of the best top-``k`` match, its
    precision among its ``top`` hardest members and its AP (members ordered by ``hardness``,
    e.g. the loss), and the AP of the whole list."""
    hardness = np.nan_to_num(np.asarray(hardness, dtype=np.float64), nan=-np.inf)
    rows = []
    for mode, truth in masks.items():
        best = {"rank": None, "precision": 0.0, "recall": 0.0, "f1": 0.0}
        best_members = None
        for rank, members in enumerate(populations[:k], start=1):
            hit = int((members & truth).sum())
            if hit == 0:
                continue
            precision = hit / int(members.sum())
            recall = hit / max(int(truth.sum()), 1)
            f1 = 2 * precision * recall / (precision + recall)
            if f1 > best["f1"]:
                best = {"rank": rank, "precision": precision, "recall": recall, "f1": f1}
                best_members = members
        at_top, average = (
            _ordered_precision(best_members, truth, hardness, top)
            if best_members is not None
            else (0.0, 0.0)
        )
        rows.append(
            {
                "finder": finder,
                "mode": mode,
                "truth_size": int(truth.sum()),
                **best,
                f"precision_at_{top}": at_top,
                "average_precision": average,
                "list_average_precision": _average_precision(populations, truth),
            }
        )
    return pd.DataFrame(rows)


def masks_of(populations: Sequence[Sequence[str]], ids: Sequence[str]) -> list[np.ndarray]:
    """Boolean masks (in ``ids`` order) of populations given as lists of sample ids."""
    position = {sample_id: i for i, sample_id in enumerate(ids)}
    masks = []
    for population in populations:
        mask = np.zeros(len(ids), dtype=bool)
        mask[[position[sample_id] for sample_id in population]] = True
        masks.append(mask)
    return masks
