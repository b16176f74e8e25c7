"""The report's sections, each a function of the run's data returning an HTML fragment.

A section whose data the run lacks (explanations, concepts) is left out. To add one, write a
function ``(ReportData) -> str`` and list it in ``SECTIONS`` with the test of its availability.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latentsight._numbers import probability_text
from latentsight.classes import class_label, class_name, label_set
from latentsight.insights.base import Insight
from latentsight.report import extras, figures, tables
from latentsight.report.renders import RenderIndex

GALLERY = 6
TOP_INSIGHTS = 25
CONCEPT_ROWS = 50
CONCEPT_GALLERIES = 12  # discovered concepts shown with their top samples
LABEL_VALUES = 6  # entries of a vector target or prediction shown in a caption
LABEL_CHARS = 60  # characters of a structured (JSON) target shown in a caption


@dataclass
class ReportData:
    """Everything the sections read, loaded once from the run."""

    run_dir: Path
    manifest: dict[str, Any]
    analysis: dict[str, Any]
    points: pd.DataFrame  # samples with map_x, map_y, cluster, noise
    insights: list[Insight]
    renders: RenderIndex
    class_names: dict[int, str] = field(default_factory=dict)  # the Project's, by class index
    figures: list[tuple[str, str]] = field(default_factory=list)  # (element id, figure JSON)

    def figure(self, name: str, figure_json: str) -> str:
        """Register a Plotly figure and return the element that will hold it."""
        element = f"figure-{len(self.figures)}-{name}"
        self.figures.append((element, figure_json))
        return f'<div class="figure" id="{escape(element)}"></div>'


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return escape(str(value))


def _label_text(value: Any, names: dict[int, str]) -> str | None:
    """A target or prediction as a caption shows it: its class name, a number, a short vector,
    or short text (a multi-output or structured target); None when the sample has none."""
    named = class_name(value, names)
    if named is not None:
        return escape(named)
    if isinstance(value, (list, tuple, np.ndarray)):
        values = list(np.asarray(value).reshape(-1))
        shown = ", ".join(_fmt(v) for v in values[:LABEL_VALUES])
        return f"[{shown}{', ...' if len(values) > LABEL_VALUES else ''}]"
    if pd.isna(value):
        return None
    if isinstance(value, (float, np.floating)):
        return _fmt(value)
    text = str(value)
    return escape(text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 3] + "...")


def _table(frame: pd.DataFrame, css: str = "") -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _facts(pairs: list[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in pairs)
    return f'<table class="facts">{rows}</table>'


def _data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _thumbnail(data: ReportData, row: int, caption: str, heatmaps: bool = False) -> str:
    sample = data.points.iloc[row]
    sample_id = str(sample["id"])
    render = data.renders.get(sample_id)
    if render is None:
        picture = '<div class="no-render">no render</div>'
    elif render.image is None:
        picture = f'<div class="text-render">{escape((render.text or "")[:300])}</div>'
    else:
        picture = (
            f'<img alt="{escape(sample_id)}" src="{_data_uri(render.image, render.media_type)}">'
        )
    overlays = ""
    if heatmaps:
        image = render.image if render is not None else None
        for heatmap in extras.heatmaps(data.run_dir, sample_id)[:2]:
            overlays += (
                f'<img class="heatmap" title="{escape(heatmap.label(data.class_names))}"'
                f' alt="heatmap" src="{_data_uri(heatmap.png(image), "image/png")}">'
            )
    facts = [f"<b>{escape(sample_id)}</b>", escape(caption)]
    names = data.class_names

    def shown(column: str) -> str | None:
        if column not in sample:
            return None
        if data.manifest["task"] == "multilabel" and isinstance(
            sample[column], (list, tuple, np.ndarray)
        ):
            return escape(label_set(sample[column], names))
        return _label_text(sample[column], names)

    target, predicted = shown("target"), shown("prediction")
    if target is not None:
        facts.append(f"target {target}" + (f" / predicted {predicted}" if predicted else ""))
    elif predicted is not None:
        facts.append(f"predicted {predicted}")
    return (
        f'<figure class="sample">{picture}{overlays}<figcaption>{"<br>".join(facts)}'
        "</figcaption></figure>"
    )


def provenance(data: ReportData) -> str:
    """Model, data, code version, settings and dates: where every figure of the report comes from."""
    manifest, info = data.manifest, data.analysis
    origin = manifest["provenance"]
    subsets = ", ".join(f"{s['name']} ({s['size']})" for s in manifest["subsets"])
    layers = ", ".join(entry["name"] for entry in manifest["layers"])
    pairs = [
        ("project", manifest["name"]),
        ("run directory", str(data.run_dir)),
        ("captured", manifest["created_at"]),
        ("analysed", info.get("created_at")),
        ("report written", datetime.now(timezone.utc).isoformat(timespec="seconds")),
        ("model", f"{origin['model_class']} ({origin['model_parameters']:,} parameters)"),
        ("model fingerprint", origin["model_fingerprint"]),
        ("data fingerprint", origin["data_fingerprint"]),
        ("subsets (samples)", subsets),
        ("quarantined samples", manifest.get("n_quarantined", 0)),
        ("task", manifest["task"]),
        ("classes", ", ".join(f"{k} {name}" for k, name in data.class_names.items()) or "-"),
        ("layers recorded", layers),
        ("layer analysed", f"{info.get('layer')} ({info.get('view')} view)"),
        (
            "code version",
            f"latentsight {origin['latentsight_version']}, torch {origin['torch_version']}, "
            f"python {origin['python_version']}",
        ),
        ("command", origin.get("command", "-")),
        ("platform", origin.get("platform", "-")),
    ]
    settings = {"capture": manifest.get("settings", {}), "analysis": info.get("settings", {})}
    return (
        _facts(pairs)
        + '<details><summary>settings</summary><pre class="settings">'
        + escape(json.dumps(settings, indent=2, default=str))
        + "</pre></details>"
    )


def metrics(data: ReportData) -> str:
    """Headline figures per subset: samples, mean loss and each of its components, metrics."""
    subsets = [s["name"] for s in data.manifest["subsets"]]
    frame = tables.headline_metrics(data.points, subsets)
    return _table(frame, "metrics")


def latent_map(data: ReportData) -> str:
    """The map of the analysed layer, coloured by loss and by cluster."""
    by_loss = data.figure("map-loss", figures.map_by_loss(data.points))
    by_cluster = data.figure("map-cluster", figures.map_by_cluster(data.points))
    clusters = data.points["cluster"].nunique()
    return (
        f"<p>{len(data.points):,} samples, {clusters} clusters; each point is a sample placed by "
        f"its latent vector at layer <code>{escape(str(data.analysis.get('layer')))}</code>.</p>"
        f'<div class="pair">{by_loss}{by_cluster}</div>'
    )


def _evidence(insight: Insight) -> str:
    rows = []
    for e in insight.evidence:
        counts = ", ".join(f"{k} {v}" for k, v in e.counts.items())
        rows.append(
            {
                "detector": e.detector,
                "effect": e.effect,
                "effect measures": e.effect_name,
                "p": probability_text(e.p_value),
                "q (BH)": probability_text(e.q_value),
                "n": e.n,
                "counts": counts,
            }
        )
    return _table(pd.DataFrame(rows), "evidence")


def insights(data: ReportData) -> str:
    """The ranked insights, each with its evidence and a gallery of its hardest samples."""
    if not data.insights:
        return "<p>No significant insight: nothing in this run passed the statistical gates.</p>"
    rows_of = pd.Series(np.arange(len(data.points)), index=data.points["id"].to_numpy())
    cards = []
    for rank, insight in enumerate(data.insights[:TOP_INSIGHTS], start=1):
        population = rows_of.reindex(insight.population).dropna().astype(int).to_numpy()
        gallery = "".join(
            _thumbnail(data, row, f"loss {_fmt(data.points['loss'].iloc[row])}")
            if "loss" in data.points
            else _thumbnail(data, row, "")
            for row in tables.hardest(data.points, population, GALLERY)
        )
        merged = (
            f"<p class='merged'>Also found as: {escape('; '.join(insight.merged))}</p>"
            if insight.merged
            else ""
        )
        cards.append(
            f'<article class="insight" id="insight-{rank}">'
            f"<h3>{rank}. {escape(insight.title)}</h3>"
            f'<p class="meta"><span class="kind">{escape(insight.kind)}</span> '
            f"{insight.size:,} samples, score {_fmt(insight.score)}, q = {escape(probability_text(insight.q_value))}</p>"
            f"<p>{escape(insight.description)}</p>"
            f'<p class="action"><b>Action:</b> {escape(insight.action)}</p>{merged}'
            f"{_evidence(insight)}"
            f'<div class="gallery">{gallery}</div></article>'
        )
    more = len(data.insights) - TOP_INSIGHTS
    tail = f"<p>... and {more} more (run.insights lists them all).</p>" if more > 0 else ""
    return "".join(cards) + tail


def samples(data: ReportData) -> str:
    """Representative samples: the hardest of each subset and the most typical of each cluster."""
    points = data.points
    heat = extras.has_explanations(data.run_dir)
    parts = []
    for subset in [s["name"] for s in data.manifest["subsets"]]:
        members = np.flatnonzero((points["subset"] == subset).to_numpy())
        scored = "loss" in points and points["loss"].iloc[members].notna().any()
        if not scored and "confidence" in points:  # unlabeled: no loss, the least sure first
            heading, score = "Least confident in", "confidence"
            rows = tables.least_confident(points, members, GALLERY)
        else:
            heading, score = "Hardest in", "loss" if scored else None
            rows = tables.hardest(points, members, GALLERY)
        if not rows:
            continue
        gallery = "".join(
            _thumbnail(
                data, row, "" if score is None else f"{score} {_fmt(points[score].iloc[row])}", heat
            )
            for row in rows
        )
        parts.append(f'<h3>{heading} {escape(subset)}</h3><div class="gallery">{gallery}</div>')
    medoids = tables.cluster_medoids(
        points[["map_x", "map_y"]].to_numpy(np.float64), points["cluster"].to_numpy()
    )
    gallery = "".join(
        _thumbnail(data, row, f"cluster {points['cluster'].iloc[row]}", heat) for row in medoids
    )
    parts.append(f'<h3>Typical of each large cluster</h3><div class="gallery">{gallery}</div>')
    return "".join(parts)


def trends(data: ReportData) -> str:
    """Mean loss (and accuracy where it exists) against every metadata column, per subset."""
    subsets = [s["name"] for s in data.manifest["subsets"]]
    values = [v for v in ("loss", "correct") if v in data.points]
    charts = []
    for column in data.manifest["metadata_columns"]:
        for value in values:
            trend = tables.trend(data.points, column, value, subsets=subsets)
            charts.append(data.figure(f"trend-{value}", figures.trend_figure(trend)))
    if not charts:
        return "<p>The run has no metadata columns or no loss to chart.</p>"
    return f'<div class="grid">{"".join(charts)}</div>'


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def _concept_class(value: Any, names: dict[int, str]) -> str:
    """The class a discovered concept belongs to: its name, ``class k``, or ``class -`` for a
    dictionary of every class."""
    if value is None or pd.isna(value):
        return "class -"
    return escape(class_label(value, names))


def _concept_galleries(data: ReportData, frame: pd.DataFrame) -> str:
    """Per discovered concept, the samples that express it most (its most important first)."""
    rows_of = pd.Series(np.arange(len(data.points)), index=data.points["id"].to_numpy())
    order = frame.sort_values(
        ["importance", "prevalence"], ascending=False, kind="stable", na_position="last"
    )
    cards = []
    for _, concept in order.head(CONCEPT_GALLERIES).iterrows():
        rows = rows_of.reindex(list(concept["top_samples"])[:GALLERY]).dropna().astype(int)
        gallery = "".join(_thumbnail(data, int(row), "") for row in rows)
        cards.append(
            f'<div class="concept"><h4>concept {int(concept["concept"])} '
            f"({_concept_class(concept['class'], data.class_names)}): "
            f"{escape(str(concept['name']))}</h4>"
            f'<div class="gallery">{gallery}</div></div>'
        )
    return "".join(cards)


def concepts(data: ReportData) -> str:
    """Each concept table the run stores (neuron labels per layer, discovered concepts with the
    samples that express them, the spurious-feature audit); neurons with a significant label
    first, by AUC."""
    parts = []
    for table in extras.concept_tables(data.run_dir).values():
        frame = extras.concept_frame(table)
        galleries = ""
        if "top_samples" in frame.columns:
            galleries = _concept_galleries(data, frame)
            frame = frame.drop(columns="top_samples")
        if {"significant", "auc"} <= set(frame.columns):
            frame = frame.sort_values(["significant", "auc"], ascending=False, kind="stable")
            significant = int(frame["significant"].sum())
            summary = f"<p>{significant} of {len(frame)} neurons have a significant concept.</p>"
        else:
            summary = ""
        shown = frame.head(CONCEPT_ROWS).map(_cell)
        note = (
            f" (first {CONCEPT_ROWS} of {len(frame):,} rows)" if len(frame) > CONCEPT_ROWS else ""
        )
        parts.append(
            f"<h3>{escape(table.title)}{note}</h3>{summary}{_table(shown, 'concepts')}{galleries}"
        )
    return "".join(parts)


@dataclass(frozen=True)
class Section:
    """One part of the report: its anchor, heading, builder and when it applies."""

    key: str
    title: str
    build: Callable[[ReportData], str]
    available: Callable[[ReportData], bool] = lambda data: True


SECTIONS = [
    Section("provenance", "Provenance", provenance),
    Section("metrics", "Headline metrics", metrics),
    Section("map", "Latent map", latent_map),
    Section("insights", "Insights", insights),
    Section("samples", "Representative samples", samples),
    Section("trends", "Loss against metadata", trends),
    Section(
        "concepts", "Concepts", concepts, lambda data: bool(extras.concept_tables(data.run_dir))
    ),
]
