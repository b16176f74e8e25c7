"""Labelling a run's neurons from its stored latents: vocabulary, ranks, search, per layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from latentsight._progress import progress_bars
from latentsight.concepts.auc import rank_activations, score_concepts
from latentsight.concepts.beam import SearchSettings, beam_search
from latentsight.concepts.errors import ConceptsError
from latentsight.concepts.result import Concepts, LayerLabels
from latentsight.concepts.vocabulary import Vocabulary, build_vocabulary
from latentsight.store.concepts import neurons_file, save_table, settings_info
from latentsight.store.manifest import layer_entry

if TYPE_CHECKING:
    from latentsight.project import Project
    from latentsight.store.run import Run


@dataclass(frozen=True)
class ConceptSettings:
    """How neurons are labelled: INVERT's search (B = 5, L = 3, share of positives <= 0.5).

    One default differs from the reference's on purpose: an explanation must cover at least 1% of
    the samples (``min_fraction=0.01``; the reference's is 0). With 0, a formula true on one or
    two top-activating samples reaches an AUC near 1 and wins the search for most neurons, though
    it is never significant; ``min_fraction=0.0`` gives the reference's behaviour.

    Args:
        beam: formulas kept per neuron at each step of the beam search (B).
        length: the longest formula, in literals (L).
        min_fraction: the smallest share of samples an explanation may cover.
        max_fraction: the largest share of samples an explanation may cover.
        alpha: a label is significant when its q-value is below alpha.
        bins: quantile bins per numeric metadata column.
        thresholds: ``{column: [cut, ...]}``: bins at these cuts instead of quantiles.
        labels: add the class labels (``"label == k"``) to the concepts.
        metadata: the metadata columns to use (default: all the run recorded).
    """

    beam: int = 5
    length: int = 3
    min_fraction: float = 0.01
    max_fraction: float = 0.5
    alpha: float = 0.05
    bins: int = 4
    thresholds: Mapping[str, Sequence[float]] = field(default_factory=dict)
    labels: bool = True
    metadata: Sequence[str] | None = None

    @property
    def search(self) -> SearchSettings:
        """The beam search's part of the settings."""
        return SearchSettings(self.beam, self.length, self.min_fraction, self.max_fraction)


def _raw_mean_dim(entry: dict) -> int:
    shape = entry["sample_shape"]
    if entry["kind"] == "vector":
        return int(np.prod(shape)) if shape else 1
    if entry["kind"] == "sequence":
        return int(shape[1])
    return int(shape[0])


def _check_neurons(run: Run, layer: str) -> None:
    """Refuse a layer whose stored mean view is a random projection rather than its units."""
    entry = layer_entry(run.manifest, layer)
    raw, stored = _raw_mean_dim(entry), entry["views"]["mean"]["dim"]
    if raw != stored:
        raise ConceptsError(
            f"Layer {layer!r} has {raw} units but its stored mean view is a {stored}-dimensional "
            "random projection of them, whose directions are not neurons and have no concept "
            "labels. Capture again with PoolingSettings(project_above=None) (the default) to "
            "label its units."
        )


def concept_vocabulary(
    run: Run,
    *,
    settings: ConceptSettings,
    annotations: pd.DataFrame | None = None,
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    subset: str | Sequence[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray, Vocabulary, Mapping[int, str] | None]:
    """The samples labelled (rows of the run's samples), their concepts and the class names:
    what :func:`label_neurons` scores neurons against, cheap to build before the labelling."""
    samples = run.samples
    rows = np.arange(len(samples))
    if subset is not None:
        wanted = [subset] if isinstance(subset, str) else list(subset)
        unknown = sorted(set(wanted) - set(samples["subset"]))
        if unknown:
            raise ConceptsError(
                f"No subset {unknown[0]!r} in this run; its subsets are "
                f"{sorted(samples['subset'].unique())}."
            )
        rows = np.flatnonzero(samples["subset"].isin(wanted).to_numpy())
    samples = samples.iloc[rows].reset_index(drop=True)
    metadata = run.manifest["metadata_columns"] if settings.metadata is None else settings.metadata
    names_by_class = (
        dict(enumerate(class_names))
        if isinstance(class_names, Sequence)
        else run.class_names
        if class_names is None
        else class_names
    )
    vocabulary = build_vocabulary(
        samples,
        metadata_columns=list(metadata),
        labels=settings.labels,
        class_names=names_by_class,
        annotations=annotations,
        bins=settings.bins,
        thresholds=settings.thresholds,
    )
    return samples, rows, vocabulary, names_by_class


def label_neurons(
    run: Run,
    layers: str | Sequence[str] | None = None,
    *,
    settings: ConceptSettings | None = None,
    annotations: pd.DataFrame | None = None,
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    subset: str | Sequence[str] | None = None,
    progress: bool = False,
    project: Project | None = None,
    save: bool = True,
) -> Concepts:
    """INVERT labels of every unit of the given layers (default: all recorded) of a stored run.

    ``project``, when the run has one attached, lets the audit find the model by itself. With
    ``save`` (the default) each layer's table, and later its audit, is stored in the run
    (``latentsight.store.concepts``), where the report and the dashboard read them.
    """
    settings = settings or ConceptSettings()
    names = run.layers if layers is None else [layers] if isinstance(layers, str) else list(layers)
    for layer in names:
        _check_neurons(run, layer)
    samples, rows, vocabulary, names_by_class = concept_vocabulary(
        run, settings=settings, annotations=annotations, class_names=class_names, subset=subset
    )
    activations = {layer: run.latent(layer) for layer in names}
    concepts = label_activations(
        activations,
        samples,
        vocabulary,
        settings=settings,
        rows=rows,
        class_names=names_by_class,
        project=project,
        progress=progress,
    )
    if save:
        _save_layers(run, concepts, settings, subset, annotations)
    return concepts


def _save_layers(
    run: Run,
    concepts: Concepts,
    settings: ConceptSettings,
    subset: str | Sequence[str] | None,
    annotations: pd.DataFrame | None,
) -> None:
    """Store each layer's table in the run and let the Concepts store its audit there too."""
    made = {
        "settings": settings_info(settings),
        "subset": subset,
        "annotations": None if annotations is None else [str(c) for c in annotations.columns],
        "samples": len(concepts.samples),
    }
    table = concepts.table
    for layer in concepts.layers:
        rows = table[table["layer"] == layer].reset_index(drop=True)
        save_table(neurons_file(run.path, layer), rows, {"layer": layer, **made})
    concepts.run_path = run.path


def label_activations(
    activations: Mapping[str, np.ndarray],
    samples: pd.DataFrame,
    vocabulary: Vocabulary,
    *,
    settings: ConceptSettings | None = None,
    rows: np.ndarray | None = None,
    class_names: Mapping[int, str] | None = None,
    project: Project | None = None,
    progress: bool = False,
) -> Concepts:
    """INVERT labels of the units of ``{layer: N x M activations}`` over a vocabulary built on
    ``samples`` (the ``id``, ``target``, ``prediction`` columns are kept for the audit);
    ``rows`` picks the activation rows that ``samples`` describe."""
    settings = settings or ConceptSettings()
    labelled = []
    with progress_bars(progress) as reporter:
        reporter.start("concepts", len(activations))
        for layer, values in activations.items():
            values = np.asarray(values if rows is None else values[rows])
            if values.shape[0] != len(samples):
                raise ConceptsError(
                    f"Layer {layer!r} has {values.shape[0]} rows of activations for "
                    f"{len(samples)} samples: they must be aligned."
                )
            ranks = rank_activations(values)
            search = beam_search(ranks, vocabulary.matrix, vocabulary.names, settings.search)
            atomic = score_concepts(ranks, vocabulary.matrix)
            labelled.append(LayerLabels(layer, values, ranks, search, atomic))
            reporter.advance("concepts")
    kept = [c for c in ("id", "subset", "target", "prediction") if c in samples]
    return Concepts(
        labelled,
        vocabulary,
        samples[kept],
        settings.search,
        alpha=settings.alpha,
        class_names=dict(class_names) if class_names else None,
        project=project,
    )
