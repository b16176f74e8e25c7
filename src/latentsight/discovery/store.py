"""Keeping a layer's discovered concepts in the run, so the report, the dashboard and later
analyses show them without fitting again.

One file per layer (``latentsight.store.concepts.discovered_file``): the concept table with, per
concept, the ids of the samples that express it most; its schema metadata records how it was
made (settings, k, grouping, subset, the k sweeps and the notes).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentsight.store.concepts import discovered_file, save_table, settings_info

if TYPE_CHECKING:
    from latentsight.discovery.discover import DiscoverySettings
    from latentsight.discovery.result import ConceptBank

TOP_SAMPLES = 16  # the samples kept per concept for galleries


def save_bank(
    bank: ConceptBank,
    *,
    settings: DiscoverySettings,
    k: int | str,
    per_class: bool,
    subset: str | Sequence[str] | None,
) -> Path:
    """Write the bank's table (plus each concept's top sample ids) into the run; return the file."""
    frame = bank.table.copy()
    frame["top_samples"] = [
        bank.top_samples(int(concept), n=TOP_SAMPLES).ids for concept in frame["concept"]
    ]
    info: dict[str, Any] = {
        "layer": bank.layer,
        "settings": settings_info(settings),
        "k": k,
        "per_class": per_class,
        "subset": subset,
        "samples": len(bank.samples),
        "sweeps": json.loads(bank.sweeps.to_json(orient="records")),
        "notes": bank.notes,
    }
    return save_table(discovered_file(bank.run.path, bank.layer), frame, info)
