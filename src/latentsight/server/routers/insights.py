"""The ranked insights and their populations."""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from latentsight.insights.base import Insight
from latentsight.server.deps import StateDep
from latentsight.server.models import EvidenceOut, InsightDetail, InsightSummary

router = APIRouter(prefix="/api/insights", tags=["insights"])


def _finite(value: Any) -> Any:
    """JSON-safe: non-finite floats (an infinite ratio) become None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _summary(index: int, insight: Insight) -> dict:
    return {
        "index": index,
        "kind": insight.kind,
        "title": insight.title,
        "size": insight.size,
        "score": _finite(insight.score),
        "q_value": _finite(insight.q_value),
        "description": insight.description,
        "action": insight.action,
    }


@router.get("", response_model=list[InsightSummary])
def list_insights(state: StateDep) -> list[InsightSummary]:
    """The insights, most impactful first."""
    return [InsightSummary(**_summary(i, insight)) for i, insight in enumerate(state.insights)]


@router.get("/{index}", response_model=InsightDetail)
def insight_detail(
    index: Annotated[int, Path(description="position in the ranked list, from 0")],
    state: StateDep,
) -> InsightDetail:
    """One insight with its evidence, its population's rows and a gallery of its samples."""
    if not 0 <= index < len(state.insights):
        raise HTTPException(
            404,
            f"No insight {index}: this run has {len(state.insights)} (0 to {len(state.insights) - 1}).",
        )
    insight = state.insights[index]
    rows = state.populations[index]
    return InsightDetail(
        **_summary(index, insight),
        evidence=[EvidenceOut(**_finite(dataclasses.asdict(e))) for e in insight.evidence],
        merged=insight.merged,
        rows=rows.tolist(),
        gallery=state.gallery(rows),
    )
