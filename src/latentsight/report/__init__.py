"""The self-contained HTML report of a run: one file, no network needed to open it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from latentsight.errors import LatentsightError
from latentsight.report import tables
from latentsight.report.page import render_page
from latentsight.report.renders import RenderIndex
from latentsight.report.sections import SECTIONS, ReportData
from latentsight.store.files import check_writable

if TYPE_CHECKING:
    from latentsight.store.run import Run

__all__ = ["write_report"]


def write_report(run: Run, path: str | Path) -> Path:
    """Write the run's report to ``path`` (an ``.html`` file) and return its path.

    The run must have been analysed (``run.analyze()`` or ``latentsight insights``).
    """
    path = check_writable(path)
    if path.is_dir():
        raise LatentsightError(
            f"{path} is a directory: give the report a file name, e.g. {path / 'report.html'}."
        )
    data = ReportData(
        run_dir=run.path,
        manifest=run.manifest,
        analysis=run.analysis_info,
        points=tables.with_map(run.samples, run.map),
        insights=run.insights,
        renders=RenderIndex(run.path),
        class_names=run.class_names,
    )
    built = [
        (section.key, section.title, section.build(data))
        for section in SECTIONS
        if section.available(data)
    ]
    subtitle = f"{run.manifest['n_samples']:,} samples, {len(data.insights)} insights"
    page = render_page(
        title=f"latentsight report: {run.name}",
        subtitle=subtitle,
        sections=built,
        figures=data.figures,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(path)
    return path
