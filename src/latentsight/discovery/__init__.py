"""Concept discovery: the concepts a model learned in a layer, found without labels (dictionary
learning on pooled latents, as CRAFT), ranked by importance through the head, tied to accuracy
and loss, and named with the INVERT engine."""

from latentsight.discovery.attribution import AttributionSettings, concept_attributions
from latentsight.discovery.decoder import ConceptDecoder
from latentsight.discovery.dictionary import Dictionary, fit_dictionary
from latentsight.discovery.discover import DiscoverySettings, discover_concepts
from latentsight.discovery.errors import DiscoveryError
from latentsight.discovery.fidelity import Fidelity
from latentsight.discovery.heatmaps import ConceptHeatmaps
from latentsight.discovery.importance import (
    Decomposition,
    LinearHead,
    decompose_logit,
    find_linear_head,
)
from latentsight.discovery.naming import name_concepts
from latentsight.discovery.result import ConceptBank, SampleImportance, TopSamples
from latentsight.discovery.selection import KChoice, choose_k, matched_cosines
from latentsight.discovery.seminmf import semi_nmf
from latentsight.discovery.visualize import ConceptImage

__all__ = [
    "AttributionSettings",
    "ConceptBank",
    "ConceptDecoder",
    "ConceptHeatmaps",
    "ConceptImage",
    "Decomposition",
    "Dictionary",
    "DiscoveryError",
    "DiscoverySettings",
    "Fidelity",
    "KChoice",
    "LinearHead",
    "SampleImportance",
    "TopSamples",
    "choose_k",
    "concept_attributions",
    "decompose_logit",
    "discover_concepts",
    "find_linear_head",
    "fit_dictionary",
    "matched_cosines",
    "name_concepts",
    "semi_nmf",
]
