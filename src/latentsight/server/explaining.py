"""Explanations in the dashboard: the maps cached in the run, and more computed on demand.

With a model (the run's Project attached), ``compute`` runs ``run.explain`` for one sample, which
stores the map in the run's explanation cache, where ``heatmap`` then finds it; without one, only
what the run already caches is shown. Drawn overlays are kept in a small LRU, so a map asked for
again costs a dictionary lookup. Which maps each sample has is read from the cache once, and
again only when its folders change (new parts are new files), so that answering a sample costs
a few ``stat`` calls rather than a read of every cached entry.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from latentsight.report import extras
from latentsight.store.explanations import CONFIG, EXPLANATIONS

if TYPE_CHECKING:
    from latentsight.report.renders import RenderIndex
    from latentsight.store.run import Run

TARGETS = ("predicted", "label")
NO_MODEL = (
    "This dashboard has no model, so it shows only the explanations cached in the run. To "
    "compute more, start it with the Project that made the run: latentsight serve RUN --project "
    "module:project (latentsight analyze records it, and serve then finds it by itself), or "
    "create_app(run, project=project)."
)
_DRAWN = 256


@dataclass(frozen=True)
class Options:
    """What can be explained on demand: methods (and which take a layer), layers, targets."""

    available: bool
    note: str
    methods: list[str] = field(default_factory=list)
    layered: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    default_layer: str | None = None
    targets: list[str] = field(default_factory=list)


class Explanations:
    """A run's explanation maps for the dashboard: cached ones, drawn ones, computed ones."""

    def __init__(self, run: Run, renders: RenderIndex) -> None:
        self.run = run
        self.renders = renders
        self._compute = threading.Lock()  # one model pass at a time
        self._drawn_lock = threading.Lock()
        self._drawn: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._listing_lock = threading.Lock()
        self._listing: tuple[tuple, dict[str, list[dict[str, str | None]]]] = ((None,), {})

    @property
    def available(self) -> bool:
        """Whether a model is attached, so maps can be computed."""
        return self.run.project is not None

    @cached_property
    def options(self) -> Options:
        """The methods, layers and targets offered for on-demand explanations."""
        if not self.available:
            return Options(False, NO_MODEL)
        from latentsight.explain.attribution import METHODS
        from latentsight.explain.session import spatial_modules

        layers = spatial_modules(self.run.project.resolve_model())
        targets = ["predicted"]
        if "target" in self.run.samples and self.run.samples["target"].notna().any():
            targets.append("label")
        targets.extend(self.run.class_names.values())  # a class by name
        layered = [name for name, method in METHODS.items() if method.layered]
        return Options(
            True,
            "Maps are computed for one sample at a time on the server and kept in the run.",
            methods=[name for name in METHODS if name not in layered or layers],
            layered=layered if layers else [],
            layers=layers,
            default_layer=layers[-1] if layers else None,
            targets=targets,
        )

    def listed(self, sample_id: str) -> list[dict[str, str | None]]:
        """The cached maps of a sample: method, layer and target of each, newest entry first,
        as :func:`latentsight.report.extras.heatmaps` lists them."""
        folder = self.run.path / EXPLANATIONS
        signature = _signature(folder)
        with self._listing_lock:
            if signature != self._listing[0]:
                self._listing = (signature, _listing(folder))
            return self._listing[1].get(sample_id, [])

    def png(
        self, sample_id: str, method: str, layer: str | None, target: str | None
    ) -> bytes | None:
        """The cached map of a sample drawn over its picture, or None when none is cached."""
        found = extras.find_heatmap(self.run.path, sample_id, method, layer, target)
        if found is None:
            return None
        key = (found.stored.entry, sample_id)
        with self._drawn_lock:
            if key in self._drawn:
                self._drawn.move_to_end(key)
                return self._drawn[key]
        render = self.renders.get(sample_id)
        drawn = found.png(render.image if render is not None else None)
        with self._drawn_lock:
            self._drawn[key] = drawn
            if len(self._drawn) > _DRAWN:
                self._drawn.popitem(last=False)
        return drawn

    def compute(self, sample_id: str, method: str, layer: str | None, target: str | int) -> None:
        """Explain one sample with the attached model; the map lands in the run's cache."""
        with self._compute:
            self.run.explain([sample_id], method=method, layer=layer, target=target)


def _signature(folder: Path) -> tuple:
    """What changes whenever an entry or a part is added to the cache, or one is removed."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return ()
    return tuple(
        (e.name, e.stat().st_mtime_ns, len(os.listdir(e.path))) for e in entries if e.is_dir()
    )


def _listing(folder: Path) -> dict[str, list[dict[str, str | None]]]:
    """Each sample's cached maps: per method, layer and target, the newest entry holding it."""
    entries = []
    for config_path in folder.glob(f"*/{CONFIG}"):
        config = json.loads(config_path.read_text())
        ids: set[str] = set()
        for part in config_path.parent.glob("part-*.parquet"):
            ids.update(pq.read_table(part, columns=["id"]).column("id").to_pylist())
        entries.append((config.get("created_at", ""), config_path.parent.name, config, ids))
    by_sample: dict[str, list[dict[str, str | None]]] = {}
    seen: dict[str, set[tuple]] = {}
    for _, _, config, ids in sorted(entries, key=lambda e: (e[0], e[1]), reverse=True):
        key = (config["method"], config["layer"], config["target"])
        for sample_id in ids:
            if key not in seen.setdefault(sample_id, set()):
                seen[sample_id].add(key)
                by_sample.setdefault(sample_id, []).append(
                    {"method": key[0], "layer": key[1], "target": key[2]}
                )
    return by_sample
