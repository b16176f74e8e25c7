"""How much faster is the vectorized INVERT search than a straightforward one, and is it linear in N?

Run ``python benchmarks/invert_speed.py [--quick]``. On synthetic data (N samples, 512 neurons,
100 concepts of varied prevalence, ReLU-like activations with ties, some neurons planted on
formulas), it times:

* the vectorized search (``latentsight.concepts``: ranks once, batched AUC for all neurons x
  beams x concepts), beam B = 5 and formula length L = 3, the reference's fraction filter;
* a faithful straightforward implementation written below: per neuron, per candidate formula,
  one ``sklearn.metrics.roc_auc_score`` call, the reference's loops, and scipy's
  ``mannwhitneyu`` for the final p-values. At full size it would take hours, so it runs on a
  few neurons and its time is extrapolated to all of them (said so in the output); on those
  neurons the two must give identical formulas, AUCs and p-values (asserted).

Then it times the vectorized search at several N to show the time grows linearly.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import stats
from sklearn.metrics import roc_auc_score

from latentsight.concepts.auc import rank_activations
from latentsight.concepts.beam import SearchSettings, beam_search
from latentsight.concepts.formulas import Literal, extend

SPEEDUP_GOAL = 100.0


def synthetic(n: int, neurons: int, concepts: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Concepts with prevalences from 2% to 60%, and ReLU activations, a third of them planted."""
    rng = np.random.default_rng(seed)
    prevalence = rng.uniform(0.02, 0.6, concepts)
    matrix = rng.random((n, concepts)) < prevalence
    activations = rng.normal(size=(n, neurons))
    for k in range(0, neurons, 3):
        a, b, c = rng.choice(concepts, 3, replace=False)
        activations[:, k] += 2.0 * ((matrix[:, a] & ~matrix[:, b]) | matrix[:, c])
    activations = np.maximum(activations, 0.0).round(3)  # zeros and rounding make ties
    return activations.astype(np.float32), matrix


def straightforward_search(
    activations: np.ndarray, matrix: np.ndarray, names: list[str], settings: SearchSettings
) -> list[dict]:
    """INVERT per neuron, per formula, one roc_auc_score call each (the reference's loops)."""
    return [
        _straightforward_neuron(activations[:, k].astype(np.float64), matrix, names, settings)
        for k in range(activations.shape[1])
    ]


def _straightforward_neuron(
    a: np.ndarray, matrix: np.ndarray, names: list[str], settings: SearchSettings
) -> dict:
    n, c = matrix.shape

    def score(mask: np.ndarray) -> float:
        return round(float(roc_auc_score(mask, a)), 12)

    def share_ok(mask: np.ndarray) -> bool:
        share = mask.sum() / n
        return settings.min_fraction <= share <= settings.max_fraction and 0 < share < 1

    atomic = []
    for j in range(2 * c):
        concept = matrix[:, j % c]
        if j < c:
            mask, metric = concept, score(concept)
        else:
            mask, metric = ~concept, round(1 - atomic[j - c]["metric"], 12)
        literal = Literal(names[j % c], negated=j >= c)
        atomic.append({"formula": literal, "mask": mask, "metric": metric})
    tested = sum(share_ok(item["mask"]) for item in atomic)
    atomic = sorted(atomic, key=lambda item: -item["metric"])
    beam = _distinct([item for item in atomic if share_ok(item["mask"])])[: settings.beam]
    atomic = sorted(atomic, key=lambda item: -round(2 * abs(0.5 - item["metric"]), 12))
    for _ in range(1, settings.length):
        pool = list(beam)
        for parent in beam:
            for item in atomic:
                for op in ("AND", "OR"):
                    combine = np.logical_and if op == "AND" else np.logical_or
                    mask = combine(parent["mask"], item["mask"])
                    if share_ok(mask):
                        tested += 1
                        formula = extend(parent["formula"], op, item["formula"])
                        pool.append({"formula": formula, "mask": mask, "metric": score(mask)})
        beam = _distinct(sorted(pool, key=lambda item: -item["metric"]))[: settings.beam]
    for item in beam:
        mask = item["mask"]
        item["p"] = float(stats.mannwhitneyu(a[~mask], a[mask]).pvalue)
    return {"beam": beam, "tested": tested}


def _distinct(items: list[dict]) -> list[dict]:
    """Keep the first of candidates with the same positives count and AUC (one explanation)."""
    seen, kept = set(), []
    for item in items:
        key = (int(item["mask"].sum()), item["metric"])
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def check_identical(fast, slow: list[dict], neurons: list[int]) -> None:
    """Assert the same formulas, AUCs and p-values on the neurons both ran."""
    for slow_index, k in enumerate(neurons):
        expected = slow[slow_index]["beam"]
        got = [str(f) for f in fast.formulas[k]]
        assert got == [str(item["formula"]) for item in expected], (k, got, expected)
        for slot, item in enumerate(expected):
            assert abs(fast.auc[k, slot] - item["metric"]) < 1e-9, (k, slot)
            assert np.isclose(fast.p[k, slot], item["p"], rtol=1e-6, atol=1e-300), (k, slot)
        assert fast.tested[k] == slow[slow_index]["tested"], (k, fast.tested[k])


def vectorized(activations: np.ndarray, matrix: np.ndarray, names, settings):
    start = time.perf_counter()
    result = beam_search(rank_activations(activations), matrix, tuple(names), settings)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke version (seconds)")
    args = parser.parse_args()
    console = Console()
    if args.quick:
        n, neurons, concepts, slow_neurons, sizes = 4000, 64, 20, 2, [1000, 2000, 4000]
    else:
        n, neurons, concepts, slow_neurons, sizes = 50_000, 512, 100, 2, [12_500, 25_000, 50_000]
    settings = SearchSettings(beam=5, length=3)
    names = [f"c{i}" for i in range(concepts)]
    activations, matrix = synthetic(n, neurons, concepts)

    fast, fast_time = vectorized(activations, matrix, names, settings)
    picked = list(range(slow_neurons))  # neuron 0 is planted, neuron 1 is noise
    start = time.perf_counter()
    slow = straightforward_search(activations[:, picked], matrix, names, settings)
    slow_time = (time.perf_counter() - start) / slow_neurons * neurons
    check_identical(fast, slow, picked)

    table = Table(title=f"INVERT, N={n:,}, {neurons} neurons, {concepts} concepts, B=5, L=3")
    for column in ("implementation", "seconds", "speed-up"):
        table.add_column(column, justify="right")
    table.add_row(
        f"straightforward (timed on {slow_neurons} neurons, x{neurons // slow_neurons} "
        "extrapolated)",
        f"{slow_time:,.1f}",
        "1.0x",
    )
    table.add_row("vectorized (all neurons)", f"{fast_time:,.2f}", f"{slow_time / fast_time:,.0f}x")
    console.print(table)
    console.print(f"identical formulas, AUCs and p-values on neurons {picked}: yes")

    scaling = Table(title="vectorized search time against N (linear: seconds per 1k samples flat)")
    for column in ("N", "seconds", "seconds per 1k samples"):
        scaling.add_column(column, justify="right")
    for size in sizes:
        _, seconds = vectorized(activations[:size], matrix[:size], names, settings)
        scaling.add_row(f"{size:,}", f"{seconds:.2f}", f"{1000 * seconds / size:.4f}")
    console.print(scaling)
    verdict = "met" if slow_time / fast_time >= SPEEDUP_GOAL else "NOT met"
    console.print(f"goal {SPEEDUP_GOAL:.0f}x: {verdict}")


if __name__ == "__main__":
    main()
