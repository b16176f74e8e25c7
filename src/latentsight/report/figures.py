"""The report's interactive plots, as Plotly figure JSON (drawn by the inlined plotly.min.js)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

WEBGL_ABOVE = 5000  # points: SVG below (works everywhere), WebGL above (fast)
PALETTE = [
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
    "height": 420,
}


def _scatter(n: int):
    return go.Scattergl if n > WEBGL_ABOVE else go.Scatter


def map_by_loss(points: pd.DataFrame) -> str:
    """The latent map, each sample coloured by its loss (hover: id, subset, loss)."""
    loss = points["loss"].to_numpy(np.float64) if "loss" in points else np.zeros(len(points))
    high = float(np.nanquantile(loss, 0.98)) if np.isfinite(loss).any() else 1.0
    trace = _scatter(len(points))(
        x=points["map_x"].to_numpy(np.float32),
        y=points["map_y"].to_numpy(np.float32),
        mode="markers",
        marker={
            "color": loss,
            "colorscale": "Viridis",
            "cmin": 0.0,
            "cmax": high,
            "size": 4,
            "colorbar": {"title": {"text": "loss"}},
        },
        text=[f"{i} ({s})" for i, s in zip(points["id"], points["subset"], strict=True)],
        hovertemplate="%{text}<br>loss %{marker.color:.3g}<extra></extra>",
    )
    layout = {**_LAYOUT, "title": {"text": "Latent map coloured by loss"}}
    return pio.to_json(go.Figure(trace, layout), validate=False)


def map_by_cluster(points: pd.DataFrame) -> str:
    """The latent map, each sample coloured by its cluster."""
    clusters = points["cluster"].to_numpy()
    colors = np.array(PALETTE)[clusters % len(PALETTE)]
    trace = _scatter(len(points))(
        x=points["map_x"].to_numpy(np.float32),
        y=points["map_y"].to_numpy(np.float32),
        mode="markers",
        marker={"color": colors.tolist(), "size": 4},
        text=[f"{i}: cluster {c}" for i, c in zip(points["id"], clusters, strict=True)],
        hovertemplate="%{text}<extra></extra>",
    )
    layout = {**_LAYOUT, "title": {"text": "Latent map coloured by cluster"}}
    return pio.to_json(go.Figure(trace, layout), validate=False)


def trend_figure(trend: dict[str, Any]) -> str:
    """Mean value against a metadata column, one line (numbers) or bar group (categories) per
    subset."""
    traces = []
    for i, group in enumerate(trend["groups"]):
        color = PALETTE[i % len(PALETTE)]
        hover = [f"n = {n}" for n in group["n"]]
        if trend["kind"] == "category":
            traces.append(
                go.Bar(
                    x=trend["labels"],
                    y=group["mean"],
                    name=group["subset"],
                    marker={"color": color},
                    text=hover,
                    hovertemplate="%{x}: %{y:.3g} (%{text})<extra>%{fullData.name}</extra>",
                )
            )
        else:
            traces.append(
                go.Scatter(
                    x=group["x"],
                    y=group["mean"],
                    name=group["subset"],
                    mode="lines+markers",
                    line={"color": color, "dash": "dot" if group["subset"] == "all" else "solid"},
                    text=hover,
                    hovertemplate="%{x:.3g}: %{y:.3g} (%{text})<extra>%{fullData.name}</extra>",
                )
            )
    layout = {
        **_LAYOUT,
        "height": 320,
        "title": {"text": f"{trend['value_label']} by {trend['column']}"},
        "xaxis": {"title": {"text": trend["column"]}},
        "yaxis": {"title": {"text": f"mean {trend['value_label']}"}},
        "barmode": "group",
    }
    return pio.to_json(go.Figure(traces, layout), validate=False)
