"""Reading a finished run: the samples table, latent arrays, renders, quarantine; no model needed."""

from __future__ import annotations

import io
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from latentsight.errors import NotRecordedError, RunStoreError
from latentsight.insights.base import AnalysisSettings, Insight
from latentsight.store import analysis
from latentsight.store.manifest import (
    QUARANTINE,
    RENDERS,
    SAMPLES,
    STATUS_COMPLETE,
    layer_entry,
    read_manifest,
)


class Run:
    """A run directory opened for reading. Use :func:`latentsight.open_run` to get one."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        if self.manifest.get("status") != STATUS_COMPLETE:
            raise RunStoreError(
                f"The run at {self.path} is incomplete (its capture was interrupted): finish it "
                "with `latentsight analyze module:project --out "
                f"{self.path} --resume` (or analyze(project, out=..., resume=True))."
            )
        self._check_files()

    def _check_files(self) -> None:
        n = self.manifest["n_samples"]
        samples = self.path / SAMPLES
        try:
            rows = pq.ParquetFile(samples).metadata.num_rows
        except (OSError, pa.ArrowException) as error:
            raise RunStoreError(
                f"The samples table of {self.path} is missing or corrupt ({error}); re-create the "
                "run with `latentsight analyze ... --overwrite`."
            ) from None
        if rows != n:
            raise RunStoreError(
                f"The samples table of {self.path} has {rows} rows but the manifest says {n}: the "
                "run is corrupt; re-create it with --overwrite."
            )
        for entry in self.manifest["layers"]:
            for view, spec in entry["views"].items():
                file = self.path / spec["file"]
                try:
                    array = np.load(file, mmap_mode="r")
                except (OSError, ValueError) as error:
                    raise RunStoreError(
                        f"The latents of layer {entry['name']!r} ({view}) in {self.path} are "
                        f"missing or corrupt ({error}); re-create the run with --overwrite."
                    ) from None
                if array.shape != (n, spec["dim"]) or array.dtype != np.float32:
                    raise RunStoreError(
                        f"The latents of layer {entry['name']!r} ({view}) have shape "
                        f"{array.shape} {array.dtype}, expected ({n}, {spec['dim']}) float32: the "
                        "run is corrupt; re-create it with --overwrite."
                    )

    def __repr__(self) -> str:
        subsets = ", ".join(f"{s['name']}={s['size']}" for s in self.manifest["subsets"])
        return f"Run({str(self.path)!r}, samples={self.manifest['n_samples']}, subsets: {subsets})"

    @property
    def name(self) -> str:
        """The project's name."""
        return self.manifest["name"]

    @property
    def layers(self) -> list[str]:
        """The recorded layers, in the order they were given."""
        return [entry["name"] for entry in self.manifest["layers"]]

    def views(self, layer: str) -> list[str]:
        """The views kept for a layer: ``"mean"``, and ``"grid"`` for spatial and sequence layers."""
        return list(layer_entry(self.manifest, layer)["views"])

    @cached_property
    def samples(self) -> pd.DataFrame:
        """One row per sample, in latent-row order: id, subset, target, prediction, loss, metadata."""
        return self.sql("SELECT * FROM samples ORDER BY row").df()

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """Query the run with DuckDB; the tables ``samples`` and ``quarantine`` are defined."""
        connection = duckdb.connect()
        connection.execute(
            f"CREATE VIEW samples AS SELECT * FROM read_parquet('{self.path / SAMPLES}')"
        )
        connection.execute(
            f"CREATE VIEW quarantine AS SELECT * FROM read_parquet('{self.path / QUARANTINE}')"
        )
        return connection.sql(query)

    def latent(self, layer: str, view: str = "mean") -> np.ndarray:
        """The ``N x D`` float32 vectors of a layer view, memory-mapped, rows in samples order."""
        views = layer_entry(self.manifest, layer)["views"]
        if view not in views:
            raise NotRecordedError(
                f"Layer {layer!r} has no {view!r} view; its views are {list(views)}."
            )
        return np.load(self.path / views[view]["file"], mmap_mode="r")

    @cached_property
    def quarantine(self) -> pd.DataFrame:
        """The samples that failed during capture, with the error each raised."""
        return pq.read_table(self.path / QUARANTINE).to_pandas()

    @property
    def subsets(self) -> dict[str, int]:
        """Samples captured per subset."""
        counts = self.sql("SELECT subset, count(*) AS n FROM samples GROUP BY subset").fetchall()
        captured = dict(counts)
        return {s["name"]: int(captured.get(s["name"], 0)) for s in self.manifest["subsets"]}

    def render(self, sample_id: str) -> Image.Image | str:
        """The stored picture (or text) of a sample, as the Project's render drew it."""
        if not (self.path / RENDERS).is_file():
            raise NotRecordedError(
                "This run stored no renders: give the Project a render function (inputs that "
                "are image tensors get one by default)."
            )
        with duckdb.connect() as connection:
            found = connection.execute(
                f"SELECT kind, image, text FROM read_parquet('{self.path / RENDERS}') WHERE id = ?",
                [sample_id],
            ).fetchone()
        if found is None:
            raise NotRecordedError(f"No sample with id {sample_id!r} in this run.")
        kind, image, text = found
        return Image.open(io.BytesIO(image)) if kind == "image" else text

    def analyze(
        self,
        *,
        layer: str | None = None,
        view: str = "mean",
        settings: AnalysisSettings | None = None,
        detectors: list[str] | None = None,
        progress: bool = True,
    ) -> list[Insight]:
        """(Re-)run the analysis stage on the stored latents: map, clusters, ranked insights.

        Args:
            layer: the recorded layer to analyse (default: the last one, nearest the output).
            view: ``"mean"`` or ``"grid"``.
            settings: thresholds, seeds and methods (see :class:`AnalysisSettings`).
            detectors: names of the detectors to run (default: all).
            progress: show a progress bar.
        """
        from latentsight.insights.engine import run_analysis

        if layer is not None:
            layer_entry(self.manifest, layer)
        found = run_analysis(
            self, layer=layer, view=view, settings=settings, detectors=detectors, progress=progress
        )
        for cached in ("map", "clusters", "insights", "scores"):
            self.__dict__.pop(cached, None)
        return found

    @cached_property
    def map(self) -> pd.DataFrame:
        """Per sample: id, 2-D map coordinates ``x``, ``y``, ``cluster`` and ``noise``."""
        return analysis.read_frame(self.path, analysis.MAP)

    @cached_property
    def clusters(self) -> pd.DataFrame:
        """Per cluster: size, subset mix, mean loss and components, accuracy, enriched metadata."""
        return analysis.read_frame(self.path, analysis.CLUSTERS)

    @cached_property
    def insights(self) -> list[Insight]:
        """The ranked insights, most impactful first."""
        return analysis.read_insights(self.path)

    @cached_property
    def scores(self) -> pd.DataFrame:
        """Per-sample scores of the detectors (e.g. label-issue score), by id."""
        return analysis.read_frame(self.path, analysis.SCORES)

    @property
    def analysis_info(self) -> dict[str, Any]:
        """How the analysis was made: layer, view, settings, timings, per-detector notes."""
        return analysis.read_info(self.path)

    def summary(self) -> dict[str, Any]:
        """Headline figures per subset: samples, mean loss and accuracy where they exist."""
        columns = set(self.sql("SELECT * FROM samples LIMIT 0").columns)
        parts = ["subset", "count(*) AS samples"]
        if "loss" in columns:
            parts.append("avg(loss) AS mean_loss")
        if "correct" in columns:
            parts.append("avg(correct::DOUBLE) AS accuracy")
        frame = self.sql(f"SELECT {', '.join(parts)} FROM samples GROUP BY subset").df()
        return {row.pop("subset"): row for row in frame.to_dict("records")}
