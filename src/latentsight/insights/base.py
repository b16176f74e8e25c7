"""What every detector shares: the read-only AnalysisContext it gets, the Insight it reports, and
the registry that lists detectors by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from latentsight.classes import class_label

if TYPE_CHECKING:
    from latentsight.latent.neighbors import NeighborGraph

GROUPS_LISTED = 50  # groups of near-copies written into an insight's details (largest first)
IDS_LISTED = 20  # sample ids written per listed group


@dataclass(frozen=True)
class AnalysisSettings:
    """Thresholds and seeds of the analysis stage; the defaults work without tuning.

    Args:
        alpha: false discovery rate: an insight needs q < alpha after Benjamini-Hochberg.
        min_population: the smallest population an insight may describe.
        train_subset: the subset the model was trained on; every other labeled subset is
            evaluation data.
        n_neighbors: neighbours per sample in the shared kNN graph.
        seed: seed of every random step.
        pca_components: dimensions kept by PCA before neighbours and clustering.
        map_method: "umap" (default) or "pca" (fast) for the 2-D map.
        cluster_method: "hdbscan" (default, finds the number of clusters) or "kmeans".
        n_clusters: the number of k-means clusters (default: from the number of samples).
        all_layers: search every recorded layer for populations (the map's layer with its map
            clusters, the others with k-means clusters); False searches only the map's layer.
        discover_concepts: discover the concepts of the map's layer (dictionary learning, kept
            in the run) and report those whose samples have significantly higher loss.
    """

    alpha: float = 0.05
    min_population: int = 10
    train_subset: str = "train"
    n_neighbors: int = 15
    seed: int = 0
    pca_components: int = 50
    map_method: Literal["umap", "pca"] = "umap"
    cluster_method: Literal["hdbscan", "kmeans"] = "hdbscan"
    n_clusters: int | None = None
    all_layers: bool = True
    discover_concepts: bool = True


@dataclass(frozen=True)
class AnalysisContext:
    """Everything a detector may read; detectors never write to it.

    Rows of every array follow ``samples`` (the run's samples table, in latent-row order).
    """

    samples: pd.DataFrame
    layer: str
    latents: np.ndarray  # N x D, the layer's stored vectors
    reduced: np.ndarray  # N x d, PCA of the latents (what clustering and neighbours use)
    coords: np.ndarray  # N x 2, the map
    clusters: np.ndarray  # N int, every sample in a cluster
    noise: (
        np.ndarray
    )  # N bool, samples the clusterer left out (then given their neighbours' cluster)
    neighbors: NeighborGraph
    loss_columns: list[str]  # "loss" first, then its components
    metrics: dict[str, str]  # metric column -> "higher" / "lower" is better
    metadata_columns: list[str]
    task: str
    settings: AnalysisSettings
    primary: bool = True  # the map's layer; other layers only add latent populations
    class_names: dict[int, str] = field(default_factory=dict)  # the Project's, by class index

    def class_label(self, index: Any) -> str:
        """How a class reads in an insight: its name, or ``class <index>`` without one."""
        return class_label(index, self.class_names)

    def region_name(self, name: str) -> str:
        """A latent population's name, prefixed with its layer when that is not the map's."""
        return name if self.primary else f"{self.layer} {name}"

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.samples)

    @property
    def is_train(self) -> np.ndarray:
        """Mask of training samples."""
        return (self.samples["subset"] == self.settings.train_subset).to_numpy()

    @property
    def is_labeled(self) -> np.ndarray:
        """Mask of samples with a loss (labeled subsets)."""
        return (
            self.samples["loss"].notna().to_numpy()
            if "loss" in self.samples
            else np.zeros(self.n, bool)
        )

    @property
    def is_eval(self) -> np.ndarray:
        """Mask of labeled samples outside the training subset."""
        return self.is_labeled & ~self.is_train


@dataclass(frozen=True)
class Evidence:
    """The statistics behind an insight, from one detector."""

    detector: str
    effect: float  # the effect size, e.g. mean-loss ratio inside / outside
    effect_name: str  # what the effect measures, in words
    p_value: float
    q_value: float  # Benjamini-Hochberg across everything the detector tested
    n: int  # samples in the population
    counts: dict[str, int] = field(default_factory=dict)  # e.g. per subset
    details: dict[str, Any] = field(default_factory=dict)
    layer: str | None = None  # the layer whose latent space found it (None: no latent needed)


@dataclass
class Insight:
    """A finding about a population: what, how strong, backed by what, and what to do."""

    kind: str
    title: str
    population: list[str]  # sample ids
    evidence: list[Evidence]
    description: str
    action: str
    score: float = 0.0
    merged: list[str] = field(default_factory=list)  # titles of insights folded into this one

    @property
    def size(self) -> int:
        """Number of samples in the population."""
        return len(self.population)

    @property
    def q_value(self) -> float:
        """The strongest significance among the evidence."""
        return min(e.q_value for e in self.evidence)


@dataclass
class DetectorResult:
    """What a detector returns: its insights, optional per-sample scores, and free-form info."""

    insights: list[Insight]
    scores: pd.DataFrame | None = None  # column "id" plus "<name>_score" (and flags)
    info: dict[str, Any] = field(default_factory=dict)


class Detector(ABC):
    """One kind of finding. Subclasses set ``name`` and ``description`` and implement ``run``."""

    name: ClassVar[str]
    description: ClassVar[str]
    uses_latents: ClassVar[bool] = True  # False: run once, not once per searched layer
    tasks: ClassVar[tuple[str, ...] | None] = None  # the tasks it reads runs of; None: all

    @abstractmethod
    def run(self, ctx: AnalysisContext) -> DetectorResult:
        """Examine the context and return findings; never mutate the context."""


DETECTORS: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator adding a detector to the registry under its ``name``."""
    if cls.name in DETECTORS:
        raise ValueError(f"A detector named {cls.name!r} is already registered.")
    DETECTORS[cls.name] = cls
    return cls


def population_ids(ctx: AnalysisContext, mask: np.ndarray) -> list[str]:
    """The sample ids of a population mask."""
    return ctx.samples["id"].to_numpy()[mask].tolist()
