"""What the run holds: provenance, columns, headline metrics."""

from __future__ import annotations

from fastapi import APIRouter

from latentsight.report.tables import headline_metrics
from latentsight.server.deps import StateDep
from latentsight.server.models import ColumnOut, RunOut

router = APIRouter(prefix="/api", tags=["run"])


@router.get("/run", response_model=RunOut)
def run_info(state: StateDep) -> RunOut:
    """The run's name, size, subsets, analysis, colourable columns, class names and headline
    metrics."""
    metrics = headline_metrics(state.samples, state.subsets).astype(object)
    metrics = metrics.where(metrics.notna(), None)
    return RunOut(
        name=state.manifest["name"],
        path=str(state.path),
        n_samples=state.n,
        subsets=state.subsets,
        task=state.manifest["task"],
        layer=state.analysis["layer"],
        view=state.analysis.get("view", "mean"),
        bounds=state.bounds,
        columns=[
            ColumnOut(
                name=c.name,
                kind=c.kind,
                group=c.group,
                categories=c.categories,
                low=c.low,
                high=c.high,
            )
            for c in state.columns.values()
        ],
        value_columns=state.value_columns,
        metadata_columns=state.metadata_columns,
        classes=[state.class_names[k] for k in sorted(state.class_names)],
        class_columns=state.class_columns,
        metrics=metrics.to_dict("records"),
        insights=len(state.insights),
        has_renders=state.renders.available,
        has_explanations=state.has_explanations,
        concept_tables=list(state.concepts),
        provenance=state.manifest["provenance"],
    )
