"""Runs whose targets are not one class per sample (regression, multi-label, boxes) and runs with
an unlabeled subset: captured with the right task, analysed without a failing detector, reported.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import TinyCNN, image_items
from torch import nn

import latentsight as ls
from latentsight.concepts.vocabulary import build_vocabulary


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, 12, 12, generator=torch.Generator().manual_seed(seed))


def _analysed(tmp_path, project: ls.Project, name: str) -> ls.Run:
    run = ls.analyze(project, out=tmp_path / name, progress=False)
    failed = {k: note for k, note in run.analysis_info["detectors"].items() if "error" in note}
    assert not failed, failed
    return run


def _caption_facts(report: str) -> list[str]:
    return [part.split("<")[0] for part in report.split("<br>target ")[1:]]


def test_a_custom_loss_on_float_targets_of_the_outputs_shape_is_not_read_as_classes(tmp_path):
    """Three-output regression with the user's own squared error: no softmax "prediction"."""
    images = _images(48, 1)
    targets = images.mean(dim=(2, 3))  # B x 3, known closed form
    data = {"train": [(x, y) for x, y in zip(images, targets, strict=True)]}
    project = ls.Project(
        model=TinyCNN(n_classes=3),
        data=data,
        loss=lambda out, y: ((out - y) ** 2).mean(dim=1),
    )
    assert ls.check(project).spec.task == "other"
    run = _analysed(tmp_path, project, "regression")
    assert "prediction" not in run.samples.columns and "probabilities" not in run.samples.columns
    model = project.resolve_model()
    with torch.inference_mode():
        expected = ((model(images[:1]) - targets[:1]) ** 2).mean()
    assert run.samples["loss"].iloc[0] == pytest.approx(float(expected), rel=1e-5)
    captions = _caption_facts(run.report(tmp_path / "r.html").read_text())
    assert captions and all(c.startswith("[") for c in captions)  # the three targets, shown


def test_a_custom_loss_on_integer_class_targets_is_read_as_classification():
    project = ls.Project(
        model=TinyCNN(),
        data={"train": image_items(16, 1)},
        loss=lambda out, y: F.cross_entropy(out, y, reduction="none"),
    )
    plan = ls.check(project)
    assert plan.spec.task == "classification" and plan.n_classes == 3


def test_multi_label_targets_are_stored_and_reported(tmp_path):
    images = _images(40, 2)
    labels = (images.mean(dim=(2, 3)) > 0.5).float()  # B x 3 multi-hot
    project = ls.Project(
        model=TinyCNN(n_classes=3),
        data={"train": list(zip(images, labels, strict=True))},
        loss=ls.losses.binary_cross_entropy,
    )
    run = _analysed(tmp_path, project, "multilabel")
    assert list(run.samples["target"].iloc[0]) == labels[0].tolist()
    captions = _caption_facts(run.report(tmp_path / "r.html").read_text())
    label_sets = {
        " + ".join(f"label {k}" for k, on in enumerate(row.tolist()) if on) or "none"
        for row in labels
    }
    assert captions and {caption.split(" / predicted")[0] for caption in captions} <= label_sets


class BoxModel(nn.Module):
    """A class score and one box per image, returned as a dict as detection models do."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.score = nn.Linear(8, 2)
        self.box = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.pool(self.backbone(x)).flatten(1)
        return {"scores": self.score(features), "boxes": self.box(features)}


def _box_collate(pairs):
    return torch.stack([x for x, _ in pairs]), [y for _, y in pairs]


def _box_loss(outputs, targets):
    boxes = torch.stack([torch.tensor(t["boxes"][0], dtype=torch.float32) for t in targets])
    labels = torch.tensor([t["labels"][0] for t in targets])
    return {
        "classification": F.cross_entropy(outputs["scores"], labels, reduction="none"),
        "box": F.l1_loss(outputs["boxes"], boxes / 12, reduction="none").mean(dim=1),
    }


def test_structured_targets_are_captured_as_json_analysed_and_reported(tmp_path):
    images = _images(40, 3)
    targets = [{"boxes": [[i % 5, 1, 6, 7]], "labels": [i % 2]} for i in range(40)]
    project = ls.Project(
        model=BoxModel(),
        data={"train": list(zip(images, targets, strict=True))},
        loss=_box_loss,
        collate=_box_collate,
        layers=["backbone", "score:input"],
        task="other",
    )
    run = _analysed(tmp_path, project, "boxes")
    assert json.loads(run.samples["target"].iloc[3]) == targets[3]
    assert {"loss_classification", "loss_box"} <= set(run.samples.columns)
    captions = _caption_facts(run.report(tmp_path / "r.html").read_text())
    assert captions and captions[0].startswith("{&quot;boxes&quot;")


def test_an_unlabeled_subset_leaves_every_detector_and_the_concept_labels_working(tmp_path):
    items = image_items(60, 4)
    data = {"train": items[:40], "val": items[40:], "prod": [x for x, _ in image_items(20, 5)]}
    meta = pd.DataFrame(
        [
            {"id": f"{subset}/{i}", "source": f"cam{i % 2}"}
            for subset, rows in data.items()
            for i in range(len(rows))
        ]
    )
    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy, metadata=meta)
    run = _analysed(tmp_path, project, "with_prod")
    assert run.samples["target"].isna().sum() == 20
    vocabulary = build_vocabulary(run.samples, metadata_columns=["source"])
    columns = vocabulary.columns()
    unlabeled = run.samples["subset"].eq("prod").to_numpy()
    label_concepts = [name for name in vocabulary.names if name.startswith("label == ")]
    assert label_concepts
    for name in label_concepts:  # every labelled sample of the class, no unlabeled sample
        k = int(name.removeprefix("label == "))
        assert (columns[name] == run.samples["target"].eq(k).fillna(False).to_numpy()).all()
        assert not columns[name][unlabeled].any()
    # the report shows the unlabeled samples the model is least sure of, not a "loss nan"
    report = run.report(tmp_path / "report.html").read_text()
    assert "Hardest in val" in report and "Least confident in prod" in report
    assert "loss nan" not in report
    prod = run.samples[unlabeled].sort_values("confidence", kind="stable")
    shown = report.split("Least confident in prod")[1].split("</div>")[0]
    lowest = prod["confidence"].iloc[0]
    assert f"confidence {lowest:.4g}" in shown


def test_targets_that_are_not_classes_give_no_label_concepts():
    samples = pd.DataFrame(
        {"id": ["a", "b", "c", "d"], "target": [0.5, 1.25, 2.0, 3.5], "size": [1, 2, 1, 2]}
    )
    vocabulary = build_vocabulary(samples, metadata_columns=["size"])
    assert not any(name.startswith("label") for name in vocabulary.names)
    assert "regression" in vocabulary.dropped["label"]


class TupleModel(nn.Module):
    """Logits and an auxiliary output, returned as a tuple."""

    def __init__(self, poison: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.poison = poison
        self.fc = nn.Linear(4, 3)
        self.aux = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        aux = self.aux(x)
        if self.poison:  # the auxiliary output of every sample whose first feature is negative
            aux = torch.where(x[:, :1] < 0, torch.full_like(aux, float("nan")), aux)
        return self.fc(x), aux


def _vectors(n: int, seed: int) -> list[tuple[torch.Tensor, int]]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 4, generator=generator) + 0.1
    return [(x[i], i % 3) for i in range(n)]


def _tuple_loss(outputs, targets):
    return F.cross_entropy(outputs[0], targets, reduction="none")


def test_classification_declared_for_a_tuple_output_names_the_fix():
    project = ls.Project(
        model=TupleModel(), data={"train": _vectors(8, 1)}, loss=_tuple_loss, task="classification"
    )
    with pytest.raises(ls.ProjectError, match=r"returns a tuple of 2 elements.*task='other'"):
        ls.check(project)


class ArgmaxModel(nn.Module):
    """Returns class indices instead of logits: integer outputs no class task can read."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).argmax(dim=1)


class BatchSumModel(ArgmaxModel):
    """Returns one number for the whole batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).sum()


@pytest.mark.parametrize(
    ("model", "described"),
    [
        (ArgmaxModel, r"an int64 tensor of shape \(8,\)"),
        (BatchSumModel, r"a single float32 number for the whole batch"),
    ],
)
def test_outputs_no_class_task_can_read_are_described_and_the_task_traced_to_the_loss(
    model, described
):
    project = ls.Project(
        model=model(), data={"train": _vectors(8, 1)}, loss=ls.losses.cross_entropy
    )
    with pytest.raises(
        ls.ProjectError,
        match=rf"The loss implies task='classification', but the model returns {described}",
    ):
        ls.check(project)


def test_a_dict_output_with_logits_gives_predictions_and_the_ready_made_loss(tmp_path):
    class WithLogits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return {"logits": self.fc(x), "hidden": x}

    model = WithLogits()
    data = _vectors(24, 2)
    project = ls.Project(
        model=model,
        data={"train": data},
        loss=ls.losses.cross_entropy,
        layers=["fc:input"],
    )
    run = ls.analyze(project, out=tmp_path / "run", progress=False, insights=False)
    assert run.manifest["task"] == "classification"
    with torch.inference_mode():
        logits = model.fc(torch.stack([x for x, _ in data]))
    expected_loss = F.cross_entropy(logits, torch.tensor([y for _, y in data]), reduction="none")
    assert (run.samples["prediction"].to_numpy() == logits.argmax(dim=1).numpy()).all()
    np.testing.assert_allclose(run.samples["loss"], expected_loss.numpy(), rtol=1e-6)


def test_cross_entropy_takes_class_probabilities_as_targets():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=generator)
    labels = torch.randint(0, 4, (6,), generator=generator)
    smoothed = F.one_hot(labels, 4).float() * 0.9 + 0.1 / 4
    expected = -(smoothed * logits.log_softmax(dim=1)).sum(dim=1)
    torch.testing.assert_close(ls.losses.cross_entropy(logits, smoothed), expected)
    torch.testing.assert_close(
        ls.losses.cross_entropy(logits, F.one_hot(labels, 4).float()),
        ls.losses.cross_entropy(logits, labels),
    )


def test_nan_in_a_tuple_output_quarantines_the_sample(tmp_path):
    data = _vectors(16, 3)
    data[12] = (
        -data[12][0],
        data[12][1],
    )  # past the checked items: this sample's auxiliary output is NaN
    project = ls.Project(
        model=TupleModel(poison=True), data={"train": data}, loss=_tuple_loss, layers=["fc:input"]
    )
    run = ls.analyze(project, out=tmp_path / "run", progress=False, insights=False)
    assert run.quarantine["id"].tolist() == ["train/12"]
    assert len(run.samples) == 15


def test_token_ids_given_as_bare_lists_are_warned_about():
    pairs = [[5, 1], [3, 0], [7, 2], [2, 2]]  # meant as token ids, read as (input, target)
    project = ls.Project(
        model=nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3)),
        data={"train": pairs},
        loss=ls.losses.cross_entropy,
    )
    plan = ls.check(project)
    assert any("sequence of token ids" in w for w in plan.warnings)


def test_a_longer_bare_list_item_says_how_to_give_token_ids():
    project = ls.Project(
        model=nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3)),
        data={"train": [[5, 1, 4, 2]] * 4},
        loss=ls.losses.cross_entropy,
    )
    with pytest.raises(ls.ProjectError, match=r"sequence of token ids is one input"):
        ls.check(project)


def _class_and_value_run(tmp_path, name: str, targets) -> ls.Run:
    """A two-class run of the TinyCNN whose targets are ``targets(label)`` and whose loss is the
    cross-entropy of the label the targets hold first (or of the probabilities they are)."""
    images = _images(32, 5)
    labels = (images[:, 0].mean(dim=(1, 2)) > 0.5).long()
    data = {"train": [(x, targets(int(y))) for x, y in zip(images, labels, strict=True)]}

    def loss(out, target):
        if target.shape[1] == 2 and torch.all(target.sum(dim=1) == 1):
            return F.cross_entropy(out, target, reduction="none")
        return F.cross_entropy(out, target[:, 0].long(), reduction="none")

    model = TinyCNN(n_classes=2)
    project = ls.Project(model=model, data=data, loss=loss, task="classification")
    run = ls.analyze(project, out=tmp_path / name, progress=False, insights=False)
    with torch.inference_mode():
        predictions = model.eval()(images).argmax(dim=1)
    assert (run.samples["prediction"].to_numpy() == predictions.numpy()).all()
    return run, predictions == labels


def test_correct_reads_one_hot_targets_and_not_other_pairs_of_values(tmp_path):
    one_hot, right = _class_and_value_run(
        tmp_path, "one_hot", lambda label: F.one_hot(torch.tensor(label), 2).float()
    )
    assert (one_hot.samples["correct"].to_numpy() == right.numpy()).all()
    assert one_hot.summary()["train"]["accuracy"] == pytest.approx(float(right.float().mean()))
    # (class, value) pairs are not class probabilities: their argmax is no class
    pairs, _ = _class_and_value_run(
        tmp_path, "pairs", lambda label: torch.tensor([float(label), 2.5 - 3.0 * label])
    )
    assert "correct" not in pairs.samples.columns
    assert "accuracy" not in pairs.summary()["train"]


def test_class_names_as_targets_are_refused_by_the_ready_made_losses_and_never_scored(tmp_path):
    names = ["no", "yes"]
    images = _images(16, 6)
    data = {"train": [(x, names[i % 2]) for i, x in enumerate(images)]}
    ready_made = (
        (ls.losses.cross_entropy, names),
        (ls.losses.binary_cross_entropy, names),
        (ls.losses.mse, None),
    )
    for loss, classes in ready_made:
        with pytest.raises(ls.ProjectError, match=r"list of str \('no', ...\).*classes\.index"):
            ls.check(ls.Project(model=TinyCNN(n_classes=2), data=data, loss=loss, classes=classes))

    def by_name(out, target):
        indices = torch.tensor([names.index(name) for name in target])
        return F.cross_entropy(out, indices, reduction="none")

    project = ls.Project(
        model=TinyCNN(n_classes=2), data=data, loss=by_name, classes=names, task="classification"
    )
    run = ls.analyze(project, out=tmp_path / "names", progress=False, insights=False)
    assert "correct" not in run.samples.columns, "text targets are never equal to a class index"
    assert run.samples["prediction"].between(0, 1).all()
