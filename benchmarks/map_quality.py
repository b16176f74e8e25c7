"""Quality of the 2-D map against the number of layout epochs, beside the 200-epoch map of the
same run, on real demo latents and on the synthetic latents of ``analysis_scale.py``.

The map is built as the analysis builds it (PCA to 50 dimensions, the shared 15-neighbour graph,
``embed_2d``), at several epoch counts and seeds. Per epoch count, averaged over the seeds:
- kNN preservation@15: the share of each sample's 15 map neighbours among its 15 neighbours in
  the reduced space;
- trustworthiness (scikit-learn, 15 neighbours) on a seeded 5,000-sample subsample;
- how well the map keeps known populations apart: the balanced accuracy of a leave-one-out 15-NN
  vote on the map, per label, and the silhouette of the first label on the subsample;
- stability ("seed overlap"): the share of each sample's 15 map neighbours that the maps of two
  seeds share.
Beside each figure, its difference from the 200-epoch map; the "noise" row is the largest spread
between seeds at any epoch count (for stability: between pairs of seeds), and the last column
names the measures on which a schedule falls short of the 100-epoch map by more than that. Labels: the demo's true shape and its planted
populations (hidden ground truth); the synthetic run's generating mixture components.
Run: ``python benchmarks/map_quality.py [--quick] [--demo-samples 50000] [--seeds 0 1 2]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from analysis_scale import mixture, synthetic_run
from rich.console import Console
from rich.table import Table
from sklearn.manifold import trustworthiness
from sklearn.metrics import balanced_accuracy_score, silhouette_score
from sklearn.neighbors import NearestNeighbors

import latentsight as ls
from latentsight._progress import progress_bars
from latentsight.demo.model import load_or_train_demo_model
from latentsight.demo.run import demo_config, demo_project
from latentsight.demo.shapes import ShapesConfig, generate_shapes
from latentsight.insights.base import AnalysisSettings
from latentsight.insights.engine import default_layer
from latentsight.latent.neighbors import neighbor_graph
from latentsight.latent.projection import embed_2d, layout_epochs, reduce

K = 15
SUBSAMPLE = 5000
PLANTED = ("easy_copy", "label_flipped", "grayscale", "spurious_conflict")  # first one wins


@dataclass(frozen=True)
class Labelled:
    """Latents to map and the known populations among them (name -> one label per row)."""

    name: str
    latents: np.ndarray
    labels: dict[str, np.ndarray]


def demo_latents(n: int, root: Path) -> Labelled:
    """The demo CNN (trained at the demo's size) captured over ``n`` fresh shapes images; labels:
    the true shape and the planted population each image belongs to (``none`` for most)."""
    model, _ = load_or_train_demo_model(demo_config())
    n_train = int(0.8 * n)
    subsets = generate_shapes(ShapesConfig(n_train=n_train, n_val=n - n_train))
    run = ls.analyze(
        demo_project(subsets, model), root / "demo", insights=False, renders=False, progress=False
    )
    truth = pd.concat([subset.truth for subset in subsets.values()], ignore_index=True)
    truth = truth.set_index("id").loc[run.samples["id"]]
    planted = np.select([truth[column].to_numpy(bool) for column in PLANTED], PLANTED, "none")
    latents = np.asarray(run.latent(default_layer(run)), dtype=np.float32)
    return Labelled(
        f"demo CNN, {n:,} x {latents.shape[1]}",
        latents,
        {"shape": truth["true_shape"].to_numpy(), "planted": planted},
    )


def synthetic_latents(n: int, root: Path) -> Labelled:
    """The latents of ``analysis_scale.synthetic_run``, labelled by their mixture component."""
    run = synthetic_run(n, root / "synthetic")
    _, component = mixture(n, np.random.default_rng(0))
    latents = np.asarray(run.latent("1"), dtype=np.float32)
    return Labelled(f"synthetic MLP, {n:,} x {latents.shape[1]}", latents, {"component": component})


def map_neighbours(coords: np.ndarray) -> np.ndarray:
    """Each sample's ``K`` nearest other samples on the map."""
    found = NearestNeighbors(n_neighbors=K + 1).fit(coords).kneighbors(return_distance=False)
    return found[:, :K]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """The mean share of each row's neighbours in ``a`` that are also its neighbours in ``b``."""
    rows = np.arange(len(a))[:, None]
    pairs = np.unique(np.c_[(rows * len(a) + a).ravel(), (rows * len(a) + b).ravel()])
    return float((a.size + b.size - len(pairs)) / a.size)


def vote_accuracy(neighbours: np.ndarray, labels: np.ndarray) -> float:
    """Balanced accuracy of each sample's label predicted by its neighbours' majority."""
    classes, codes = np.unique(labels, return_inverse=True)
    votes = np.zeros((len(codes), len(classes)))
    for column in neighbours.T:
        votes[np.arange(len(codes)), codes[column]] += 1
    return float(balanced_accuracy_score(codes, votes.argmax(axis=1)))


def measures(
    reduced: np.ndarray, true: np.ndarray, coords: np.ndarray, data: Labelled, sample: np.ndarray
) -> tuple[dict[str, float], np.ndarray]:
    """Every quality measure of one map (``true``: the reduced space's ``K`` neighbours), and
    the map's neighbours."""
    neighbours = map_neighbours(coords)
    first = next(iter(data.labels.values()))
    found = {
        "kNN@15": overlap(neighbours, true),
        "trust": float(trustworthiness(reduced[sample], coords[sample], n_neighbors=K)),
    }
    found |= {f"{name} acc": vote_accuracy(neighbours, y) for name, y in data.labels.items()}
    found["silhouette"] = float(silhouette_score(coords[sample], first[sample]))
    return found, neighbours


def quality_table(
    data: Labelled, epochs: list[int], seeds: list[int], advance: Callable[[], None]
) -> Table:
    """Layout seconds and every measure per epoch count, against the 200-epoch map."""
    settings = AnalysisSettings()
    reduced = reduce(data.latents, settings.pca_components, seed=settings.seed)
    graph = neighbor_graph(reduced, settings.n_neighbors, seed=settings.seed)
    true = graph.indices[:, :K]
    sample = np.random.default_rng(0).choice(len(reduced), min(SUBSAMPLE, len(reduced)), False)
    rows: dict[int, list[dict[str, float]]] = {}
    agreement: dict[int, list[float]] = {}
    loads: dict[int, float] = {}
    for n_epochs in epochs:
        runs, maps = [], []
        for seed in seeds:
            started = time.perf_counter()
            coords = embed_2d(reduced, graph, seed=seed, n_epochs=n_epochs)
            seconds = time.perf_counter() - started
            found, neighbours = measures(reduced, true, coords, data, sample)
            runs.append({"layout s": seconds} | found)
            maps.append(neighbours)
            advance()
        agreement[n_epochs] = [
            overlap(maps[i], maps[j]) for i in range(len(maps)) for j in range(i + 1, len(maps))
        ]
        rows[n_epochs], loads[n_epochs] = runs, os.getloadavg()[0]
    names = [*rows[epochs[0]][0], "seed overlap"]
    spread = {e: {m: [r[m] for r in rows[e]] for m in names[:-1]} for e in epochs}
    for e in epochs:
        spread[e]["seed overlap"] = agreement[e]
    mean = {e: {m: float(np.mean(spread[e][m])) for m in names} for e in epochs}
    noise = {m: max(float(np.ptp(spread[e][m])) for e in epochs) for m in names}
    default = layout_epochs(len(reduced))
    table = Table(title=f"{data.name}: map quality by layout epochs (mean of seeds {seeds})")
    for column in ["epochs", *names, "below 100 by more than noise", "load 1 min"]:
        table.add_column(column, justify="right")
    for e in epochs:
        cells = [f"{e}{' (default)' if e == default else ''}"]
        for m in names:
            if m == "layout s":
                cells.append(f"{mean[e][m]:.1f} ({mean[e][m] / mean[200][m]:.2f}x)")
            else:
                cells.append(f"{mean[e][m]:.3f} ({mean[e][m] - mean[200][m]:+.3f})")
        worse = (
            [m for m in names[1:] if mean[100][m] - mean[e][m] > noise[m]] if 100 in mean else []
        )
        table.add_row(*cells, ", ".join(worse) or "none", f"{loads[e]:.2f}")
    table.add_row("noise", *(f"{noise[m]:.4f}" for m in names), "", "", style="dim")
    reference = {f"{name} acc": f"{vote_accuracy(true, y):.3f}" for name, y in data.labels.items()}
    silhouette = silhouette_score(reduced[sample], next(iter(data.labels.values()))[sample])
    reference["silhouette"] = f"{silhouette:.3f}"
    table.add_row("reduced space", *(reference.get(m, "") for m in names), "", "", style="dim")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, three epoch counts")
    parser.add_argument("--demo-samples", type=int, default=None)
    parser.add_argument("--synthetic-samples", type=int, default=None)
    parser.add_argument("--epochs", type=int, nargs="+", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if len(set(args.seeds)) < 2:
        parser.error("--seeds needs two seeds at least: stability compares the maps of seeds")
    epochs = sorted(set(args.epochs or ([50, 100, 200] if args.quick else [30, 50, 75, 100, 200])))
    epochs = sorted({*epochs, 100, 200})
    demo_n = args.demo_samples or (5_000 if args.quick else 50_000)
    synthetic_n = args.synthetic_samples or (10_000 if args.quick else 100_000)
    console = Console(width=200)
    root = Path(tempfile.mkdtemp(prefix="latentsight-mapq-"))
    warm = np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)
    embed_2d(warm, neighbor_graph(warm, K), n_epochs=5)  # compiles umap-learn's layout once
    for build, n in ((demo_latents, demo_n), (synthetic_latents, synthetic_n)):
        console.print(f"capturing {n:,} samples ({build.__name__}), load {os.getloadavg()[0]:.2f}")
        data = build(n, root)
        with progress_bars(True, console) as reporter:
            reporter.start("layouts", len(epochs) * len(args.seeds))
            table = quality_table(data, epochs, args.seeds, lambda: reporter.advance("layouts"))
        console.print(table)


if __name__ == "__main__":
    main()
