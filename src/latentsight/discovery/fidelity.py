"""Concept fidelity: does the importance order concepts by their effect on the class score?

C-Deletion removes each sample's concepts (code set to 0, residual kept) from the most to the
least important and tracks the mean class score: a faithful importance makes it fall fast (low
area under the curve). C-Insertion starts from every concept removed and inserts them in that
order (high area). C-muFidelity correlates, over random subsets of concepts, the summed
importance of the subset with the score's drop when it is removed. Each is compared with random
orders (random permutations of the importance among each sample's concepts); the p-value is the
share of them that do at least as well, counting the importance's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from latentsight.discovery.errors import DiscoveryError

if TYPE_CHECKING:
    from latentsight.discovery.result import Bank, ConceptBank

GRID = np.linspace(0.0, 1.0, 11)


@dataclass(frozen=True)
class Fidelity:
    """Each metric for the importance and for random orders; the mean curves behind the AUCs."""

    table: pd.DataFrame  # metric, importance, random_mean, random_std, beats_random, p_value
    curves: pd.DataFrame  # metric, order ("importance" or the mean of the random), fraction, score
    method: str
    samples: int


def order_masks(order: np.ndarray, insert: bool) -> np.ndarray:
    """Masks (n x (k + 1) x k) after 0..k steps of removing (or inserting) concepts in order."""
    n, k = order.shape
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(k)[None].repeat(n, 0), axis=1)
    done = rank[:, None, :] < np.arange(k + 1)[None, :, None]  # concept handled by step t
    return done.astype(np.float64) if insert else 1.0 - done


def resample(curves: np.ndarray) -> np.ndarray:
    """Curves over k + 1 steps (last axis) at the ``GRID`` fractions of the concepts handled,
    so that dictionaries of different sizes average."""
    steps = np.linspace(0.0, 1.0, curves.shape[-1])
    flat = curves.reshape(-1, curves.shape[-1])
    return np.stack([np.interp(GRID, steps, c) for c in flat]).reshape(*curves.shape[:-1], -1)


def auc(curve: np.ndarray) -> float:
    """Area under a curve sampled at evenly spaced fractions of [0, 1] (trapezoids)."""
    return float(((curve[1:] + curve[:-1]) / 2.0).mean())


def mu_fidelity(phi: np.ndarray, removed: np.ndarray, drops: np.ndarray) -> float:
    """Mean over samples of the correlation between summed importance and score drop."""
    sums = np.einsum("nk,nsk->ns", phi, removed)
    sums = sums - sums.mean(axis=1, keepdims=True)
    drops = drops - drops.mean(axis=1, keepdims=True)
    scale = np.sqrt((sums**2).sum(axis=1) * (drops**2).sum(axis=1))
    ok = scale > 1e-12
    return float(((sums * drops).sum(axis=1)[ok] / scale[ok]).mean()) if ok.any() else np.nan


def _scores(
    bank: ConceptBank, group: Bank, rows: np.ndarray, labels: np.ndarray, masks: np.ndarray
) -> np.ndarray:
    """Class scores under masks: in closed form for a linear head, else through the model."""
    if bank.head is not None:
        phi = bank.attributions(group, rows, labels, "gradient")  # u_i (W w_c)_i, exact
        full = bank.head.logits(bank._latents[rows])[np.arange(len(rows)), labels]
        return np.einsum("nmk,nk->nm", masks - 1.0, phi) + full[:, None]
    return bank.concept_model("Fidelity").scores(group, rows, labels, masks)


def _group(
    bank: ConceptBank,
    group: Bank,
    rows: np.ndarray,
    method: str,
    orders: int,
    subsets: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int]:
    """One dictionary's curves (n x 2 x (1 + orders) x (k + 1): deletion then insertion, the
    importance order first), its C-muFidelity values (importance, then random) and n."""
    labels = (
        np.full(len(rows), group.label)
        if group.label is not None
        else bank.samples["prediction"].to_numpy(dtype=int)[rows]
    )
    phi = bank.attributions(group, rows, labels, method)
    n, k = phi.shape
    ranked = [np.argsort(-phi, axis=1, kind="stable")]
    ranked += [rng.permuted(np.tile(np.arange(k), (n, 1)), axis=1) for _ in range(orders)]
    removed = (rng.random((n, subsets, k)) < 0.5).astype(np.float64)
    masks = np.concatenate(
        [order_masks(o, insert) for insert in (False, True) for o in ranked]
        + [np.ones((n, 1, k)), 1.0 - removed],
        axis=1,
    )
    scores = _scores(bank, group, rows, labels, masks)
    steps = len(ranked) * (k + 1)
    curves = scores[:, : 2 * steps].reshape(n, 2, len(ranked), k + 1)
    drops = scores[:, 2 * steps : 2 * steps + 1] - scores[:, 2 * steps + 1 :]
    shuffled = [
        np.take_along_axis(phi, rng.permuted(np.tile(np.arange(k), (n, 1)), axis=1), 1)
        for _ in range(orders)
    ]
    mu = [mu_fidelity(p, removed, drops) for p in [phi, *shuffled]]
    return curves, np.array(mu), n


def concept_fidelity(
    bank: ConceptBank,
    *,
    method: str = "auto",
    orders: int = 20,
    subsets: int = 32,
    samples: int | None = 500,
    seed: int = 0,
) -> Fidelity:
    """C-Deletion, C-Insertion and C-muFidelity of ``method``'s importance, each against
    ``orders`` random orders, on up to ``samples`` samples (spread over the dictionaries)."""
    if orders < 1 or subsets < 2:
        raise DiscoveryError(f"orders={orders}, subsets={subsets}: give orders >= 1, subsets >= 2.")
    rng = np.random.default_rng(seed)
    per_bank = None if samples is None else max(1, -(-samples // len(bank.banks)))
    sums, mus, weights, total = None, [], [], 0
    for group in bank.banks:
        rows = group.rows
        if per_bank is not None and len(rows) > per_bank:
            rows = np.sort(rng.choice(rows, per_bank, replace=False))
        curves, mu, n = _group(bank, group, rows, method, orders, subsets, rng)
        curve = resample(curves.mean(axis=0))
        sums = curve * n if sums is None else sums + curve * n
        mus.append(mu)
        weights.append(n)
        total += n
    mean_curves = sums / total
    mu = np.average(np.array(mus), axis=0, weights=weights)
    rows_out, curve_rows = [], []
    for index, metric in enumerate(("c_deletion", "c_insertion")):
        areas = np.array([auc(c) for c in mean_curves[index]])
        better = areas[1:] <= areas[0] if metric == "c_deletion" else areas[1:] >= areas[0]
        rows_out.append(_row(metric, areas[0], areas[1:], better))
        shown = {"importance": mean_curves[index][0], "random": mean_curves[index][1:].mean(0)}
        curve_rows += [
            {"metric": metric, "order": order, "fraction": fraction, "score": score}
            for order, curve in shown.items()
            for fraction, score in zip(GRID, curve, strict=True)
        ]
    rows_out.append(_row("c_mufidelity", mu[0], mu[1:], mu[1:] >= mu[0]))
    used = method if method != "auto" else ("closed_form" if bank.head is not None else "gradient")
    return Fidelity(pd.DataFrame(rows_out), pd.DataFrame(curve_rows), used, total)


def _row(metric: str, value: float, random: np.ndarray, at_least_as_good: np.ndarray) -> dict:
    p_value = (1 + int(at_least_as_good.sum())) / (1 + len(random))
    return {
        "metric": metric,
        "importance": float(value),
        "random_mean": float(random.mean()),
        "random_std": float(random.std()),
        "beats_random": bool(p_value < 0.05),
        "p_value": p_value,
    }
