"""Recovery of the demo's under-represented grayscale population by the representation detector,
at the default demo size and at 3,000 / 1,000, and the clean control, on ``features.1.0``.

Per run: precision and recall of the under-represented insight that best matches the planted
grayscale images, and the number of significant representation insights (the clean control must
have at most one). For the planted runs it also prints why the population is what it is:
- what the population holds besides grayscale images, with each part's true evaluation share
  over the whole run: non-grayscale samples that break the spurious background-class correlation
  (circles off the blue background, other shapes on it) are themselves eval-heavy, since the
  correlation is planted in train only;
- the estimated density ratio (median) of grayscale members against those shortcut-breaking ones;
- bounds at recall 0.5: the precision of the detector's own per-sample ratio read as a ranking,
  the same after redrawing train / evaluation from the grayscale flag alone (the other planted
  shifts removed), the exact density ratio read through the latents (every planted part's true
  evaluation share, mixed by a logistic regression or gradient-boosted trees told each sample's
  part, or averaged over each sample's neighbours in the shared kNN graph: what a perfect ratio
  estimator of that form would rank), and a supervised oracle told the grayscale labels (logistic regression, 5-fold
  cross-validated): the best region the layer's latent space offers.
Run: ``python benchmarks/representation_recovery.py [--out DIR] [--reuse]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import latentsight as ls
from latentsight.demo.model import load_or_train_demo_model
from latentsight.demo.run import GROUND_TRUTH, demo_project, write_ground_truth
from latentsight.demo.shapes import (
    SPURIOUS_BACKGROUND,
    SPURIOUS_CLASS,
    ShapesConfig,
    generate_shapes,
)
from latentsight.insights.base import AnalysisSettings
from latentsight.insights.engine import build_context
from latentsight.insights.representation import (
    UNDER,
    Representation,
    density_log_ratio,
    split_halves,
)

LAYER = "features.1.0"  # the second convolution keeps colour (see docs/insights.md)
RUNS = {
    "default (8000 / 2000)": ShapesConfig(seed=0),
    "3000 / 1000": ShapesConfig(n_train=3000, n_val=1000, seed=0),
    "clean control (8000 / 2000)": ShapesConfig(seed=0).clean(),
}
SETTINGS = AnalysisSettings(map_method="pca")


def captured_run(config: ShapesConfig, out: Path, reuse: bool) -> ls.Run:
    """The demo captured with ``config`` at ``out`` (no analysis), with its ground truth."""
    if reuse and (out / GROUND_TRUTH).is_file():
        return ls.open_run(out)
    subsets = generate_shapes(config)
    model, _ = load_or_train_demo_model(config, subsets)
    run = ls.analyze(
        demo_project(subsets, model), out, progress=False, insights=False, overwrite=out.exists()
    )
    write_ground_truth(subsets, out)
    return run


def precision_at_recall(score: np.ndarray, target: np.ndarray, recall: float = 0.5) -> float:
    """Precision of the top-scored samples that first reach ``recall`` of ``target``."""
    hits = np.cumsum(target[np.argsort(-score, kind="stable")])
    k = int(np.searchsorted(hits, recall * target.sum())) + 1
    return float(hits[k - 1] / k)


def oracle_proba(
    latents: np.ndarray, labels: np.ndarray, *, trees: bool = False, seed: int = 0
) -> np.ndarray:
    """Cross-validated class probabilities of ``labels`` from the latents, by a model told the
    labels (logistic regression, or gradient-boosted trees): 5 folds."""
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    model = (
        HistGradientBoostingClassifier(random_state=seed)
        if trees
        else make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    )
    return cross_val_predict(model, latents, labels, cv=folds, method="predict_proba")


def gray_only_score(ctx, gray: np.ndarray, seed: int = 0) -> np.ndarray:
    """The detector's density ratio after redrawing train / evaluation from the grayscale flag
    alone (each group keeps its evaluation share): the same estimate without the other shifts."""
    rng = np.random.default_rng(seed)
    labeled = ctx.is_labeled
    evals = np.zeros(len(gray), dtype=bool)
    for group in (gray, ~gray):
        share = ctx.is_eval[group & labeled].mean()
        evals |= group & labeled & (rng.random(len(gray)) < share)
    train = labeled & ~evals
    log_ratio = density_log_ratio(
        ctx.reduced, evals, split_halves(train, evals, seed), ctx.neighbors.indices, seed
    )
    return np.nan_to_num(log_ratio, nan=-np.inf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="where to keep the captured runs")
    parser.add_argument("--reuse", action="store_true", help="reuse the runs already at --out")
    args = parser.parse_args()
    console = Console()
    root = args.out or Path(tempfile.mkdtemp(prefix="latentsight-representation-"))
    table = Table(title=f"Representation detector on {LAYER}: the grayscale population")
    for column in ("run", "significant", "precision", "recall", "size", "detector s"):
        table.add_column(column, justify="left" if column == "run" else "right")
    notes = []
    for name, config in RUNS.items():
        run = captured_run(config, root / name.split()[0].replace("/", "-"), args.reuse)
        ctx = build_context(run, LAYER, "mean", SETTINGS, {}, lambda: None, primary=False)
        started = time.perf_counter()
        result = Representation().run(ctx)
        seconds = time.perf_counter() - started
        significant = [i for i in result.insights if i.q_value < SETTINGS.alpha]
        truth = run.samples[["id"]].merge(
            pd.read_parquet(run.path / GROUND_TRUTH), on="id", how="left"
        )
        gray = truth["grayscale"].fillna(False).to_numpy(bool)
        ids = run.samples["id"].to_numpy()
        under = [np.isin(ids, i.population) for i in significant if i.kind == UNDER]
        if not gray.any() or not under:
            table.add_row(name, str(len(significant)), "-", "-", "-", f"{seconds:.1f}")
            continue
        best = max(under, key=lambda m: 2 * (m & gray).sum() / (m.sum() + gray.sum()))
        table.add_row(
            name,
            str(len(significant)),
            f"{gray[best].mean():.2f}",
            f"{gray[best].sum() / gray.sum():.2f}",
            str(int(best.sum())),
            f"{seconds:.1f}",
        )
        evals = ctx.is_eval
        circle = truth["true_shape"].to_numpy() == SPURIOUS_CLASS
        blue = run.samples["background"].to_numpy() == SPURIOUS_BACKGROUND
        conflict = (circle != blue) & ~gray
        parts = {
            "grayscale": gray,
            "circle off blue": circle & ~blue & ~gray,
            "non-circle on blue": ~circle & blue & ~gray,
            "other": ~gray & ~conflict,
        }
        held = ", ".join(
            f"{part} {int((best & mask).sum())} (eval share {evals[mask].mean():.2f})"
            for part, mask in parts.items()
        )
        log_ratio = result.scores["representation_score"].to_numpy()
        score = np.nan_to_num(log_ratio, nan=-np.inf)
        alone = gray_only_score(ctx, gray)
        oracle = oracle_proba(ctx.latents, gray)[:, 1]
        planted = [*list(parts.values())[:3], truth["easy_copy"].to_numpy(bool)]
        part = np.select(planted, range(len(planted)), len(planted))
        share = np.array([evals[part == p].mean() for p in range(len(planted) + 1)])
        linear_ratio = oracle_proba(ctx.latents, part) @ share
        tree_ratio = oracle_proba(ctx.latents, part, trees=True) @ share
        local_ratio = share[part[ctx.neighbors.indices]].mean(axis=1)
        notes.append(
            f"{name}: the population holds {held}; overall eval share {evals.mean():.2f}. "
            f"Median estimated ratio: grayscale {np.exp(np.nanmedian(log_ratio[gray])):.1f}x, "
            f"shortcut-breaking {np.exp(np.nanmedian(log_ratio[conflict])):.1f}x. "
            f"Precision at recall 0.5: estimated ratio {precision_at_recall(score, gray):.2f}, "
            f"the same with grayscale the only shift {precision_at_recall(alone, gray):.2f}, "
            f"the exact ratio (each planted part's true evaluation share) read through the "
            f"latents: linearly {precision_at_recall(linear_ratio, gray):.2f}, by boosted trees "
            f"{precision_at_recall(tree_ratio, gray):.2f}, over the kNN graph "
            f"{precision_at_recall(local_ratio, gray):.2f}; supervised oracle told the "
            f"grayscale labels {precision_at_recall(oracle, gray):.2f}."
        )
    console.print(table)
    for note in notes:
        console.print(note)
    console.print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
