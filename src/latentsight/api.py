"""The verbs of the Python API: check a project, analyze it into a run, open a run."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentsight.errors import ProjectError
from latentsight.store.run import Run

if TYPE_CHECKING:
    import torch

    from latentsight.capture.plan import CapturePlan
    from latentsight.capture.pooling import PoolingSettings
    from latentsight.capture.runner import CaptureSettings
    from latentsight.insights.base import AnalysisSettings
    from latentsight.project import Project


def check(
    project: Project,
    *,
    device: str | torch.device | None = None,
    n: int = 8,
    pooling: PoolingSettings | None = None,
) -> CapturePlan:
    """Validate the integration on the first ``n`` samples of each subset, in seconds.

    Raises :class:`latentsight.ProjectError` naming the problem and the fix; returns what it found
    (subsets, shapes, layers and their latent sizes, loss components, metadata columns).
    """
    from latentsight.capture.plan import plan_capture, training_modes_kept

    if not isinstance(n, int) or n < 1:
        raise ProjectError(f"n={n!r}: check at least 1 sample per subset (the default is 8).")
    with training_modes_kept(project):
        return plan_capture(project, device=device, pooling=pooling, check_size=n)


def analyze(
    project: Project,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    fail_fast: bool = False,
    renders: bool = True,
    pooling: PoolingSettings | None = None,
    insights: bool = True,
    analysis: AnalysisSettings | None = None,
    progress: bool = True,
) -> Run:
    """Run the model over every sample, write the run directory ``out``, analyse it; return it.

    Args:
        project: the model, data, loss, metadata and layers.
        out: the run directory to create (or to finish, with ``resume=True``).
        resume: finish an interrupted run at ``out``: its capture where it stopped, then its
            analysis if that is missing (a run stopped during its analysis resumes there).
        overwrite: replace an existing run at ``out``.
        batch_size: samples per forward pass (default 64; on resume, the run's own).
        chunk_size: samples per shard, the unit of work kept when a capture is interrupted
            (default 4096; on resume, the run's own).
        device: ``"cpu"``, ``"cuda"``...; CUDA when present by default.
        num_workers: DataLoader worker processes loading samples.
        fail_fast: stop at the first failing sample instead of quarantining it.
        renders: store a thumbnail (or text) of each sample for reports and the dashboard.
        pooling: how activations become vectors (grid size, projection sizes, seed).
        insights: run the analysis stage (map, clusters, insights) after the capture.
        analysis: settings of the analysis stage (thresholds, methods, seed).
        progress: show progress bars.
    """
    from latentsight._progress import progress_bars
    from latentsight.capture.plan import plan_capture, training_modes_kept
    from latentsight.capture.runner import Capture
    from latentsight.store.writer import complete_capture

    if resume and overwrite:
        raise ProjectError(
            "resume=True and overwrite=True contradict each other: resume finishes the run at "
            f"{out}, overwrite replaces it; pass one of them."
        )
    settings = capture_settings(
        Path(out), resume, batch_size, chunk_size, num_workers=num_workers, fail_fast=fail_fast
    )
    if resume and complete_capture(Path(out), settings):  # the analysis is what may be left
        run = _resumable(Run(out), project)
        if insights and not run.analysed:
            run.analyze(settings=analysis, progress=progress)
        return run
    with training_modes_kept(project):
        plan = plan_capture(project, device=device, pooling=pooling, renders=renders)
        if progress and plan.warnings:
            from rich.console import Console

            from latentsight._display import warnings_panel

            Console(stderr=True).print(warnings_panel(plan.warnings, "warnings of the check"))
        with progress_bars(progress) as reporter:
            Capture(plan, settings, reporter).run(Path(out), resume=resume, overwrite=overwrite)
    run = Run(out).attach(project, verify=False)
    if insights:
        run.analyze(settings=analysis, progress=progress)
    return run


def capture_settings(
    out: Path,
    resume: bool,
    batch_size: int | None,
    chunk_size: int | None,
    **options: Any,
) -> CaptureSettings:
    """The capture's settings: the sizes given, else on resume the sizes the run at ``out`` was
    captured with (a resume needs none), else the defaults."""
    from latentsight.capture.runner import CaptureSettings
    from latentsight.errors import RunStoreError
    from latentsight.store.manifest import read_manifest

    recorded: dict[str, Any] = {}
    if resume and (batch_size is None or chunk_size is None):
        with suppress(RunStoreError):  # no run to resume, or a damaged one: the capture says
            recorded = read_manifest(out).get("settings", {})
    sizes = {
        name: given if given is not None else recorded.get(name)
        for name, given in (("batch_size", batch_size), ("chunk_size", chunk_size))
    }
    given = {name: size for name, size in sizes.items() if size is not None}
    return CaptureSettings(**given, **options)


def _resumable(run: Run, project: Project) -> Run:
    """The captured run with its project attached, refused for a model other than its own."""
    from latentsight.capture.fingerprint import model_fingerprint
    from latentsight.errors import RunStoreError

    recorded = run.manifest["provenance"]["model_fingerprint"]
    found = model_fingerprint(project.resolve_model())
    if found != recorded:
        raise RunStoreError(
            f"Cannot resume the run at {run.path}: it was captured with another model (weights "
            f"fingerprint {found[:12]} vs {recorded[:12]} recorded). Resume with the model that "
            "made it, or pass overwrite=True (--overwrite) to start again."
        )
    return run.attach(project, verify=False)


def open_run(path: str | Path, *, project: Project | str | None = None) -> Run:
    """Open a finished run directory for reading; the model is not needed.

    ``project`` (a Project, or ``"module:project"``) attaches the Project the run was captured
    from, so that explanations can run its model; a model whose weights differ from the run's is
    refused.
    """
    run = Run(path)
    if project is not None:
        if isinstance(project, str):
            from latentsight._loading import load_project

            project = load_project(project)
        run.attach(project)
    return run
