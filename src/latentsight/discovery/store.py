"""Keeping a layer's discovered concepts in the run, so the report, the dashboard and later
analyses show them without fitting again.

One file per layer (``latentsight.store.concepts.discovered_file``): the concept table with, per
concept, the ids of the samples that express it most; its schema metadata records how it was
made (settings, k, grouping, subset, the k sweeps and the notes). A table without importance
(no model) never replaces a stored one that has it: that one is kept, and a note says why. The
analysis keeps it only when it was made the same way, so that the concepts its insights name
are the stored ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq

from latentsight.store.concepts import discovered_file, save_table, settings_info, table_info

if TYPE_CHECKING:
    from latentsight.discovery.discover import DiscoverySettings
    from latentsight.discovery.result import ConceptBank

TOP_SAMPLES = 16  # the samples kept per concept for galleries
KEPT = (
    "not stored: {path} keeps the concepts stored before, which have importance, and these "
    "have none; to replace them, attach the Project the run was captured from "
    "(run.attach(project), or --project module:project), or pass save=False (--no-save) to "
    "only look"
)


def save_bank(
    bank: ConceptBank,
    *,
    settings: DiscoverySettings,
    k: int | str,
    per_class: bool,
    subset: str | Sequence[str] | None,
    keep_unlike: bool = True,
) -> Path | None:
    """Write the bank's table (plus each concept's top sample ids) into the run and return the
    file; None, with a note, where that would replace a stored table's importance by none.

    With ``keep_unlike=False`` (the analysis, whose insights name the concepts of its own
    table) a stored table made with other settings, k, grouping or subset is replaced."""
    path = discovered_file(bank.run.path, bank.layer)
    if has_importance(path) and not _finite(bank.table["importance"]):
        made = {"settings": settings_info(settings), "k": k, "per_class": per_class}
        made = json.loads(json.dumps({**made, "subset": subset}))  # as the stored info reads
        stored = table_info(path)
        if keep_unlike or all(stored.get(key) == value for key, value in made.items()):
            bank.notes.append(KEPT.format(path=path))
            return None
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
    return save_table(path, frame, info)


def has_importance(path: Path) -> bool:
    """Whether a stored concept table exists at ``path`` with a finite importance for some
    concept (an unreadable file has none, so a new table replaces it)."""
    try:
        column = pq.read_table(path, columns=["importance"]).column("importance")
    except (OSError, ValueError):  # absent, foreign or half-written: nothing to keep
        return False
    return _finite(column.to_numpy())


def _finite(values: Any) -> bool:
    return bool(np.isfinite(np.asarray(values, dtype=float)).any())
