"""The analysis stage: map, clusters and neighbour graph from a stored layer, then every detector,
ranked and merged, written into the run. Reads only the run store; the model is not needed."""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from torch import nn

from latentsight import __version__
from latentsight._progress import progress_bars
from latentsight.discovery.discover import DiscoverySettings
from latentsight.errors import LatentsightError
from latentsight.insights import (  # noqa: F401 - importing a detector module registers it
    aggressors,
    duplicates,
    label_issues,
    metadata_trends,
    multilabel_issues,
    outliers,
    overfitting,
    representation,
    spurious,
)
from latentsight.insights.base import DETECTORS, AnalysisContext, AnalysisSettings, Insight
from latentsight.insights.describe import enriched_metadata
from latentsight.insights.ranking import rank_insights
from latentsight.latent.clustering import cluster_latents
from latentsight.latent.neighbors import neighbor_graph
from latentsight.latent.projection import embed_2d, reduce
from latentsight.store.analysis import write_analysis
from latentsight.store.manifest import CAPTURE_KEY, layer_entry

if TYPE_CHECKING:
    from latentsight.store.run import Run

LAYER_STEPS = ("reduce", "neighbours", "map", "clusters")
CONCEPT_KS = (2, 4, 6, 8)  # the analysis's k sweep for concept discovery: short, to stay cheap
CONCEPT_FIT_SAMPLES = 1000  # each class's dictionary is fitted on at most this many samples
CONCEPT_MAX_VALUES = 10_000_000  # above N x D this large, the analysis leaves discovery to the user


def concept_settings(dim: int, seed: int) -> DiscoverySettings:
    """How the analysis discovers concepts: a short k sweep (ks up to the layer's width), each
    class's dictionary fitted on a sample of it and its concepts named within the class."""
    return DiscoverySettings(
        ks=[k for k in CONCEPT_KS if k <= dim],
        seed=seed,
        max_fit_samples=CONCEPT_FIT_SAMPLES,
        naming_scope="group",
    )


def default_layer(run: Run) -> str:
    """The layer analysed when none is named: the last one recorded (closest to the output)."""
    return run.layers[-1]


def build_context(
    run: Run,
    layer: str,
    view: str,
    settings: AnalysisSettings,
    timings: dict[str, float],
    advance,
    *,
    primary: bool = True,
) -> AnalysisContext:
    """Compute the reduced latents, the neighbour graph, the map and the clusters of one layer.

    The map's layer (``primary``) gets the 2-D map and the configured clusterer; another searched
    layer gets k-means clusters and its first two principal components as coordinates, which are
    never shown.
    """
    samples = run.samples
    latents = np.asarray(run.latent(layer, view), dtype=np.float32)
    started = time.perf_counter()
    reduced = reduce(latents, settings.pca_components, seed=settings.seed)
    timings["reduce_s"] = time.perf_counter() - started
    advance()
    started = time.perf_counter()
    graph = neighbor_graph(reduced, settings.n_neighbors, seed=settings.seed)
    timings["neighbours_s"] = time.perf_counter() - started
    advance()
    started = time.perf_counter()
    map_method = settings.map_method if primary else "pca"
    coords = embed_2d(reduced, graph, method=map_method, seed=settings.seed)
    timings["map_s"] = time.perf_counter() - started
    advance()
    started = time.perf_counter()
    clusters, noise = cluster_latents(
        reduced,
        graph,
        coords if map_method == "umap" else None,
        method=settings.cluster_method if primary else "kmeans",
        n_clusters=settings.n_clusters,
        seed=settings.seed,
    )
    timings["clusters_s"] = time.perf_counter() - started
    advance()
    manifest = run.manifest
    return AnalysisContext(
        samples=samples,
        layer=layer,
        latents=latents,
        reduced=reduced,
        coords=coords,
        clusters=clusters,
        noise=noise,
        neighbors=graph,
        loss_columns=(["loss", *manifest["loss_components"]] if "loss" in samples else []),
        metrics=dict(manifest["metrics"]),
        metadata_columns=list(manifest["metadata_columns"]),
        task=manifest["task"],
        settings=settings,
        primary=primary,
        class_names=run.class_names,
    )


def cluster_table(ctx: AnalysisContext) -> pd.DataFrame:
    """Per cluster: size, subset mix, mean loss (and components), metrics, accuracy, metadata."""
    frame = ctx.samples.assign(cluster=ctx.clusters, noise=ctx.noise)
    rows = []
    for cluster, members in frame.groupby("cluster", sort=True):
        mask = ctx.clusters == cluster
        row: dict[str, Any] = {
            "cluster": int(cluster),
            "size": int(mask.sum()),
            "noise": int(members["noise"].sum()),
        }
        for subset, count in members["subset"].value_counts().items():
            row[f"n_{subset}"] = int(count)
        for column in ctx.loss_columns + [f"metric_{m}" for m in ctx.metrics]:
            row[f"mean_{column}"] = float(members[column].mean())
        if "correct" in members:
            row["accuracy"] = float(members["correct"].astype(float).mean())
        row["enriched"] = "; ".join(
            e.text for e in enriched_metadata(ctx.samples, ctx.metadata_columns, mask)
        )
        rows.append(row)
    table = pd.DataFrame(rows).fillna(
        {c: 0 for c in pd.DataFrame(rows).columns if c.startswith("n_")}
    )
    return table


def searched_layers(run: Run, map_layer: str, settings: AnalysisSettings) -> list[str]:
    """The map's layer first, then (with ``all_layers``) every other recorded layer."""
    others = [name for name in run.layers if name != map_layer] if settings.all_layers else []
    return [map_layer, *others]


def _tag_layer(insights: list[Insight], layer: str) -> None:
    """Record on each piece of evidence which layer's latent space produced it."""
    for insight in insights:
        insight.evidence = [replace(e, layer=layer) for e in insight.evidence]


def shortcut_audit(run: Run, layer: str, notes: dict[str, Any]) -> list[Insight]:
    """The concept audit's shortcut findings (kind "spurious_feature"), when the run has its
    model attached and ``layer`` is read by a linear head; the concept tables and the audit are
    stored in the run as ``run.concepts(layer).audit()`` stores them."""
    if run.project is None:
        notes["spurious_feature"] = {
            "skipped": "no model attached: attach the Project (run.attach(project); on the "
            "command line, --project module:project)"
        }
        return []
    if run.manifest["task"] not in ("classification", "binary"):
        notes["spurious_feature"] = {"skipped": f"task is {run.manifest['task']!r}, not classes"}
        return []
    entry = layer_entry(run.manifest, layer)
    head = dict(run.project.resolve_model().named_modules()).get(entry["module"])
    if entry["point"] != "input" or not isinstance(head, nn.Linear):
        notes["spurious_feature"] = {"skipped": f"{layer} is not the input of a linear head"}
        return []
    try:
        audit = run.concepts(layer).audit()
    except LatentsightError as error:
        notes["spurious_feature"] = {"skipped": str(error)}
        return []
    except Exception as error:  # the audit failing must not cost the detectors' findings
        notes["spurious_feature"] = {
            "error": repr(error),
            "traceback": traceback.format_exc(limit=5),
        }
        return []
    notes["spurious_feature"] = {
        "classes_flagged": [c.name for c in audit.classes if c.likely_shortcut]
    }
    _tag_layer(audit.insights, layer)
    return audit.insights


def concept_findings(
    run: Run, layer: str, settings: AnalysisSettings, notes: dict[str, Any]
) -> list[Insight]:
    """Concepts discovered in ``layer`` (stored in the run) whose samples carry significantly
    higher loss than the rest of their class (kind "concept_aggressor"). Importance comes from
    a linear head when one reads the layer; the analysis does not run the model for it."""
    from latentsight.discovery import discover_concepts
    from latentsight.discovery.performance import concept_loss_insights
    from latentsight.discovery.store import save_bank

    per_class = run.manifest["task"] in ("classification", "binary") and "prediction" in (
        run.samples.columns
    )
    latents = run.latent(layer)
    if latents.size > CONCEPT_MAX_VALUES:
        notes["concept_aggressor"] = {
            "skipped": f"{layer} holds {latents.size:,} values, more than the analysis fits "
            f"dictionaries on ({CONCEPT_MAX_VALUES:,}); discover its concepts on demand with "
            f"run.discover_concepts({layer!r})"
        }
        return []
    discovery = concept_settings(latents.shape[1], settings.seed)
    if len(discovery.ks) < 2:
        notes["concept_aggressor"] = {"skipped": f"{layer} has too few dimensions for concepts"}
        return []
    try:
        bank = discover_concepts(
            run,
            layer,
            per_class=per_class,
            importance_through_model=False,
            settings=discovery,
            save=False,
        )
        # stored unless the stored table is this one with importance: the insights name its concepts
        bank.stored = save_bank(
            bank, settings=discovery, k="auto", per_class=per_class, subset=None, keep_unlike=False
        )
        found = concept_loss_insights(
            bank,
            alpha=settings.alpha,
            min_population=settings.min_population,
            metadata_columns=list(run.manifest["metadata_columns"]),
            train_subset=settings.train_subset,
        )
    except LatentsightError as error:
        notes["concept_aggressor"] = {"skipped": str(error)}
        return []
    except Exception as error:  # discovery failing must not cost the detectors' findings
        notes["concept_aggressor"] = {
            "error": repr(error),
            "traceback": traceback.format_exc(limit=5),
        }
        return []
    notes["concept_aggressor"] = {"concepts": len(bank.table), "flagged": len(found)}
    return found


def run_analysis(
    run: Run,
    *,
    layer: str | None = None,
    view: str = "mean",
    settings: AnalysisSettings | None = None,
    detectors: list[str] | None = None,
    progress: bool = True,
) -> list[Insight]:
    """Analyse a stored run and write the map, clusters, insights and scores into it.

    Every detector searches the map's layer; detectors that read latents also search each other
    recorded layer (``settings.all_layers``), since a failure mode can be separable in an early
    layer and mixed in a late one. With every detector asked for, the concepts discovered in the
    map's layer add those tied to higher loss, and with the model attached the concept audit of
    that layer adds its shortcut findings. Candidates from all layers are ranked and merged
    together.
    """
    settings = settings or AnalysisSettings()
    layer = layer or default_layer(run)
    names = detectors if detectors is not None else list(DETECTORS)
    unknown = [name for name in names if name not in DETECTORS]
    if unknown:
        raise ValueError(f"Unknown detectors {unknown}; available: {sorted(DETECTORS)}.")
    layers = searched_layers(run, layer, settings)
    layer_timings: dict[str, dict[str, float]] = {}
    detector_timings: dict[str, float] = {}
    notes: dict[str, Any] = {}
    candidates: list[Insight] = []
    scores = run.samples[["id"]].copy()
    primary_ctx: AnalysisContext | None = None
    with progress_bars(progress) as reporter:
        steps = len(layers) * (len(LAYER_STEPS) + len(names)) + 1
        reporter.start("analysis", steps)
        for searched in layers:
            primary = searched == layer
            timings = layer_timings.setdefault(searched, {})
            ctx = build_context(
                run,
                searched,
                view if primary else "mean",
                settings,
                timings,
                lambda: reporter.advance("analysis"),
                primary=primary,
            )
            if primary:
                primary_ctx = ctx
            for name in names:
                detector = DETECTORS[name]
                if not primary and not detector.uses_latents:
                    reporter.advance("analysis")
                    continue
                if detector.tasks is not None and ctx.task not in detector.tasks:
                    if primary:
                        notes[name] = {"not_for_task": f"for {' and '.join(detector.tasks)} runs"}
                    reporter.advance("analysis")
                    continue
                key = name if primary else f"{name}@{searched}"
                started = time.perf_counter()
                try:
                    result = detector().run(ctx)
                except (
                    Exception
                ) as error:  # one failing detector must not cost the others' findings
                    notes[key] = {"error": repr(error), "traceback": traceback.format_exc(limit=5)}
                else:
                    if detector.uses_latents:
                        _tag_layer(result.insights, searched)
                    candidates.extend(result.insights)
                    notes[key] = result.info
                    if primary and result.scores is not None:
                        scores = scores.merge(result.scores, on="id", how="left")
                detector_timings[f"{key}_s"] = time.perf_counter() - started
                reporter.advance("analysis")
        if detectors is None:
            started = time.perf_counter()
            candidates.extend(shortcut_audit(run, layer, notes))
            detector_timings["spurious_feature_s"] = time.perf_counter() - started
            if settings.discover_concepts:
                started = time.perf_counter()
                candidates.extend(concept_findings(run, layer, settings, notes))
                detector_timings["concept_aggressor_s"] = time.perf_counter() - started
        reporter.advance("analysis")
    assert primary_ctx is not None
    insights = rank_insights(candidates, settings.alpha)
    map_frame = pd.DataFrame(
        {
            "id": primary_ctx.samples["id"],
            "x": primary_ctx.coords[:, 0],
            "y": primary_ctx.coords[:, 1],
            "cluster": primary_ctx.clusters,
            "noise": primary_ctx.noise,
        }
    )
    info = {
        "latentsight_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        CAPTURE_KEY: run.manifest.get(CAPTURE_KEY),
        "layer": layer,
        "view": view,
        "layers_searched": layers,
        "settings": asdict(settings),
        "detectors": notes,
        "candidates": len(candidates),
        "timings": {
            "layers": {
                name: {step: round(seconds, 3) for step, seconds in steps_.items()}
                for name, steps_ in layer_timings.items()
            },
            "detectors": {name: round(seconds, 3) for name, seconds in detector_timings.items()},
        },
    }
    write_analysis(
        run.path,
        info=info,
        map_frame=map_frame,
        clusters=cluster_table(primary_ctx),
        insights=insights,
        scores=scores,
        neighbours=(primary_ctx.neighbors.indices, primary_ctx.neighbors.distances),
    )
    return insights
