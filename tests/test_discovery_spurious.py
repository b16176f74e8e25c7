"""A planted spurious background, discovered without labels on a captured run: the concept is
found in the class that carries it, ranks among that class's two most important concepts (through
a linear head and through an MLP head), and is named by the background metadata, while a label
unrelated to the latents scores chance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import latentsight as ls
from latentsight.concepts import ConceptSettings, build_vocabulary
from latentsight.discovery import DiscoverySettings, name_concepts

LAYER = "head:input"
D, N_PER_CLASS = 24, 400
SPURIOUS = 1  # the class whose samples carry the background 90% of the time


def _directions() -> np.ndarray:
    """Unit non-negative sparse directions: one object per class (0-2), background (3),
    texture (4)."""
    rng = np.random.default_rng(11)
    directions = rng.random((5, D)) * (rng.random((5, D)) < 0.3)
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def _samples(directions: np.ndarray):
    """Latents of three classes: each sample carries its class's object; the background is in
    90% of class 1 and 10% of the others; a texture in 40% of all, read by no class."""
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), N_PER_CLASS)
    n = labels.size
    codes = np.zeros((n, 5))
    codes[np.arange(n), labels] = rng.uniform(1.0, 2.0, n)
    background = rng.random(n) < np.where(labels == SPURIOUS, 0.9, 0.1)
    codes[:, 3] = background * rng.uniform(0.8, 1.6, n)
    codes[:, 4] = (rng.random(n) < 0.4) * rng.uniform(0.5, 1.5, n)
    latents = np.maximum(codes @ directions + rng.normal(0.0, 0.02, (n, D)), 0.0)
    return latents.astype(np.float32), labels, background, rng.choice(["x", "y"], n)


class LinearHead(nn.Module):
    """Logit c reads object c; class 1's logit also reads the background (the shortcut)."""

    def __init__(self, directions: np.ndarray) -> None:
        super().__init__()
        weight = 3.0 * directions[:3]
        weight[SPURIOUS] += 2.0 * directions[3]
        self.head = nn.Linear(D, 3)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor(weight, dtype=torch.float32))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


class MLPHead(nn.Module):
    """Hidden units detect each object and the background above a threshold; the logits read
    them as the linear head does: a non-linear head, so importance runs through the model."""

    def __init__(self, directions: np.ndarray) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Linear(D, 4), nn.ReLU(), nn.Linear(4, 3))
        out = np.zeros((3, 4))
        out[np.arange(3), np.arange(3)] = 3.0
        out[SPURIOUS, 3] = 2.0
        with torch.no_grad():
            self.head[0].weight.copy_(torch.tensor(directions[:4], dtype=torch.float32))
            self.head[0].bias.fill_(-0.3)
            self.head[2].weight.copy_(torch.tensor(out, dtype=torch.float32))
            self.head[2].bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


@pytest.fixture(scope="module", params=["linear", "mlp"])
def discovered(request, tmp_path_factory):
    directions = _directions()
    latents, labels, background, unrelated = _samples(directions)
    ids = [f"train/{i}" for i in range(len(labels))]
    metadata = pd.DataFrame(
        {"id": ids, "background": np.where(background, "blue", "grey"), "unrelated": unrelated}
    )
    model = (LinearHead if request.param == "linear" else MLPHead)(directions)
    items = [(torch.from_numpy(latents[i]), int(labels[i])) for i in range(len(labels))]
    project = ls.Project(
        model=model,
        data={"train": items},
        loss=ls.losses.cross_entropy,
        metadata=metadata,
        layers=[LAYER],
    )
    run = ls.analyze(
        project, tmp_path_factory.mktemp(request.param), progress=False, insights=False
    )
    settings = DiscoverySettings(concepts=ConceptSettings(length=1))
    bank = run.discover_concepts(LAYER, per_class=True, k="auto", settings=settings, save=False)
    return request.param, bank, directions


def _background_concept(bank, directions):
    """The spurious class's bank and the index of its concept nearest the background."""
    spurious = bank.bank_for(SPURIOUS)
    cosine = spurious.dictionary.components @ directions[3]
    return spurious, int(np.argmax(cosine)), float(cosine.max())


def test_the_spurious_background_is_found_in_its_class(discovered):
    _, bank, directions = discovered
    spurious, _, cosine = _background_concept(bank, directions)
    assert spurious.label == SPURIOUS and cosine >= 0.9, bank.table


def test_the_background_ranks_in_its_classs_top_two(discovered):
    kind, bank, directions = discovered
    assert (bank.head is None) == (kind == "mlp")
    if kind == "mlp":  # vector inputs: the importance ran through the model all the same
        assert "importance: gradient x input through the model" in bank.notes, bank.notes
    spurious, index, _ = _background_concept(bank, directions)
    table = bank.table[bank.table["class"] == SPURIOUS]
    assert table["importance"].notna().all()
    ranked = table.sort_values("importance", ascending=False)["index"].tolist()
    assert index in ranked[:2], table[["index", "importance", "name"]]
    # the texture, read by no logit, is a concept of the class but not among its drivers
    texture = int(np.argmax(spurious.dictionary.components @ directions[4]))
    assert texture in ranked[2:]


def test_the_background_is_named_by_the_metadata_and_an_unrelated_label_scores_chance(
    discovered,
):
    _, bank, directions = discovered
    spurious, index, _ = _background_concept(bank, directions)
    row = bank.table[(bank.table["class"] == SPURIOUS) & (bank.table["index"] == index)].iloc[0]
    assert row["name"] == "background == blue" and row["auc"] >= 0.95, row
    assert not bank.table["name"].str.contains("unrelated").any()
    unrelated = build_vocabulary(bank.samples, metadata_columns=["unrelated"], labels=False)
    scored = name_concepts(
        spurious.codes[:, [index]],
        bank.samples,
        unrelated,
        settings=ConceptSettings(length=1),
        min_auc=0.0,
    )
    assert 0.4 <= scored.loc[0, "auc"] <= 0.6
