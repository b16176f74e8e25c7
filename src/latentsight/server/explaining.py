"""Explanations in the dashboard: the maps cached in the run, and more computed on demand.

With a model (the run's Project attached), ``compute`` runs ``run.explain`` for one sample, which
stores the map in the run's explanation cache, where ``heatmap`` then finds it; without one, only
what the run already caches is shown. Drawn overlays are kept in a small LRU, so a map asked for
again costs a dictionary lookup.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from latentsight.report import extras

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
        """The cached maps of a sample: method, layer and target of each."""
        return [
            {"method": h.method, "layer": h.layer, "target": h.target}
            for h in extras.heatmaps(self.run.path, sample_id)
        ]

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

    def compute(self, sample_id: str, method: str, layer: str | None, target: str) -> None:
        """Explain one sample with the attached model; the map lands in the run's cache."""
        with self._compute:
            self.run.explain([sample_id], method=method, layer=layer, target=target)
