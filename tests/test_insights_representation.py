"""The representation detector on data where the truth is known: the demo's grayscale images (1% of
train, 15% of val) are found as under-represented; a clean run raises nothing; a hand-made shift
is found in both directions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from conftest import analysis_context
from torch import nn

import latentsight as ls
from latentsight.insights.base import AnalysisContext, AnalysisSettings
from latentsight.insights.representation import (
    OVER,
    UNDER,
    Representation,
    density_log_ratio,
    split_halves,
)
from latentsight.latent.clustering import cluster_latents
from latentsight.latent.neighbors import neighbor_graph
from latentsight.latent.projection import reduce

FAST = AnalysisSettings(map_method="pca", cluster_method="kmeans")


def _significant(insights, kind):
    return [i for i in insights if i.kind == kind and i.q_value < FAST.alpha]


def _precision_recall(population: list[str], target: set[str]) -> tuple[float, float]:
    hits = len(set(population) & target)
    return hits / max(len(population), 1), hits / max(len(target), 1)


def _best_match(insights, target: set[str]):
    return max(insights, key=lambda i: len(set(i.population) & target) / len(set(i.population)))


def test_demo_grayscale_is_under_represented(shapes_run):
    # An early convolution keeps colour; deeper layers mix it with shape (see docs/insights.md).
    ctx = analysis_context(shapes_run, layer="features.1.0")
    truth = pd.read_parquet(shapes_run.path / "extras/ground_truth.parquet")
    gray = set(truth.loc[truth["grayscale"], "id"])
    result = Representation().run(ctx)
    under = _significant(result.insights, UNDER)
    assert under, result.info
    best = _best_match(under, gray)
    precision, recall = _precision_recall(best.population, gray)
    assert precision >= 0.7 and recall >= 0.5, (best.title, precision, recall)
    evaluation = set(ctx.samples.loc[ctx.is_eval, "id"])
    eval_precision, eval_recall = _precision_recall(
        [i for i in best.population if i in evaluation], gray & evaluation
    )
    assert eval_precision >= 0.7 and eval_recall >= 0.5, (eval_precision, eval_recall)
    evidence = best.evidence[0]
    assert evidence.effect > 5 and evidence.q_value < 1e-6
    assert best.action.startswith("Collect or label more training samples")
    # the density ratio is a per-sample score, higher on grayscale samples
    scores = result.scores.set_index("id")["representation_score"]
    assert scores[list(gray)].median() > scores.drop(list(gray)).median() + 1.0


def _iid_run(tmp_path) -> ls.Run:
    """A real tiny model on train / val drawn from one distribution: nothing to find."""
    rng = np.random.default_rng(3)
    n = 1500
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(100):
        optimizer.zero_grad()
        nn.functional.cross_entropy(
            model(torch.from_numpy(x[:1000])), torch.from_numpy(y[:1000])
        ).backward()
        optimizer.step()
    subsets = {"train": range(0, 1000), "val": range(1000, n)}
    data = {
        name: [(torch.from_numpy(x[i]), int(y[i])) for i in rows] for name, rows in subsets.items()
    }
    ids = [f"{name}/{j}" for name, rows in subsets.items() for j in range(len(rows))]
    metadata = pd.DataFrame(
        {"id": ids, "site": rng.choice(list("abcd"), n), "age": rng.uniform(20, 80, n)}
    )
    project = ls.Project(
        model=model.eval(), data=data, loss=ls.losses.cross_entropy, metadata=metadata
    )
    return ls.analyze(project, tmp_path / "run", progress=False, insights=False)


def test_clean_run_raises_no_representation_insight(tmp_path):
    run = _iid_run(tmp_path)
    for layer in run.layers:
        ctx = analysis_context(run, layer=layer, settings=FAST)
        result = Representation().run(ctx)
        flagged = [i.title for i in result.insights if i.q_value < FAST.alpha]
        assert len(flagged) <= 1, (layer, flagged, result.info)


def hand_context(
    latents: np.ndarray, subset: np.ndarray, loss: np.ndarray, metadata: dict | None = None
) -> AnalysisContext:
    """An AnalysisContext built from arrays with the real reduction, neighbours and clusters."""
    metadata = metadata or {}
    samples = pd.DataFrame(
        {"id": [f"s{i}" for i in range(len(latents))], "subset": subset, "loss": loss, **metadata}
    )
    reduced = reduce(latents.astype(np.float32), FAST.pca_components, seed=0)
    graph = neighbor_graph(reduced, FAST.n_neighbors, seed=0)
    clusters, noise = cluster_latents(reduced, graph, method="kmeans", n_clusters=8, seed=0)
    return AnalysisContext(
        samples=samples,
        layer="hand",
        latents=latents,
        reduced=reduced,
        coords=reduced[:, :2],
        clusters=clusters,
        noise=noise,
        neighbors=graph,
        loss_columns=["loss"],
        metrics={},
        metadata_columns=list(metadata),
        task="classification",
        settings=FAST,
    )


def test_hand_made_shift_is_found_in_both_directions():
    rng = np.random.default_rng(0)
    dims = 6
    common = rng.normal(size=(3000, dims))
    common_subset = np.where(np.arange(3000) < 2000, "train", "val")
    rare = rng.normal(size=(110, dims)) * 0.5 + np.r_[5.0, np.zeros(dims - 1)]  # mostly eval
    rare_subset = np.where(np.arange(110) < 10, "train", "val")
    heavy = rng.normal(size=(160, dims)) * 0.5 + np.r_[0.0, 5.0, np.zeros(dims - 2)]
    heavy_subset = np.where(np.arange(160) < 155, "train", "val")  # mostly train
    latents = np.vstack([common, rare, heavy])
    subset = np.concatenate([common_subset, rare_subset, heavy_subset])
    ctx = hand_context(latents, subset, rng.exponential(size=len(latents)))
    ids = ctx.samples["id"].to_numpy()
    rare_ids, heavy_ids = set(ids[3000:3110]), set(ids[3110:])

    result = Representation().run(ctx)
    under, over = _significant(result.insights, UNDER), _significant(result.insights, OVER)
    assert under and over, [i.title for i in result.insights]
    for found, target in ((under, rare_ids), (over, heavy_ids)):
        precision, recall = _precision_recall(_best_match(found, target).population, target)
        assert precision >= 0.9 and recall >= 0.8, (precision, recall)
    # nothing else: every significant population is one of the two planted ones
    for insight in under + over:
        overlap = len(set(insight.population) & (rare_ids | heavy_ids))
        assert overlap / insight.size >= 0.5, insight.title
    top = _best_match(under, rare_ids).evidence[0]
    assert top.effect > 10 and top.details["source"] == "density ratio"


def test_density_ratio_of_a_half_never_reads_that_half_labels():
    # The tests are honest only if a half's scores come from the other half's labels alone: the
    # neighbourhood average must read the same model for every neighbour, whichever half it is in.
    rng = np.random.default_rng(1)
    latents = rng.normal(size=(1200, 5))
    subset = np.where(rng.random(1200) < 0.3, "val", "train")
    subset[:80] = np.where(np.arange(80) < 70, "val", "train")  # an eval-heavy blob
    latents[:80] += 3.0
    ctx = hand_context(latents, subset, rng.exponential(size=1200))
    evals, train = ctx.is_eval, ctx.is_train & ctx.is_labeled
    half = split_halves(train, evals, seed=0)
    neighbors = ctx.neighbors.indices
    scores = density_log_ratio(ctx.reduced, evals, half, neighbors, seed=0)
    assert np.nanmedian(scores[:80]) > np.log(3) > np.nanmedian(scores[80:])
    for h in (0, 1):
        shuffled = evals.copy()
        members = np.flatnonzero(half == h)
        shuffled[members] = rng.permutation(evals[members])  # same share, other samples
        again = density_log_ratio(ctx.reduced, shuffled, half, neighbors, seed=0)
        np.testing.assert_array_equal(again[half == h], scores[half == h])
        assert not np.allclose(again[half == 1 - h], scores[half == 1 - h])
