"""Concept discovery on runs whose head is not one logit per class: a regression, a binary
classifier's single logit and a model with a second (regression) head. Classes come from the
run's task, and importance only from a head whose outputs are the class logits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import latentsight as ls
from latentsight.discovery import DiscoveryError


class Mlp(nn.Module):
    """A small MLP whose last linear layer ``head`` gives ``outputs`` values."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU())
        self.head = nn.Linear(16, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class TwoHeads(nn.Module):
    """Class logits and a regression value from one body; the value's head runs last."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU())
        self.cls = nn.Linear(16, 2)
        self.reg = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.body(x)
        return {"logits": self.cls(hidden), "value": self.reg(hidden)}


def _inputs(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))


def _trained(model: nn.Module, inputs: torch.Tensor, loss) -> nn.Module:
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        optimiser.zero_grad()
        loss(model(inputs)).backward()
        optimiser.step()
    return model.eval()


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    train, val = _inputs(400, 0), _inputs(200, 1)
    model = _trained(Mlp(1), train, lambda out: ((out[:, 0] - 3 * train[:, 0]) ** 2).mean())
    data = {
        name: [(x, 3 * float(x[0])) for x in inputs]
        for name, inputs in (("train", train), ("val", val))
    }
    project = ls.Project(model=model, data=data, loss=ls.losses.mse, layers=["head:input"])
    return ls.analyze(project, tmp_path_factory.mktemp("regression") / "run", progress=False)


def test_a_regression_run_fits_one_dictionary_without_class_importance(regression_run):
    predictions = regression_run.samples["prediction"]
    assert predictions.max() > 2 and predictions.min() < -2, "predictions beyond class indices"
    detectors = regression_run.analysis_info["detectors"]
    assert "error" not in detectors.get("concept_aggressor", {}), detectors["concept_aggressor"]
    bank = regression_run.discover_concepts("head:input", save=False)
    assert bank.table["class"].isna().all() and len(bank.banks) == 1
    assert bank.table["importance"].isna().all()
    assert any("task is 'regression'" in note for note in bank.notes), bank.notes
    with pytest.raises(DiscoveryError, match=r"task is 'regression'.*per_class=False"):
        regression_run.discover_concepts("head:input", per_class=True, save=False)


def test_a_binary_logit_gives_each_class_its_log_odds(tmp_path):
    train = _inputs(400, 2)
    labels = (train[:, 0] + train[:, 1] > 0).float()
    criterion = nn.BCEWithLogitsLoss()
    model = _trained(Mlp(1), train, lambda out: criterion(out[:, 0], labels))
    data = {"train": [(x, int(y)) for x, y in zip(train, labels, strict=True)]}
    project = ls.Project(
        model=model, data=data, loss=ls.losses.binary_cross_entropy, layers=["head:input"]
    )
    run = ls.analyze(project, tmp_path / "run", progress=False, insights=False)
    assert run.manifest["task"] == "binary"
    bank = run.discover_concepts("head:input", save=False)
    assert set(bank.table["class"]) == {0, 1} and bank.table["importance"].notna().all()
    with torch.no_grad():
        log_odds = model(train)[:, 0].double().numpy()  # class 1's logit
    for index in (0, 7, 123):
        assert bank.importance(f"train/{index}", 1).logit == pytest.approx(
            log_odds[index], abs=1e-4
        )
        assert bank.importance(f"train/{index}", 0).logit == pytest.approx(
            -log_odds[index], abs=1e-4
        )


def test_a_second_head_is_not_read_as_the_class_logits(tmp_path):
    train = _inputs(400, 3)
    labels = (train[:, 0] > 0).long()

    def fit_loss(out):
        ce = nn.functional.cross_entropy(out["logits"], labels)
        return ce + ((out["value"][:, 0] - train[:, 1]) ** 2).mean()

    def loss(out, target):
        return {
            "ce": nn.functional.cross_entropy(out["logits"], target, reduction="none"),
            "value": out["value"][:, 0] ** 2,
        }

    model = _trained(TwoHeads(), train, fit_loss)
    data = {"train": [(x, int(y)) for x, y in zip(train, labels, strict=True)]}
    project = ls.Project(model=model, data=data, loss=loss, task="classification")
    run = ls.analyze(project, tmp_path / "run", progress=False)
    assert "reg:input" in run.layers, "the default is the input of the last linear layer run"
    detectors = run.analysis_info["detectors"]
    assert "error" not in detectors.get("concept_aggressor", {}), detectors["concept_aggressor"]
    bank = run.discover_concepts("reg:input", save=False)
    assert any("head 'reg' gives 1 outputs" in note for note in bank.notes), bank.notes
    assert any("not computed from layer 'reg:input'" in note for note in bank.notes), bank.notes
    assert set(bank.table["class"]) == {0, 1}
