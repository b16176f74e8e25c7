"""Naming discovered concepts with the INVERT engine: each concept's codes are a 'neuron'.

A concept's codes over the samples are scored against the run's concept vocabulary (metadata,
labels, annotations) by AUC with INVERT's beam search over formulas; its name is the best
formula when that is significant (q < alpha) and its AUC reaches ``min_auc``, else "unnamed"
(an unknown concept is a finding, not a failure).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from latentsight.concepts import ConceptSettings, Vocabulary, label_activations

UNNAMED = "unnamed"


def name_concepts(
    codes: np.ndarray,
    samples: pd.DataFrame,
    vocabulary: Vocabulary | None,
    *,
    settings: ConceptSettings,
    min_auc: float = 0.8,
) -> pd.DataFrame:
    """Per concept (column of ``codes``, rows as ``samples``): name, formula, AUC, q-value;
    every concept is unnamed when there is no vocabulary to name it with."""
    if vocabulary is None:
        k = codes.shape[1]
        return pd.DataFrame(
            {
                "name": [UNNAMED] * k,
                "formula": [""] * k,
                "auc": np.full(k, np.nan),
                "q_value": np.full(k, np.nan),
                "named": np.zeros(k, bool),
            }
        )
    found = label_activations({"concepts": codes}, samples, vocabulary, settings=settings)
    table = found.table
    named = table["significant"].to_numpy() & (table["auc"].to_numpy() >= min_auc)
    return pd.DataFrame(
        {
            "name": np.where(named, table["formula"], UNNAMED),
            "formula": table["formula"],
            "auc": table["auc"],
            "q_value": table["q_value"],
            "named": named,
        }
    )
