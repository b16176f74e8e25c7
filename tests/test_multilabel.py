"""Multilabel models (C independent 0/1 labels per sample): per-label predictions, exact-match
correctness, and label sets in the terminal, the report and the dashboard."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TinyCNN
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import latentsight as ls
from latentsight.cli import app
from latentsight.server.app import create_app

LABELS = ["red", "green", "blue"]


def _tagged_images(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Images whose label k is on when channel k is bright: a tagging task a small CNN learns."""
    generator = torch.Generator().manual_seed(seed)
    on = torch.rand(n, 3, generator=generator) > 0.5
    images = 0.15 + 0.7 * on[:, :, None, None].float() + 0.1 * torch.rand(n, 3, 12, 12)
    return [(images[i], on[i].float()) for i in range(n)]


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    data = {"train": _tagged_images(160, seed=1), "val": _tagged_images(64, seed=2)}
    model = TinyCNN(n_classes=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    inputs = torch.stack([x for x, _ in data["train"]])
    targets = torch.stack([y for _, y in data["train"]])
    for _ in range(60):
        loss = ls.losses.binary_cross_entropy(model(inputs), targets).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    project = ls.Project(
        model=model.eval(), data=data, loss=ls.losses.binary_cross_entropy, classes=LABELS
    )
    run = ls.analyze(project, tmp_path_factory.mktemp("tagged") / "run", progress=False)
    return run, model, data


def test_predictions_are_the_labels_whose_sigmoid_is_above_one_half(tagged):
    run, model, data = tagged
    assert run.manifest["task"] == "multilabel" and run.manifest["n_classes"] == 3
    inputs = torch.stack([x for subset in data.values() for x, _ in subset])
    targets = torch.stack([y for subset in data.values() for _, y in subset]).numpy()
    with torch.no_grad():
        probabilities = torch.sigmoid(model(inputs)).numpy()
    samples = run.samples
    np.testing.assert_allclose(np.stack(samples["probabilities"]), probabilities, rtol=1e-5)
    predicted = np.stack(samples["prediction"])
    np.testing.assert_array_equal(predicted, (probabilities > 0.5).astype(int))
    np.testing.assert_array_equal(samples["correct"], (predicted == targets).all(axis=1))
    np.testing.assert_allclose(
        samples["confidence"], np.maximum(probabilities, 1 - probabilities).mean(axis=1), rtol=1e-5
    )
    assert samples["correct"].mean() > 0.9  # the model learned the tags


def test_info_shows_each_labels_share_and_f1(tagged):
    run, _, _ = tagged
    result = CliRunner().invoke(app, ["info", str(run.path)], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "multilabel (3 labels)" in result.output and "exact match" in result.output
    rows = {line.split()[1]: line for line in result.output.splitlines() if "%" in line}
    assert set(rows) >= set(LABELS)
    val = run.samples[run.samples["subset"] == "val"]
    on = np.stack(val["target"])[:, 2] >= 0.5
    assert f"{on.mean():.0%} /" in rows["blue"]


def test_report_and_dashboard_show_label_sets(tagged, tmp_path):
    run, _, _ = tagged
    html = run.report(tmp_path / "report.html").read_text()
    sample = run.samples.iloc[0]
    on = [LABELS[k] for k, value in enumerate(sample["target"]) if value >= 0.5]
    assert f"target {' + '.join(on) or 'none'}" in html

    client = TestClient(create_app(run), base_url="http://127.0.0.1")
    info = client.get("/api/run").json()
    target = next(c for c in info["columns"] if c["name"] == "target")
    assert set(target["categories"]) <= {
        "none",
        "red",
        "green",
        "blue",
        "red + green",
        "red + blue",
        "green + blue",
        "red + green + blue",
    }
    assert "red + green + blue" in target["categories"] and info["class_columns"] == []
    shown = client.get("/api/sample", params={"id": "val/0"}).json()
    assert len(shown["target"]) == 3 and len(shown["prediction"]) == 3


def test_concepts_of_a_multilabel_run_are_global_and_per_class_says_to_go_global(tagged):
    run, _, _ = tagged
    with pytest.raises(
        ls.LatentsightError, match=r"task is 'multilabel', which gives no single class.*per_class"
    ):
        run.discover_concepts("fc:input", per_class=True, save=False)
    found = run.discover_concepts("fc:input", save=False)
    assert len(found.table) and found.table["class"].isna().all() and len(found.banks) == 1


def test_binary_declared_over_several_logits_is_refused_with_multilabel():
    project = ls.Project(
        model=TinyCNN(n_classes=3),
        data={"train": _tagged_images(8, seed=0)},
        loss=ls.losses.binary_cross_entropy,
        task="binary",
    )
    with pytest.raises(ls.ProjectError, match=r"set task='multilabel'"):
        ls.check(project)


def test_label_names_must_number_the_labels():
    project = ls.Project(
        model=TinyCNN(n_classes=3),
        data={"train": _tagged_images(8, seed=0)},
        loss=ls.losses.binary_cross_entropy,
        classes=["red", "green"],
    )
    with pytest.raises(ls.ProjectError, match=r"has 2 names, but the outputs score 3"):
        ls.check(project)


def test_the_dashboard_page_shows_label_sets(tagged):
    from playwright.sync_api import sync_playwright
    from surfaces_helpers import CHROMIUM, CHROMIUM_ARGS

    from latentsight.server import background

    run, _, _ = tagged
    row = int(np.flatnonzero([0 < sum(t) < 3 for t in run.samples["target"]])[0])
    sample = run.samples.iloc[row]
    on = [LABELS[k] for k, value in enumerate(sample["target"]) if value >= 0.5]
    predicted = [LABELS[k] for k, value in enumerate(sample["prediction"]) if value]
    errors: list[str] = []
    with background(create_app(run)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        page.wait_for_function("window.latentsight.ready", timeout=30_000)
        page.evaluate(f"showSample({sample['id']!r})")
        page.wait_for_function(f"window.latentsight.sample?.id === {sample['id']!r}")
        assert page.inner_text("#sample-target") == " + ".join(on)
        assert page.inner_text("#sample-prediction") == (" + ".join(predicted) or "none")
        view = page.inner_text("#sample-view")
        browser.close()
    assert all(f"{label} (target)" in view for label in on)
    assert not any(f"{label} (target)" in view for label in set(LABELS) - set(on))
    assert errors == []
