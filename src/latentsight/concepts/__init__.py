"""Concepts: INVERT labels of neurons (the concept each unit detects) and the spurious-feature
audit built on them."""

from latentsight.concepts.audit import Audit, spurious_audit
from latentsight.concepts.beam import SearchSettings, beam_search
from latentsight.concepts.errors import ConceptsError
from latentsight.concepts.formulas import Compound, Formula, Literal
from latentsight.concepts.label import ConceptSettings, label_activations, label_neurons
from latentsight.concepts.result import Concepts
from latentsight.concepts.vocabulary import Vocabulary, build_vocabulary

__all__ = [
    "Audit",
    "Compound",
    "ConceptSettings",
    "Concepts",
    "ConceptsError",
    "Formula",
    "Literal",
    "SearchSettings",
    "Vocabulary",
    "beam_search",
    "build_vocabulary",
    "label_activations",
    "label_neurons",
    "spurious_audit",
]
