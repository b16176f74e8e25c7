"""Every stored row belongs to its sample, and reads as what it is: a sequence-first layer whose
length equals the batch, a collate that reorders or drops items and a model that drops samples
are refused up front, a batch quarantined whole leaves the rest of the run intact, outputs that
are already probabilities are warned of, and one-hot targets are scored against the prediction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import TinyCNN, image_items
from torch import nn

import latentsight as ls

STEPS, WIDTH = 8, 6


def sequences(n: int, seed: int = 0) -> list[tuple[torch.Tensor, int]]:
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(n, STEPS, WIDTH, generator=generator)
    return [(values[i], i % 3) for i in range(n)]


class OverSequence(nn.Module):
    """A GRU over each sequence, batch first or (transposing for it) sequence first."""

    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.batch_first = batch_first
        self.gru = nn.GRU(WIDTH, 5, batch_first=batch_first)
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.batch_first:
            return self.fc(self.gru(x)[0].mean(dim=1))
        return self.fc(self.gru(x.transpose(0, 1))[0].mean(dim=0))


def sequence_project(batch_first: bool) -> ls.Project:
    return ls.Project(
        model=OverSequence(batch_first),
        data={"train": sequences(32)},
        loss=ls.losses.cross_entropy,
        layers=["gru"],
    )


def test_a_sequence_first_layer_as_long_as_the_check_batch_is_refused_up_front():
    # 8 steps in a check batch of 8: the first batch alone cannot tell the axes apart
    with pytest.raises(ls.ProjectError, match=r"Layer 'gru' gave .*A sequence-first module"):
        ls.check(sequence_project(batch_first=False))


def test_a_batch_first_layer_as_long_as_the_check_batch_is_captured_per_sample(tmp_path):
    project = sequence_project(batch_first=True)
    run = ls.analyze(project, tmp_path / "run", batch_size=8, insights=False, progress=False)
    inputs = torch.stack([x for x, _ in project.data["train"]])
    with torch.no_grad():
        expected = project.model.gru(inputs)[0].mean(dim=1).numpy()
    np.testing.assert_allclose(run.latent("gru"), expected, rtol=1e-5, atol=1e-6)


def stacking(pairs):
    return torch.stack([x for x, _ in pairs]), torch.tensor([y for _, y in pairs])


def project(**overrides) -> ls.Project:
    arguments = dict(
        model=TinyCNN(), data={"train": image_items(16, 1)}, loss=ls.losses.cross_entropy
    )
    arguments.update(overrides)
    return ls.Project(**arguments)


def test_a_collate_that_reorders_the_items_is_refused():
    def sorted_by_label(pairs):
        return stacking(sorted(pairs, key=lambda pair: pair[1]))

    with pytest.raises(ls.ProjectError, match=r"collate returned the targets .* another order"):
        ls.check(project(collate=sorted_by_label))


def test_a_collate_that_maps_the_labels_in_order_is_accepted():
    def merged(pairs):  # classes 1 and 2 become one
        inputs, targets = stacking(pairs)
        return inputs, targets.clamp(max=1)

    items = image_items(16, 3)
    assert {label for _, label in items[:8]} == {0, 1, 2}
    assert ls.check(project(data={"train": items}, collate=merged)).n_classes == 3


def test_a_collate_that_drops_an_item_is_refused_naming_the_counts():
    def drops_last(pairs):
        return stacking(pairs[:-1])

    with pytest.raises(ls.ProjectError, match=r"inputs of shape \(7, 3, 12, 12\) for 8 items"):
        ls.check(project(collate=drops_last))


class FirstSampleOnly(TinyCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[:1]


def test_a_model_that_returns_fewer_rows_than_samples_is_refused():
    with pytest.raises(ls.ProjectError, match=r"logits of shape \(1, 3\) for a batch of 8"):
        ls.check(project(model=FirstSampleOnly(), layers=["fc"]))


@pytest.mark.parametrize("renders", [True, False])
def test_a_later_batch_quarantined_whole_leaves_the_others_captured(tmp_path, renders):
    items = image_items(24, 1)
    for index in range(8, 16):  # the whole second batch
        items[index] = (items[index][0].clone().fill_(math.nan), items[index][1])
    run = ls.analyze(
        project(data={"train": items}),
        tmp_path / "run",
        batch_size=8,
        renders=renders,
        insights=False,
        progress=False,
    )
    assert run.quarantine["id"].tolist() == [f"train/{index}" for index in range(8, 16)]
    assert set(run.quarantine["error"]) == {"non-finite (NaN or inf) outputs, loss or activations"}
    kept = list(range(8)) + list(range(16, 24))
    assert run.samples["id"].tolist() == [f"train/{index}" for index in kept]
    inputs = torch.stack([items[index][0] for index in kept])
    with torch.no_grad():
        expected = run.project.model.fc(
            run.project.model.pool(run.project.model.features(inputs)).flatten(1)
        )
    np.testing.assert_allclose(
        np.stack(run.samples["probabilities"]),
        expected.softmax(dim=1).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


class EndsInSoftmax(TinyCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).softmax(dim=1)


def test_outputs_that_are_already_probabilities_are_warned_of_and_logits_are_not():
    warned = ls.check(project(model=EndsInSoftmax(), layers=["fc"])).warnings
    assert any("outputs on the first batch are probabilities" in w for w in warned)
    assert not any("probabilities (every row" in w for w in ls.check(project()).warnings)


def test_one_hot_targets_are_scored_against_the_predicted_class(tmp_path):
    items = image_items(16, 1)
    one_hot = [(x, nn.functional.one_hot(torch.tensor(y), 3).float()) for x, y in items]
    run = ls.analyze(
        project(data={"train": one_hot}), tmp_path / "run", insights=False, progress=False
    )
    labels = np.array([y for _, y in items])
    assert (
        run.samples["correct"].tolist() == (run.samples["prediction"].to_numpy() == labels).tolist()
    )
