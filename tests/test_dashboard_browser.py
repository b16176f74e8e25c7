"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a real server."""

from __future__ import annotations

import base64
import io

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

from latentsight.server import background, create_app
from latentsight.store.concepts import discovered_file


@pytest.fixture(scope="module")
def run(dashboard_run, tmp_path_factory):
    return with_extras(dashboard_run, tmp_path_factory.mktemp("browser") / "run")


@pytest.fixture(scope="module")
def page(run):
    errors = []
    with background(create_app(run)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        opened = context.new_page()
        opened.on("pageerror", lambda error: errors.append(str(error)))
        opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        opened.goto(url)
        opened.wait_for_function("window.latentsight.ready", timeout=30_000)
        opened.wait_for_selector("#insight-list li")
        yield opened
        browser.close()
    assert errors == []


def _pixels(page) -> np.ndarray:
    """The map canvas as an RGB array, read from the WebGL drawing buffer."""
    data = page.evaluate("document.getElementById('map').toDataURL('image/png')")
    image = Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1])))
    return np.asarray(image.convert("RGB")).astype(np.int16)


def _inked(pixels: np.ndarray) -> np.ndarray:
    return (pixels < 245).any(axis=2)


def test_the_map_draws_every_point(page, run):
    n = len(run.samples)
    assert page.evaluate("window.latentsight.drawnPoints") == n
    assert page.get_attribute("#map", "data-points") == str(n)
    assert page.inner_text("#point-count") == f"{n:,} points"
    inked = _inked(_pixels(page)).sum()
    assert inked > n  # every point covers a few pixels; an empty canvas has none
    page.screenshot(path=str(artifact("dashboard-map.png")))


def test_colouring_changes_with_the_chosen_column(page):
    page.select_option("#color-by", "loss")
    page.wait_for_function("window.latentsight.colorBy === 'loss'")
    before = _pixels(page)
    page.select_option("#color-by", "subset")
    page.wait_for_function("window.latentsight.colorBy === 'subset'")
    after = _pixels(page)
    assert page.get_attribute("#map", "data-color-by") == "subset"
    legend = page.inner_text("#legend")
    assert "train" in legend and "val" in legend
    changed = (np.abs(before - after).sum(axis=2) > 30) & (_inked(before) | _inked(after))
    assert changed.sum() > 0.3 * _inked(after).sum()
    page.screenshot(path=str(artifact("dashboard-colour-subset.png")))


def test_classes_show_by_name_in_the_legend_and_the_sample_view(page, run):
    page.select_option("#color-by", "target")
    page.wait_for_function("window.latentsight.colorBy === 'target'")
    legend = page.inner_text("#legend").split()
    assert legend == ["target", *CLASS_NAMES]  # in class-index order, no index left
    row = 7
    sample_id = run.samples["id"].iloc[row]
    page.evaluate(f"showSample({sample_id!r})")
    page.wait_for_function(f"window.latentsight.sample?.id === {sample_id!r}")
    target, prediction = run.samples[["target", "prediction"]].iloc[row]
    assert page.inner_text("#sample-target") == CLASS_NAMES[target]
    assert page.inner_text("#sample-prediction") == CLASS_NAMES[prediction]
    assert f"{CLASS_NAMES[target]} (target)" in page.inner_text("#sample-view")  # probabilities
    page.select_option("#color-by", "loss")
    page.wait_for_function("window.latentsight.colorBy === 'loss'")


def test_choosing_an_insight_highlights_its_population(page, run):
    before = _pixels(page)
    page.click("#insight-list li >> nth=0")
    page.wait_for_selector("#insight-gallery img")
    size = run.insights[0].size
    page.wait_for_function(f"window.latentsight.highlighted === {size}")
    assert page.get_attribute("#map", "data-highlighted") == str(size)
    assert page.inner_text("#selection-size") == f"{size:,}"
    assert run.insights[0].title in page.inner_text("#insight-detail")
    after = _pixels(page)
    assert (np.abs(before - after).sum(axis=2) > 30).sum() > 0  # the rest is dimmed
    page.screenshot(path=str(artifact("dashboard-insight.png")))


def test_a_box_selection_shows_its_statistics(page, run):
    page.click("#clear")
    page.click("[data-mode=box]")
    box = page.locator("#map").bounding_box()
    start = (box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.25)
    end = (box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.75)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()
    page.wait_for_selector("#selection-values")
    x0, y0, x1, y1 = page.evaluate("window.latentsight.lastBox")
    xs, ys = run.map["x"].to_numpy(), run.map["y"].to_numpy()
    inside = (xs >= min(x0, x1)) & (xs <= max(x0, x1)) & (ys >= min(y0, y1)) & (ys <= max(y0, y1))
    assert 0 < inside.sum() < len(xs)
    selected = page.evaluate("window.latentsight.selection")
    assert sorted(selected) == np.flatnonzero(inside).tolist()
    assert page.inner_text("#selection-size") == f"{inside.sum():,}"
    shown = float(page.inner_text("#selection-values tr:nth-child(2) td.inside"))
    assert shown == pytest.approx(run.samples["loss"][inside].mean(), rel=1e-3)
    assert page.locator("#enriched li").count() >= 1
    page.screenshot(path=str(artifact("dashboard-box-selection.png")))


def test_hovering_a_point_shows_it(page, run):
    row = 3
    px, py = page.evaluate(
        f"window.latentsight.toScreen({run.map['x'].iloc[row]}, {run.map['y'].iloc[row]})"
    )
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + px, box["y"] + py)
    page.wait_for_selector("#tooltip:not([hidden])")
    hovered = page.evaluate("window.latentsight.hovered")
    hx, hy = run.map["x"].iloc[hovered], run.map["y"].iloc[hovered]
    assert np.hypot(hx - run.map["x"].iloc[row], hy - run.map["y"].iloc[row]) < 0.05 * np.ptp(
        run.map["x"]
    )


def test_the_sample_view_shows_image_heatmap_and_neighbours(page, run):
    page.click("#insight-list li >> nth=0")
    page.wait_for_selector("#insight-gallery img")
    first = page.get_attribute("#insight-gallery img >> nth=0", "data-id")
    page.click("#insight-gallery img >> nth=0")
    page.wait_for_function(
        f"window.latentsight.sample && window.latentsight.sample.id === {first!r}"
    )
    for selector in ("#sample-image", "#sample-heatmap"):
        page.wait_for_function(
            f"document.querySelector('{selector}').complete && "
            f"document.querySelector('{selector}').naturalWidth > 0"
        )
    assert page.inner_text("#sample-id") == first
    record = run.samples.set_index("id").loc[first]
    view = page.inner_text("#sample-view")
    assert str(record["background"]) in view and "Nearest in latent space" in view
    assert page.locator("#neighbours img").count() == 8
    assert page.input_value("#heatmap-choice") == "0"
    assert page.inner_text("#heatmap-choice") == f"gradcam @ {GRADCAM_LAYER} (predicted)"
    page.locator("#sample-panel").screenshot(path=str(artifact("dashboard-sample.png")))


def test_the_sample_view_computes_grad_cam_at_a_chosen_layer(page, run):
    sample_id = run.samples["id"].iloc[11]
    page.evaluate(f"showSample({sample_id!r})")
    page.wait_for_function(f"window.latentsight.sample?.id === {sample_id!r}")
    page.wait_for_selector("#explain-button")
    before = page.get_attribute("#sample-heatmap", "src")
    page.select_option("#explain-method", "gradcam")
    page.select_option("#explain-layer", "features.0.0")
    page.select_option("#explain-target", "label")
    page.click("#explain-button")
    page.wait_for_function("window.latentsight.explained?.layer === 'features.0.0'")
    page.wait_for_function(
        "document.querySelector('#sample-heatmap').complete && "
        "document.querySelector('#sample-heatmap').naturalWidth > 0"
    )
    after = page.get_attribute("#sample-heatmap", "src")
    assert after != before and "layer=features.0.0" in after and "target=label" in after
    assert page.locator("#heatmap-choice option").count() == 2
    assert "computed and kept in the run" in page.inner_text("#explain-note")
    stored = run.explain(sample_id, method="gradcam", layer="features.0.0", target="label")
    assert stored.classes[0] == run.samples["target"].iloc[11]  # read from the run's cache
    page.select_option("#explain-method", "saliency")
    assert page.is_disabled("#explain-layer")  # an input method takes no layer
    page.locator("#sample-panel").screenshot(path=str(artifact("dashboard-explain.png")))


def test_dashboards_and_concepts_tabs(page, run):
    page.click("[data-tab=dash-tab]")
    page.wait_for_function("window.latentsight.dashboards > 0", timeout=30_000)
    metadata = run.manifest["metadata_columns"]
    assert page.locator("#trend-charts .js-plotly-plot").count() == len(metadata)
    page.screenshot(path=str(artifact("dashboard-trends.png")))
    assert page.is_visible("#concepts-button")
    page.click("#concepts-button")
    page.wait_for_function(
        "document.querySelectorAll('table.concepts').length >= 3", timeout=30_000
    )  # the neuron table, the discovered concepts and the audit arrive one after the other
    shown = page.inner_text("#concept-tables")
    assert f"Neuron concepts at {CONCEPT_LAYER}" in shown and "Spurious-feature audit" in shown
    assert "background == blue" in shown  # the planted shortcut among circle's drivers
    assert page.locator("table.concepts").count() == 3
    layer = run.analysis_info["layer"]
    assert f"Discovered concepts at {layer}" in shown
    stored = pd.read_parquet(discovered_file(run.path, layer))
    first_gallery = page.locator(".gallery.mini").first
    first_gallery.locator("img").first.wait_for()
    shown_ids = [img.get_attribute("alt") for img in first_gallery.locator("img").all()]
    assert shown_ids == list(stored["top_samples"].iloc[0])[:6]  # the concept's top samples
    page.click("[data-tab=map-tab]")
