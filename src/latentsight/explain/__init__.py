"""Explanations of single samples: attribution maps (on Captum), Grad-CAM at any layer,
intermediate activations, feature visualization, and checks that the maps are faithful."""

from latentsight.explain.activations import ActivationMaps, ActivationSweep
from latentsight.explain.attribution import METHODS, AttributionSettings
from latentsight.explain.checks import ExplanationChecks
from latentsight.explain.filters import FilterImages, FilterSettings
from latentsight.explain.maco import MacoResult, MacoSettings, maco
from latentsight.explain.result import Explanation, LayerSweep
from latentsight.overlay import normalize_map, overlay
from latentsight.store.explanations import ExplanationCache, StoredMap, sample_maps

__all__ = [
    "METHODS",
    "ActivationMaps",
    "ActivationSweep",
    "AttributionSettings",
    "Explanation",
    "ExplanationCache",
    "ExplanationChecks",
    "FilterImages",
    "FilterSettings",
    "LayerSweep",
    "MacoResult",
    "MacoSettings",
    "StoredMap",
    "maco",
    "normalize_map",
    "overlay",
    "sample_maps",
]
