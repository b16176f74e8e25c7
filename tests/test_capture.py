"""A capture records what the model really computed, per sample, aligned by id."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TinyCNN, image_items
from torch import nn

import latentsight as ls
from latentsight.report.renders import RenderIndex


def analyze(project, path, **options):
    return ls.analyze(project, path, progress=False, insights=False, **options)


def test_latents_outputs_and_loss_match_the_model(tmp_path, data, metadata):
    model = TinyCNN()
    project = ls.Project(model=model, data=data, loss=ls.losses.cross_entropy, metadata=metadata)
    run = analyze(project, tmp_path / "run", batch_size=16, chunk_size=16)

    inputs = torch.stack([x for subset in data.values() for x, _ in subset])
    targets = torch.tensor([y for subset in data.values() for _, y in subset])
    with torch.no_grad():
        features = model.features(inputs)
        logits = model(inputs)
    samples = run.samples
    assert list(samples["id"]) == [f"train/{i}" for i in range(40)] + [
        f"val/{i}" for i in range(24)
    ]
    assert list(samples["row"]) == list(range(64))
    np.testing.assert_allclose(
        run.latent("features"), features.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        run.latent("features", "grid"),
        nn.functional.adaptive_avg_pool2d(features, 4).flatten(1).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        run.latent("fc:input"), model.pool(features).flatten(1).numpy(), rtol=1e-5, atol=1e-6
    )
    assert isinstance(run.latent("features"), np.memmap)
    assert run.latent("features").dtype == np.float32
    expected_loss = nn.functional.cross_entropy(logits, targets, reduction="none")
    np.testing.assert_allclose(samples["loss"], expected_loss.numpy(), rtol=1e-5)
    np.testing.assert_array_equal(samples["prediction"], logits.argmax(1).numpy())
    np.testing.assert_allclose(
        samples["confidence"], logits.softmax(1).max(1).values.numpy(), rtol=1e-5
    )
    np.testing.assert_allclose(
        np.stack(samples["probabilities"]), logits.softmax(1).numpy(), rtol=1e-5
    )
    np.testing.assert_array_equal(samples["correct"], (logits.argmax(1) == targets).numpy())
    np.testing.assert_array_equal(samples["target"], targets.numpy())


def test_metadata_frame_is_aligned_by_id_not_by_position(tmp_path, data, metadata):
    shuffled = metadata.sample(frac=1.0, random_state=0)
    project = ls.Project(
        model=TinyCNN(), data=data, loss=ls.losses.cross_entropy, metadata=shuffled
    )
    samples = analyze(project, tmp_path / "run").samples
    expected = metadata.set_index("id").loc[samples["id"]]
    np.testing.assert_allclose(samples["brightness"], expected["brightness"])
    assert list(samples["source"]) == list(expected["source"])


def test_metadata_from_a_function_and_from_items(tmp_path):
    items = image_items(10, 1)
    data = {
        "train": [
            {"input": x, "target": y, "metadata": {"weather": "rain" if i % 2 else "sun"}}
            for i, (x, y) in enumerate(items)
        ]
    }
    project = ls.Project(
        model=TinyCNN(),
        data=data,
        loss=ls.losses.cross_entropy,
        metadata=lambda subset, index: {"camera": index % 3},
    )
    samples = analyze(project, tmp_path / "run").samples
    assert list(samples["weather"]) == ["sun", "rain"] * 5
    assert list(samples["camera"]) == [i % 3 for i in range(10)]


def test_ids_are_stable_across_runs_of_different_models(tmp_path, data):
    first = analyze(
        ls.Project(model=TinyCNN(seed=0), data=data, loss=ls.losses.cross_entropy), tmp_path / "a"
    )
    second = analyze(
        ls.Project(model=TinyCNN(seed=1), data=data, loss=ls.losses.cross_entropy),
        tmp_path / "b",
        batch_size=7,
    )
    assert list(first.samples["id"]) == list(second.samples["id"])
    assert not np.allclose(first.samples["loss"], second.samples["loss"])
    assert (
        first.manifest["provenance"]["data_fingerprint"]
        == second.manifest["provenance"]["data_fingerprint"]
    )
    assert (
        first.manifest["provenance"]["model_fingerprint"]
        != second.manifest["provenance"]["model_fingerprint"]
    )


def test_user_ids_from_items_are_kept(tmp_path):
    items = image_items(6, 1)
    data = {
        "train": [
            {"input": x, "target": y, "id": f"img-{100 + i}"} for i, (x, y) in enumerate(items)
        ]
    }
    samples = analyze(
        ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy), tmp_path / "r"
    ).samples
    assert list(samples["id"]) == [f"img-{100 + i}" for i in range(6)]


def test_loss_components_and_metrics_are_stored(tmp_path, data):
    def detection_like_loss(outputs, targets):
        return {
            "classification": ls.losses.cross_entropy(outputs, targets),
            "box": outputs.pow(2).mean(dim=1),
        }

    project = ls.Project(
        model=TinyCNN(),
        data=data,
        loss=detection_like_loss,
        metrics={
            "margin": ls.Metric(lambda o, t: o.max(1).values - o.min(1).values, better="higher")
        },
    )
    run = analyze(project, tmp_path / "run")
    samples = run.samples
    np.testing.assert_allclose(
        samples["loss"], samples["loss_classification"] + samples["loss_box"], rtol=1e-5
    )
    assert (samples["metric_margin"] > 0).all()
    assert run.manifest["loss_components"] == ["loss_classification", "loss_box"]
    assert run.manifest["metrics"] == {"margin": "higher"}


def test_unlabeled_subset_has_no_target_and_no_loss(tmp_path, data):
    data = {**data, "production": [x for x, _ in image_items(12, 3)]}
    run = analyze(
        ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy), tmp_path / "run"
    )
    production = run.samples[run.samples["subset"] == "production"]
    assert len(production) == 12
    assert production["loss"].isna().all() and production["target"].isna().all()
    assert production["prediction"].notna().all()
    assert run.latent("features").shape[0] == 40 + 24 + 12
    assert [s["labeled"] for s in run.manifest["subsets"]] == [True, True, False]


def test_detection_style_collate_with_list_targets(tmp_path):
    class BoxModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
            self.head = nn.Linear(4, 5)

        def forward(self, images):
            features = self.backbone(torch.stack(images)).mean(dim=(2, 3))
            return self.head(features)

    items = [
        (x, {"boxes": torch.rand(i % 3 + 1, 4), "labels": torch.zeros(i % 3 + 1)})
        for i, (x, _) in enumerate(image_items(9, 1))
    ]

    def collate(pairs):
        return [x for x, _ in pairs], [t for _, t in pairs]

    def loss(outputs, targets):
        counts = torch.tensor([len(t["boxes"]) for t in targets], dtype=torch.float32)
        return {"count": (outputs[:, 0] - counts).abs(), "box": outputs[:, 1:].pow(2).mean(1)}

    run = analyze(
        ls.Project(
            model=BoxModel(), data={"train": items}, loss=loss, collate=collate, task="other"
        ),
        tmp_path / "run",
    )
    targets = [json.loads(t) for t in run.samples["target"]]
    assert [len(t["boxes"]) for t in targets] == [i % 3 + 1 for i in range(9)]
    assert "prediction" not in run.samples
    assert run.latent("backbone").shape == (9, 4)


def test_the_input_of_a_module_called_by_keyword_only_is_recorded(tmp_path):
    class KeywordHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 3)

        def forward(self, *, features, scale):
            return self.fc(features) * scale

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = nn.Linear(4, 8)
            self.head = KeywordHead()

        def forward(self, x):
            return self.head(scale=torch.ones(len(x), 1), features=torch.relu(self.body(x)))

    model = Model()
    inputs = torch.rand(12, 4, generator=torch.Generator().manual_seed(1))
    data = {"train": [(inputs[i], i % 3) for i in range(12)]}
    project = ls.Project(
        model=model, data=data, loss=ls.losses.cross_entropy, layers=["head:input"]
    )
    run = analyze(project, tmp_path / "run", batch_size=5)
    with torch.no_grad():
        expected = torch.relu(model.body(inputs)).numpy()
    np.testing.assert_allclose(run.latent("head:input"), expected, rtol=1e-5, atol=1e-6)


def test_token_sequences_with_a_text_render(tmp_path):
    vocabulary = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]

    class TextModel(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.embed = nn.Embedding(len(vocabulary), 16)
            self.encoder = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True)
            self.head = nn.Linear(16, 2)

        def forward(self, tokens):
            return self.head(self.encoder(self.embed(tokens)).mean(dim=1))

    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, len(vocabulary), (20, 6), generator=generator)
    data = {"train": [(tokens[i], i % 2) for i in range(20)]}
    project = ls.Project(
        model=TextModel(),
        data=data,
        loss=ls.losses.cross_entropy,
        layers=["encoder", "head:input"],
        render=lambda ids: " ".join(vocabulary[i] for i in ids.tolist()),
    )
    run = analyze(project, tmp_path / "run")
    assert run.manifest["layers"][0]["kind"] == "sequence"
    assert run.latent("encoder").shape == (20, 16)
    assert run.latent("encoder", "grid").shape == (20, 64)
    assert run.render("train/3") == " ".join(vocabulary[i] for i in tokens[3].tolist())


def test_image_render_is_stored_by_default(tmp_path, data):
    run = analyze(
        ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy),
        tmp_path / "runs [v1]?",  # characters that are patterns to a glob
        batch_size=8,
        chunk_size=16,
    )
    index = RenderIndex(run.path)
    for subset, items in data.items():
        for position, (image, _) in enumerate(items):
            expected = (image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            np.testing.assert_array_equal(np.asarray(run.render(f"{subset}/{position}")), expected)
            np.testing.assert_array_equal(index.get(f"{subset}/{position}").pixels, expected)
    with pytest.raises(ls.NotRecordedError, match="No sample with id 'val/99'"):
        run.render("val/99")


def test_regression_and_binary_predictions(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(30, 5)

    def mlp():
        return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1))

    regression = ls.Project(
        model=mlp(),
        data={"train": [(x[i], x[i, 0].reshape(1)) for i in range(30)]},
        loss=ls.losses.mse,
    )
    samples = analyze(regression, tmp_path / "reg").samples
    with torch.no_grad():
        outputs = regression.model(x)[:, 0]
    np.testing.assert_allclose(samples["prediction"], outputs.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        samples["loss"], (outputs - x[:, 0]).pow(2).numpy(), rtol=1e-4, atol=1e-6
    )

    binary = ls.Project(
        model=mlp(),
        data={"train": [(x[i], float(x[i, 0] > 0)) for i in range(30)]},
        loss=ls.losses.binary_cross_entropy,
    )
    samples = analyze(binary, tmp_path / "bin").samples
    with torch.no_grad():
        positive = binary.model(x)[:, 0].sigmoid()
    np.testing.assert_array_equal(samples["prediction"], (positive > 0.5).long().numpy())
    np.testing.assert_allclose(
        np.stack(samples["probabilities"])[:, 1], positive.numpy(), rtol=1e-5
    )


def test_sql_over_the_samples_table(tmp_path, data, metadata):
    run = analyze(
        ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy, metadata=metadata),
        tmp_path / "run",
    )
    by_source = run.sql(
        "SELECT source, count(*) AS n, avg(loss) AS loss FROM samples GROUP BY source ORDER BY source"
    ).df()
    expected = run.samples.groupby("source")["loss"].agg(["count", "mean"])
    assert list(by_source["n"]) == list(expected["count"])
    np.testing.assert_allclose(by_source["loss"], expected["mean"], rtol=1e-6)
    assert isinstance(run.samples, pd.DataFrame)


def test_worker_processes_give_the_same_run(tmp_path, data, metadata):
    project = ls.Project(
        model=TinyCNN(), data=data, loss=ls.losses.cross_entropy, metadata=metadata
    )
    single = analyze(project, tmp_path / "single", batch_size=8)
    workers = analyze(project, tmp_path / "workers", batch_size=8, num_workers=2)
    pd.testing.assert_frame_equal(single.samples, workers.samples)
    np.testing.assert_array_equal(
        single.latent("features", "grid"), workers.latent("features", "grid")
    )


def test_capture_runs_in_eval_mode_and_gives_the_model_back_in_its_modes(tmp_path, data):
    class Noisy(TinyCNN):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            return self.fc(self.drop(self.pool(self.features(x)).flatten(1)))

    model = Noisy().train()
    model.features.eval()  # a frozen part, as in fine-tuning
    project = ls.Project(model=model, data=data, loss=ls.losses.cross_entropy)
    first = analyze(project, tmp_path / "first")
    second = analyze(project, tmp_path / "second")
    np.testing.assert_array_equal(first.samples["loss"], second.samples["loss"])
    ls.check(project)
    assert model.training and model.drop.training and model.fc.training
    assert not model.features.training


class InPlaceAfterHooks(nn.Module):
    """A conv whose output an inplace ReLU changes after the hook, and one whose output no
    later operation changes: the first must be pooled before the ReLU runs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.changed = nn.Conv2d(3, 6, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.kept = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.kept(self.act(self.changed(x))).mean(dim=(2, 3)))


def test_layers_changed_in_place_later_are_recorded_as_they_left_the_module(tmp_path):
    model = InPlaceAfterHooks()
    items = image_items(24, 0)
    project = ls.Project(
        model=model, data={"train": items}, loss=ls.losses.cross_entropy, layers=["changed", "kept"]
    )
    plan = ls.check(project)
    assert plan.spec.recorder.deferred == {ref for ref, _ in plan.layers if ref.name == "kept"}
    run = analyze(project, tmp_path / "run", batch_size=8)
    inputs = torch.stack([x for x, _ in items])
    with torch.no_grad():
        before_relu = model.changed(inputs)
        kept = model.kept(torch.relu(before_relu))
    for layer, activation in (("changed", before_relu), ("kept", kept)):
        np.testing.assert_allclose(
            run.latent(layer), activation.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            run.latent(layer, "grid"),
            nn.functional.adaptive_avg_pool2d(activation, 4).flatten(1).numpy(),
            rtol=1e-5,
            atol=1e-6,
        )
    assert run.latent("changed").min() < 0
