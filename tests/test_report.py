"""The HTML report: one self-contained file that opens without network and shows every section."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from playwright.sync_api import sync_playwright
from surfaces_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CLASS_NAMES,
    CONCEPT_LAYER,
    GRADCAM_LAYER,
    artifact,
    with_extras,
)
from typer.testing import CliRunner

from latentsight.cli import app
from latentsight.errors import LatentsightError, NotRecordedError
from latentsight.insights.engine import concept_settings
from latentsight.overlay import overlay
from latentsight.report import extras, tables
from latentsight.store.concepts import discovered_file

SECTIONS = ["provenance", "metrics", "map", "insights", "samples", "trends"]


def _open_offline(path, screenshot):
    """Open a file in headless Chromium with every non-file request blocked; return findings."""
    blocked, errors = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})

        def route(request_route):
            if request_route.request.url.startswith(("file:", "data:")):
                request_route.continue_()
            else:
                blocked.append(request_route.request.url)
                request_route.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(path.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length > 0")
        page.wait_for_timeout(300)
        found = {
            "visible": {key: page.locator(f"section#{key}").is_visible() for key in SECTIONS},
            "concepts": page.locator("section#concepts").count(),
            "map_points": page.eval_on_selector_all(
                "section#map .js-plotly-plot",
                "els => els.map(e => e.querySelectorAll('path.point').length)",
            ),
            "insight_cards": page.locator("article.insight").count(),
            "images_loaded": page.eval_on_selector_all(
                "section#samples figure.sample img:not(.heatmap)",
                "els => els.map(e => e.naturalWidth)",
            ),
            "heatmaps": page.eval_on_selector_all(
                "section#samples img.heatmap", "els => els.map(e => e.naturalWidth)"
            ),
            "trend_plots": page.locator("section#trends .js-plotly-plot").count(),
            "plotly": page.evaluate("typeof window.Plotly"),
        }
        page.screenshot(path=str(artifact(screenshot)), full_page=True)
        browser.close()
    return found, blocked, errors


def test_report_opens_offline_and_shows_every_section(dashboard_run, tmp_path):
    import shutil

    import latentsight as ls

    # The analysis stored the concept audit (the model was attached); without it, no such view.
    shutil.copytree(
        dashboard_run.path,
        tmp_path / "plain",
        ignore=shutil.ignore_patterns("concepts", "explanations"),
    )
    dashboard_run = ls.open_run(tmp_path / "plain")
    path = dashboard_run.report(tmp_path / "report.html")
    html = path.read_text()
    markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    assert not re.search(r"""(src|href)=["']https?:""", markup), "the report must not link out"
    from plotly.offline import get_plotlyjs

    assert len(html) < len(get_plotlyjs())  # Plotly travels gzipped: the page is lighter than it
    found, blocked, errors = _open_offline(path, "report.png")
    assert blocked == [] and errors == []
    assert found["plotly"] == "object"
    assert all(found["visible"].values()), found["visible"]
    n = len(dashboard_run.samples)
    assert found["map_points"] == [n, n]  # coloured by loss, and by cluster
    assert found["insight_cards"] == min(len(dashboard_run.insights), 25)
    assert found["images_loaded"] and all(width > 0 for width in found["images_loaded"])
    metadata = dashboard_run.manifest["metadata_columns"]
    assert found["trend_plots"] == 2 * len(metadata)  # loss and accuracy per column
    assert found["concepts"] == 0 and found["heatmaps"] == []  # absent data, absent views
    provenance = dashboard_run.manifest["provenance"]
    for fact in (
        provenance["model_fingerprint"],
        provenance["data_fingerprint"],
        "latentsight 0.1.0",
    ):
        assert fact in html


def test_report_shows_concepts_and_heatmaps_when_the_run_has_them(dashboard_run, tmp_path):
    run = with_extras(dashboard_run, tmp_path / "run")
    path = run.report(tmp_path / "report.html")
    found, blocked, errors = _open_offline(path, "report-with-extras.png")
    assert blocked == [] and errors == []
    assert found["concepts"] == 1
    assert found["heatmaps"] and all(width > 0 for width in found["heatmaps"])
    html = path.read_text()
    assert f"Neuron concepts at {CONCEPT_LAYER}" in html
    assert f"Spurious-feature audit at {CONCEPT_LAYER}" in html
    assert "background == blue" in html  # the demo's planted shortcut, among circle's drivers
    labels = run.concepts(CONCEPT_LAYER, save=False).table  # computed again, not read back
    significant = int(labels["significant"].sum())
    assert f"{significant} of {len(labels)} neurons have a significant concept" in html
    _assert_heatmaps_are_the_cached_maps(run, html)
    _assert_discovered_concepts_show_their_top_samples(run, html)


def _assert_discovered_concepts_show_their_top_samples(run, html):
    """The analysis kept the map layer's discovered concepts; the report lists them, each of the
    most important shown with the samples that express it most (as the bank ranks them)."""
    layer = run.analysis_info["layer"]
    assert f"Discovered concepts at {layer}" in html
    settings = concept_settings(run.latent(layer).shape[1], seed=0)
    bank = run.discover_concepts(layer, settings=settings, save=False)
    concept = int(bank.table.sort_values("importance", ascending=False)["concept"].iloc[0])
    block = re.search(
        rf"<h4>concept {concept} \([^<]*</h4><div class=\"gallery\">(.*?)</div></div>", html
    )
    assert block is not None
    shown = re.findall(r'<figure class="sample"><img alt="([^"]+)"', block.group(1))
    assert shown == bank.top_samples(concept, n=6).ids


def _assert_heatmaps_are_the_cached_maps(run, html):
    """Each heatmap of the report is the run's cached Grad-CAM map of its own sample, drawn over
    its render: a recomputation (cache off) drawn the same way gives the same pixels."""
    pattern = r'<img alt="([^"]+)" src="data:image/png;base64,[^"]+"><img class="heatmap" '
    pattern += r'title="([^"]+)" alt="heatmap" src="data:image/png;base64,([^"]+)">'
    shown = re.findall(pattern, html)
    assert shown
    for sample_id, title, encoded in shown[:3]:
        assert title == f"gradcam @ {GRADCAM_LAYER} (predicted)"
        fresh = run.explain(sample_id, method="gradcam", layer=GRADCAM_LAYER, cache=False)
        expected = overlay(np.asarray(run.render(sample_id).convert("RGB")), fresh.maps[0])
        drawn = Image.open(io.BytesIO(base64.b64decode(encoded)))
        assert drawn.size == expected.size
        difference = np.abs(np.asarray(drawn, np.int16) - np.asarray(expected, np.int16))
        assert difference.max() <= 2  # float round-off of a recomputed map


CAPTION = r"<b>([^<]+)</b><br>[^<]*<br>target ([^<]*) / predicted ([^<]*)</figcaption>"
CONCEPT_CLASS = r"<h4>concept \d+ \(([^)]*)\)"


def _captions(run, tmp_path) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """The report's sample captions (id -> target, prediction) and discovered-concept classes."""
    html = run.report(tmp_path / f"{run.path.parent.name}.html").read_text()
    captions = {i: (t, p) for i, t, p in re.findall(CAPTION, html)}
    return captions, re.findall(CONCEPT_CLASS, html)


def test_the_report_names_classes_where_the_run_has_names(dashboard_run, tmp_path):
    captions, concept_classes = _captions(dashboard_run, tmp_path)
    assert len(captions) >= 12  # the hardest of each subset, the typical of each cluster
    records = dashboard_run.samples.set_index("id")
    for sample_id, shown in captions.items():
        target, prediction = records.loc[sample_id, ["target", "prediction"]]
        assert shown == (CLASS_NAMES[target], CLASS_NAMES[prediction])
    stored = extras.concept_frame(
        extras.concept_tables(dashboard_run.path)[
            discovered_file(dashboard_run.path, dashboard_run.analysis_info["layer"]).stem
        ]
    )
    assert set(concept_classes) == {CLASS_NAMES[k] for k in stored["class"]}
    provenance = (tmp_path / f"{dashboard_run.path.parent.name}.html").read_text()
    listed = ", ".join(f"{k} {name}" for k, name in enumerate(CLASS_NAMES))
    assert f"<th>classes</th><td>{listed}</td>" in provenance


def test_the_report_of_a_run_without_names_shows_class_indices(unnamed_dashboard_run, tmp_path):
    captions, concept_classes = _captions(unnamed_dashboard_run, tmp_path)
    assert len(captions) >= 12
    records = unnamed_dashboard_run.samples.set_index("id")
    for sample_id, shown in captions.items():
        target, prediction = records.loc[sample_id, ["target", "prediction"]]
        assert shown == (str(target), str(prediction))
    assert concept_classes and all(re.fullmatch(r"class \d+", c) for c in concept_classes)


def test_cli_writes_the_report(dashboard_run, tmp_path):
    out = tmp_path / "nested" / "r.html"
    result = CliRunner().invoke(app, ["report", str(dashboard_run.path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and '<section id="insights">' in out.read_text()


def test_report_refuses_a_directory_and_an_unanalysed_run(
    dashboard_run, shapes_like_unanalysed, tmp_path
):
    with pytest.raises(LatentsightError, match=r"is a directory"):
        dashboard_run.report(tmp_path)
    with pytest.raises(NotRecordedError, match=r"not been analysed"):
        shapes_like_unanalysed.report(tmp_path / "r.html")


@pytest.fixture
def shapes_like_unanalysed(dashboard_run, tmp_path):
    import shutil

    import latentsight as ls

    shutil.copytree(
        dashboard_run.path, tmp_path / "bare", ignore=shutil.ignore_patterns("analysis")
    )
    return ls.open_run(tmp_path / "bare")


def test_headline_metrics_match_pandas(dashboard_run):
    samples = dashboard_run.samples
    table = tables.headline_metrics(samples, ["train", "val"]).set_index("subset")
    expected = samples.groupby("subset").agg(samples=("id", "size"), loss=("loss", "mean"))
    accuracy = samples.groupby("subset")["correct"].mean()
    for subset in ("train", "val"):
        assert table.loc[subset, "samples"] == expected.loc[subset, "samples"]
        assert table.loc[subset, "loss"] == pytest.approx(expected.loc[subset, "loss"])
        assert table.loc[subset, "accuracy"] == pytest.approx(accuracy[subset])
    assert table.loc["all", "loss"] == pytest.approx(samples["loss"].mean())


def test_trend_matches_a_direct_computation():
    samples = pd.DataFrame(
        {
            "subset": ["a"] * 4 + ["b"] * 4,
            "colour": ["red", "red", "blue", "blue", "red", "blue", "blue", "blue"],
            "size": [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0],
            "loss": [1.0, 3.0, 5.0, 7.0, 2.0, 4.0, 6.0, 8.0],
        }
    )
    colour = tables.trend(samples, "colour", "loss", subsets=["a", "b"])
    assert colour["labels"] == ["blue", "red"]  # most common first
    by_subset = {g["subset"]: g for g in colour["groups"]}
    assert by_subset["a"]["mean"] == [6.0, 2.0] and by_subset["a"]["n"] == [2, 2]
    assert by_subset["b"]["mean"] == [6.0, 2.0] and by_subset["b"]["n"] == [3, 1]
    size = tables.trend(samples, "size", "loss", bins=2, subsets=["a", "b"])
    a = next(g for g in size["groups"] if g["subset"] == "a")
    assert a["mean"] == [2.0, 6.0] and a["x"] == [1.5, 3.5]
    assert np.isclose(next(g for g in size["groups"] if g["subset"] == "all")["mean"][1], 6.5)
