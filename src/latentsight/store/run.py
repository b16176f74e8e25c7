"""Reading a finished run: the samples table, latent arrays, renders, quarantine; no model needed."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from latentsight.errors import (
    ExplanationError,
    NotRecordedError,
    QueryError,
    RunStoreError,
    argument_error,
)
from latentsight.insights.base import AnalysisSettings, Insight
from latentsight.store import analysis
from latentsight.store.concepts import CONCEPTS
from latentsight.store.files import check_writable, file_signature, rows_digest
from latentsight.store.manifest import (
    ANALYSIS,
    QUARANTINE,
    RENDERS,
    ROWS_DIGEST,
    SAMPLES,
    STATUS_COMPLETE,
    layer_entry,
    read_manifest,
    render_parts,
)
from latentsight.store.renders import RENDER_COLUMNS, picture, stored_pixels
from latentsight.store.writer import LOCK, capture_in_progress

if TYPE_CHECKING:
    import torch

    from latentsight.concepts import Concepts, ConceptSettings
    from latentsight.discovery import ConceptBank, DiscoverySettings
    from latentsight.explain import (
        ActivationMaps,
        ActivationSweep,
        AttributionSettings,
        Explanation,
        ExplanationChecks,
        FilterImages,
        FilterSettings,
        LayerSweep,
        MacoSettings,
    )
    from latentsight.explain.targets import TargetLike
    from latentsight.project import Project


def stored_renders(run_dir: Path, ids: Sequence[str]) -> dict[str, np.ndarray | str]:
    """The stored renders of these samples by id, in one query: pixels, or the text drawn."""
    parts = [str(part) for part in render_parts(run_dir)]
    with duckdb.connect() as connection:
        rows = connection.execute(
            f"SELECT id, {', '.join(RENDER_COLUMNS)} FROM read_parquet(?) "
            "WHERE id IN (SELECT unnest(?))",
            [parts, list(ids)],
        ).fetchall()
    return {row[0]: row[6] if row[1] == "text" else stored_pixels(*row[2:6]) for row in rows}


def resume_command(manifest: dict[str, Any], path: Path) -> str:
    """The command that finishes an interrupted capture: the project the command line named
    when it started (else ``module:project``); a resume takes the run's own batch and chunk
    sizes, so none are given."""
    words = str(manifest.get("provenance", {}).get("command", "")).split()
    named = words.index("analyze") + 1 if "analyze" in words[:-1] else None
    project = words[named] if named is not None and ":" in words[named] else "module:project"
    return f"latentsight analyze {project} --out {path} --resume"


COPY_THE_RUN = (
    "copy the run to a directory you can write to (shutil.copytree(run.path, ...)) and open the "
    "copy"
)


class Run:
    """A run directory opened for reading. Use :func:`latentsight.open_run` to get one."""

    def __init__(self, path: str | Path) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise argument_error(
                "latentsight.open_run(path)", "the run directory's path (str or Path)", path
            )
        self.path = Path(path)  # as given, so that messages name it as the user typed it
        if capture_in_progress(self.path):
            raise RunStoreError(
                f"The run at {self.path} is in progress: a capture (in another process, which "
                f"holds its {LOCK}) is still writing it. Wait for that capture to finish, then "
                "open the run again."
            )
        self.manifest = read_manifest(self.path)
        if self.manifest.get("status") != STATUS_COMPLETE:
            raise RunStoreError(
                f"The run at {self.path} is incomplete (its capture was interrupted): finish it "
                f"with `{resume_command(self.manifest, self.path)}` (or analyze(project, "
                "out=..., resume=True))."
            )
        # file signatures: of the layer views' headers checked, and of those whose digest was
        self._checked: dict[tuple[str, str], tuple[int, int, int]] = {}
        self._verified: dict[tuple[str, str], tuple[int, int, int]] = {}
        self._opened_in = Path.cwd()  # what a relative path was opened from
        self._check_files()
        self._project: Project | None = None

    def _check_files(self) -> None:
        """Refuse, at open, a run whose tables or arrays are missing, cut short or altered:
        footers and headers only, so opening stays cheap however large the run."""
        n = self.manifest["n_samples"]
        samples = self.path / SAMPLES
        try:
            self._opened = file_signature(samples)  # what tells this run from one in its place
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
        self._check_quarantine()
        self._check_renders(n)
        for entry in self.manifest["layers"]:
            for view, spec in entry["views"].items():
                self._check_latents(entry["name"], view, spec, n)

    def _check_quarantine(self) -> None:
        """The quarantine table is small: read it whole."""
        if not (self.path / QUARANTINE).exists():
            raise RunStoreError(
                f"The quarantine table of {self.path} is missing (its {QUARANTINE} is gone); "
                "re-create the run with `latentsight analyze ... --overwrite`."
            )
        try:
            rows = pq.read_table(self.path / QUARANTINE).num_rows
        except (OSError, pa.ArrowException) as error:
            raise RunStoreError(
                f"The quarantine table of {self.path} is missing or corrupt ({error}); re-create "
                "the run with `latentsight analyze ... --overwrite`."
            ) from None
        expected = self.manifest.get("n_quarantined")
        if expected is not None and rows != expected:
            raise RunStoreError(
                f"The quarantine table of {self.path} has {rows} rows but the manifest says "
                f"{expected}: the run is corrupt; re-create it with --overwrite."
            )

    def _check_renders(self, n: int) -> None:
        """The render parts, one per captured chunk, numbered from 0, holding one row per sample
        of the run (quarantined samples have none), as their footers say."""
        stored = self.manifest.get("settings", {}).get("renders")
        directory = self.path / RENDERS
        if stored is False or (stored is None and not directory.is_dir()):
            return
        fix = "re-create the run with `latentsight analyze ... --overwrite`"
        parts = render_parts(self.path)
        if not parts:
            if n == 0:
                return
            gone = (
                f"no Parquet parts in {RENDERS}/" if directory.is_dir() else f"{RENDERS}/ is gone"
            )
            raise RunStoreError(
                f"The renders of {self.path} are missing ({gone}), though the run was captured "
                f"with renders: {fix}."
            )
        for number, part in enumerate(parts):
            if part.name != f"part-{number:06d}.parquet":
                raise RunStoreError(
                    f"The renders of {self.path} are incomplete: {RENDERS}/part-{number:06d}.parquet "
                    f"is missing; {fix}."
                )
        total = 0
        for part in parts:
            try:
                total += pq.read_metadata(part).num_rows
            except (OSError, pa.ArrowException) as error:
                raise RunStoreError(
                    f"The renders of {self.path} are corrupt: {RENDERS}/{part.name} cannot be "
                    f"read ({error}); {fix}."
                ) from None
        if total != n:
            raise RunStoreError(
                f"The renders of {self.path} hold {total} rows but the run has {n} samples (a part "
                f"was replaced or cut short): {fix}."
            )

    def _check_latents(self, layer: str, view: str, spec: dict[str, Any], n: int) -> None:
        """One layer view's array: float32, ``n x dim``, and exactly the header and its data."""
        file = self.path / spec["file"]
        try:
            array = np.load(file, mmap_mode="r")
        except (OSError, ValueError, EOFError) as error:
            raise RunStoreError(
                f"The latents of layer {layer!r} ({view}) in {self.path} are "
                f"missing or corrupt ({error}); re-create the run with --overwrite."
            ) from None
        if not isinstance(array, np.memmap):  # an .npz archive or a pickle
            getattr(array, "close", lambda: None)()
            raise RunStoreError(
                f"The latents of layer {layer!r} ({view}) in {self.path} are corrupt ({file.name} "
                "is not a .npy array); re-create the run with --overwrite."
            )
        if array.shape != (n, spec["dim"]) or array.dtype != np.float32:
            raise RunStoreError(
                f"The latents of layer {layer!r} ({view}) have shape "
                f"{array.shape} {array.dtype}, expected ({n}, {spec['dim']}) float32: the "
                "run is corrupt; re-create it with --overwrite."
            )
        expected = array.offset + array.nbytes
        signature = file_signature(file)
        size = signature[1]
        if size != expected:
            raise RunStoreError(
                f"The latents of layer {layer!r} ({view}) in {self.path} are corrupt: "
                f"{file.name} has {size} bytes, but its header and {n} x {spec['dim']} float32 "
                f"values make {expected} ({size - expected:+d}); re-create the run with "
                "--overwrite."
            )
        self._checked[(layer, view)] = signature

    def _check_not_replaced(self) -> None:
        """Refuse to read on from a run that another process replaced (captured again with
        overwrite, or removed) since it was opened, from one stat of its samples table."""
        try:
            same = file_signature(self.path / SAMPLES) == self._opened
        except OSError:
            same = False
            if not self.path.is_absolute() and Path.cwd() != self._opened_in:
                raise RunStoreError(
                    f"The run was opened by the relative path {str(self.path)!r} in "
                    f"{self._opened_in}, and the working directory is now {Path.cwd()}: open it "
                    "by its absolute path, or change back to that directory."
                ) from None
        if not same:
            raise RunStoreError(
                f"{self.path} was replaced after it was opened (its samples table is not the one "
                "read then, e.g. after a capture with --overwrite): open it again with "
                f"latentsight.open_run({str(self.path)!r})."
            )

    def _check_can_store(self, folders: Sequence[Path], fix: str) -> None:
        """Refuse, before any work, a call that stores its results in folders of the run that
        cannot be written (read-only, or a file in the way), naming ``fix``."""
        for folder in folders:
            check_writable(folder, folder=True, fix=fix)

    def _layer_name(self, layer: object, call: str) -> str:
        """``layer`` as given to ``call``, refused unless it is a layer name (text)."""
        if not isinstance(layer, str):
            raise argument_error(
                f"{call}(layer)", f"a recorded layer name (str), one of {self.layers}", layer
            )
        return layer

    def __repr__(self) -> str:
        subsets = ", ".join(f"{s['name']}={s['size']}" for s in self.manifest["subsets"])
        return f"Run({str(self.path)!r}, samples={self.manifest['n_samples']}, subsets: {subsets})"

    @property
    def name(self) -> str:
        """The project's name."""
        return self.manifest["name"]

    @property
    def class_names(self) -> dict[int, str]:
        """The class names by class index that the Project gave (empty when it gave none)."""
        return dict(enumerate(self.manifest.get("classes") or []))

    @property
    def layers(self) -> list[str]:
        """The recorded layers, in the order they were given."""
        return [entry["name"] for entry in self.manifest["layers"]]

    def views(self, layer: str) -> list[str]:
        """The views kept for a layer: ``"mean"``, and ``"grid"`` for spatial and sequence layers."""
        return list(layer_entry(self.manifest, layer)["views"])

    @property
    def samples(self) -> pd.DataFrame:
        """One row per sample, in latent-row order: id, subset, target, prediction, loss, metadata.

        Each call gives a frame of its own: sorting or editing it leaves the run, and the
        analyses that read it, as they are.
        """
        return self._samples.copy(deep=False)

    @cached_property
    def _samples(self) -> pd.DataFrame:
        return self.sql("SELECT * FROM samples ORDER BY row").df()

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """Query the run with DuckDB, read only (one SELECT); the tables ``samples`` and
        ``quarantine`` are defined."""
        if not isinstance(query, str) or not query.strip():
            raise QueryError(
                f'run.sql takes one SELECT query as text, got {query!r}: e.g. run.sql("SELECT '
                'subset, avg(loss) FROM samples GROUP BY subset").'
            )
        self._check_not_replaced()
        connection = duckdb.connect()
        for table, file in (("samples", SAMPLES), ("quarantine", QUARANTINE)):
            where = str(self.path / file).replace("'", "''")
            connection.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{where}')")
        try:
            statements = connection.extract_statements(query)
            if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
                found = ", ".join(statement.type.name for statement in statements)
                raise QueryError(
                    f"run.sql runs one SELECT query, read only, but was given {found}: the run's "
                    "files are never changed through it; query them, then write results with "
                    "pandas (run.sql(...).df().to_csv(...))."
                )
            return connection.sql(query)
        except duckdb.Error as error:
            problem = str(error).strip().splitlines()[0]
            columns = [row[0] for row in connection.execute("DESCRIBE samples").fetchall()]
            raise QueryError(
                f"The query failed: {problem}. The tables are samples (columns "
                f"{', '.join(columns)}) and quarantine (id, subset, index, error)."
            ) from None

    def latent(self, layer: str, view: str = "mean") -> np.ndarray:
        """The ``N x D`` float32 vectors of a layer view, memory-mapped, rows in samples order."""
        views = layer_entry(self.manifest, self._layer_name(layer, "run.latent"))["views"]
        if not isinstance(view, str):
            raise argument_error(
                "run.latent(view)", f"a view name (str), one of {list(views)}", view
            )
        if view not in views:
            raise NotRecordedError(
                f"Layer {layer!r} has no {view!r} view; its views are {list(views)}."
            )
        self._check_not_replaced()
        signature = self._header_checked(layer, view, views[view])
        array = np.load(self.path / views[view]["file"], mmap_mode="r")
        if self._verified.get((layer, view)) != signature:
            self._check_digest(layer, view, views[view], array)
            self._verified[(layer, view)] = signature
        return array

    def _header_checked(self, layer: str, view: str, spec: dict[str, Any]) -> tuple[int, int, int]:
        """The signature of a layer view's file, whose header is checked again when the file
        changed (was replaced or rewritten) since it was last checked."""
        try:
            changed = file_signature(self.path / spec["file"]) != self._checked[(layer, view)]
        except OSError:  # gone: the check says so
            changed = True
        if changed:
            self._check_latents(layer, view, spec, self.manifest["n_samples"])
        return self._checked[(layer, view)]

    def _check_digest(self, layer: str, view: str, spec: dict[str, Any], array: np.ndarray) -> None:
        """Refuse an array whose rows were reordered or replaced since capture, from the few rows
        its digest covers (a run written before digests were recorded is not checked)."""
        recorded = spec.get(ROWS_DIGEST)
        if recorded is not None and rows_digest(array) != recorded:
            raise RunStoreError(
                f"The latents of layer {layer!r} ({view}) in {self.path} are not the ones "
                f"captured: rows of {spec['file']} differ from the digest in the manifest (rows "
                "reordered, or the file replaced by another run's); re-create the run with "
                "`latentsight analyze ... --overwrite`."
            )

    @cached_property
    def quarantine(self) -> pd.DataFrame:
        """The samples that failed during capture, with the error each raised."""
        self._check_not_replaced()
        return pq.read_table(self.path / QUARANTINE).to_pandas()

    @property
    def subsets(self) -> dict[str, int]:
        """Samples captured per subset."""
        counts = self.sql("SELECT subset, count(*) AS n FROM samples GROUP BY subset").fetchall()
        captured = dict(counts)
        return {s["name"]: int(captured.get(s["name"], 0)) for s in self.manifest["subsets"]}

    def render(self, sample_id: str) -> Image.Image | str:
        """The stored picture (or text) of a sample, as the Project's render drew it."""
        if not isinstance(sample_id, str):
            raise argument_error(
                "run.render(sample_id)", "one sample id (str), as in run.samples['id']", sample_id
            )
        self._check_not_replaced()
        if not render_parts(self.path):
            raise NotRecordedError(
                "This run stored no renders: give the Project a render function (inputs that "
                "are image tensors get one by default)."
            )
        found = stored_renders(self.path, [sample_id])
        if sample_id not in found:
            raise NotRecordedError(f"No sample with id {sample_id!r} in this run.")
        drawn = found[sample_id]
        return drawn if isinstance(drawn, str) else picture(drawn)

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
            layer_entry(self.manifest, self._layer_name(layer, "run.analyze"))
        concepts = [self.path / CONCEPTS] if detectors is None else []  # its concept findings
        self._check_can_store(
            [self.path, self.path / ANALYSIS, *concepts],
            "run.analyze stores its results in the run and has no option to keep them in "
            f"memory only; {COPY_THE_RUN}",
        )
        found = run_analysis(
            self, layer=layer, view=view, settings=settings, detectors=detectors, progress=progress
        )
        for cached in ("map", "clusters", "neighbours", "insights", "scores"):
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
    def neighbours(self) -> pd.DataFrame:
        """Per sample: ``id``, the ids of its nearest samples in the analysed latent space
        (``neighbours``, nearest first) and their Euclidean ``distances``: the graph that the
        detectors read."""
        rows, distances = analysis.read_neighbours(self.path)
        ids = self.map["id"].to_numpy()
        return pd.DataFrame(
            {"id": ids, "neighbours": list(ids[rows]), "distances": list(distances)}
        )

    @cached_property
    def insights(self) -> list[Insight]:
        """The ranked insights, most impactful first."""
        return analysis.read_insights(self.path)

    @cached_property
    def scores(self) -> pd.DataFrame:
        """Per-sample scores of the detectors (e.g. label-issue score), by id."""
        return analysis.read_frame(self.path, analysis.SCORES)

    @property
    def analysed(self) -> bool:
        """Whether the run holds a finished analysis (map, clusters, insights)."""
        return analysis.is_analysed(self.path)

    @property
    def analysis_info(self) -> dict[str, Any]:
        """How the analysis was made: layer, view, settings, timings, per-detector notes."""
        return analysis.read_info(self.path)

    def concepts(
        self,
        layer: str | Sequence[str] | None = None,
        *,
        settings: ConceptSettings | None = None,
        annotations: pd.DataFrame | None = None,
        class_names: Sequence[str] | dict[int, str] | None = None,
        subset: str | Sequence[str] | None = None,
        progress: bool = False,
        save: bool = True,
    ) -> Concepts:
        """INVERT labels of every unit of a layer (or several; default all) from the stored
        latents, no model needed: ``.table``, ``.neurons_for(concept)``, ``.layer_summary``.
        Each layer's table, and any ``.audit()`` of it, is stored under ``concepts/`` in the
        run, where the report and the dashboard show it (``save=False`` keeps it in memory).

        Args:
            layer: the recorded layer(s) to label.
            settings: beam size, formula length, share of positives, bins, alpha.
            annotations: your own concepts, one boolean column each, rows by sample id.
            class_names: class names by index, for the ``label == ...`` concepts (default: the
                Project's ``classes``).
            subset: label on these subsets' samples only (default: all samples).
            progress: show a progress bar.
            save: store the tables in the run (replacing earlier ones of the same layers).
        """
        from latentsight.concepts import label_neurons

        if layer is not None and not isinstance(layer, str):
            names = list(layer) if isinstance(layer, Iterable) else None
            if names is None or not all(isinstance(name, str) for name in names):
                raise argument_error(
                    "run.concepts(layer)",
                    f"a recorded layer name (str), several, or None for all of {self.layers}",
                    layer,
                )
            layer = names
        if save:
            self._check_can_store(
                [self.path / CONCEPTS],
                f"run.concepts stores its tables in the run: pass save=False to keep them in "
                f"memory only, or {COPY_THE_RUN}",
            )
        return label_neurons(
            self,
            layer,
            settings=settings,
            annotations=annotations,
            class_names=class_names,
            subset=subset,
            progress=progress,
            project=self._project,
            save=save,
        )

    def discover_concepts(
        self,
        layer: str,
        *,
        per_class: bool | None = None,
        k: int | str = "auto",
        settings: DiscoverySettings | None = None,
        subset: str | Sequence[str] | None = None,
        class_names: Sequence[str] | dict[int, str] | None = None,
        progress: bool = False,
        save: bool = True,
    ) -> ConceptBank:
        """Concepts the model learned in a layer, found without labels (dictionary learning on
        the stored latents: per class by default for classification and binary runs, else
        global), with importance (needs the attached Project: closed form for a linear head,
        else through the model), prevalence,
        reliability and INVERT names: ``.table``, ``.top_samples(c)``,
        ``.importance(sample_id)``, ``.heatmaps(ids, c)``, ``.fidelity()``, ``.sweeps``; kept
        in the run (for the report and the dashboard) unless ``save=False``, and never in place
        of a stored table that has importance when this one has none (see ``.notes``)."""
        from latentsight.discovery import discover_concepts

        self._layer_name(layer, "run.discover_concepts")
        if save:
            self._check_can_store(
                [self.path / CONCEPTS],
                f"run.discover_concepts stores its concepts in the run: pass save=False to keep "
                f"them in memory only, or {COPY_THE_RUN}",
            )
        return discover_concepts(
            self,
            layer,
            per_class=per_class,
            k=k,  # type: ignore[arg-type]
            settings=settings,
            subset=subset,
            class_names=class_names,
            progress=progress,
            save=save,
        )

    def report(self, path: str | Path = "report.html") -> Path:
        """Write the self-contained HTML report of this analysed run (one file, no network
        needed to open it) and return its path."""
        from latentsight.report import write_report

        return write_report(self, path)

    def summary(self) -> dict[str, Any]:
        """Headline figures per subset, in the Project's order: samples, mean loss and accuracy
        where they exist."""
        columns = set(self.sql("SELECT * FROM samples LIMIT 0").columns)
        parts = ["subset", "count(*) AS samples"]
        if "loss" in columns:
            parts.append("avg(loss) AS mean_loss")
        if "correct" in columns:
            parts.append("avg(correct::DOUBLE) AS accuracy")
        frame = self.sql(f"SELECT {', '.join(parts)} FROM samples GROUP BY subset").df()
        found = {row.pop("subset"): row for row in frame.to_dict("records")}
        planned = [subset["name"] for subset in self.manifest["subsets"]]
        return {name: found[name] for name in planned if name in found}  # the Project's order

    @property
    def project(self) -> Project | None:
        """The Project attached to this run (in memory), needed to run the model again."""
        return self._project

    def attach(self, project: Project, *, verify: bool = True) -> Run:
        """Attach the Project the run was captured from, so explanations can run its model.

        With ``verify`` (the default), refuses a model whose weights fingerprint differs from the
        one recorded in the manifest. Returns the run.
        """
        from latentsight.capture.fingerprint import check_run_model
        from latentsight.project import Project

        if not isinstance(project, Project):
            raise argument_error(
                "run.attach(project)",
                "the latentsight.Project the run was captured from (latentsight.open_run(path, "
                "project='module:project') loads one by name)",
                project,
            )
        if verify:
            check_run_model(project.resolve_model(), self.manifest, self.path)
        self._project = project
        return self

    def explain(
        self,
        ids: str | Sequence[str],
        *,
        method: str = "gradcam",
        layer: str | None = None,
        target: TargetLike = "predicted",
        settings: AttributionSettings | None = None,
        batch_size: int = 32,
        device: str | torch.device | None = None,
        cache: bool = True,
    ) -> Explanation | LayerSweep:
        """Attribution maps of samples (needs the model; cached under ``explanations/``).

        Args:
            ids: one sample id or a list of them.
            method: ``gradcam``, ``layercam``, ``saliency``, ``input_x_gradient``,
                ``integrated_gradients`` (``ig``), ``smoothgrad``, ``gradient_shap``, ``occlusion``.
            layer: the layer of ``gradcam`` / ``layercam`` (default: the last convolution);
                ``"all"`` sweeps every convolution and returns a :class:`LayerSweep`.
            target: ``"predicted"``, ``"label"``, a class index or name, or a function of the
                outputs returning one score per sample (not cached).
            settings: the methods' options (IG steps, noise, baseline...).
            batch_size: samples per pass (bounds memory).
            device: where to run the model (CUDA when present by default).
            cache: reuse and store results in the run directory.
        """
        from latentsight.explain.explainer import explain

        return explain(
            self,
            ids,
            method=method,
            layer=layer,
            target=target,
            settings=settings,
            batch_size=batch_size,
            device=device,
            cache=cache,
        )

    def activations(
        self,
        sample_id: str,
        layer: str | Sequence[str] = "all",
        *,
        device: str | torch.device | None = None,
    ) -> ActivationMaps | ActivationSweep:
        """Every channel's map of a layer for one input (``.grid()``, ``.blank_fraction``); with
        ``"all"`` or a list, one per layer and ``.sparsity`` (blank channels per layer)."""
        from latentsight.explain.activations import activations

        self._refuse_module_inputs(layer)
        return activations(self, sample_id, layer, device=device)

    def _refuse_module_inputs(self, layer: str | Sequence[str]) -> None:
        """Refuse a ``module:input`` layer for activations, which show the maps that a module
        outputs, not what enters one (which the model session would call "not a module")."""
        from latentsight.capture.layers import INPUT_SUFFIX

        names = [layer] if isinstance(layer, str) else layer if isinstance(layer, Sequence) else []
        for name in names:
            if isinstance(name, str) and name.endswith(INPUT_SUFFIX):
                recorded = f" (its vectors are run.latent({name!r}))" if name in self.layers else ""
                raise ExplanationError(
                    f"Layer {name!r} is what enters module {name.removesuffix(INPUT_SUFFIX)!r}"
                    f"{recorded}, and activations show the maps a module outputs: name the "
                    "module whose output enters it, from dict(model.named_modules())."
                )

    def visualize_filters(
        self,
        layer: str,
        channels: Sequence[int] | range | None = None,
        *,
        method: str = "fourier",
        settings: FilterSettings | MacoSettings | None = None,
        input_transform: Any = None,
        device: str | torch.device | None = None,
    ) -> FilterImages:
        """Images that maximise each channel of ``layer``, seeded: ``method="fourier"`` (Fourier
        parameterisation, decorrelated colour, random jitter, scale and rotation;
        ``input_transform`` maps its [0, 1] images to the model's input) or ``"maco"`` (phase
        only under the run's own magnitude spectrum, with transparency maps)."""
        from latentsight.explain.filters import visualize_filters

        return visualize_filters(
            self,
            layer,
            channels,
            method=method,
            settings=settings,
            input_transform=input_transform,
            device=device,
        )

    def check_explanations(self, method: str = "gradcam", **options: Any) -> ExplanationChecks:
        """Faithfulness (deletion and insertion against a random order, infidelity,
        max-sensitivity) and the model-randomisation sanity check of a method; see
        :func:`latentsight.explain.checks.check_explanations` for the options."""
        from latentsight.explain.checks import check_explanations

        return check_explanations(self, method, **options)

    @property
    def explanations(self) -> pd.DataFrame:
        """The explanations cached in this run: method, layer, target, settings, samples."""
        from latentsight.store.explanations import ExplanationCache

        return ExplanationCache(self.path).entries()
