"""Multilabel label issues where the truth is known: one label flipped in one camera's samples is
found there and named; the same data with clean labels raises nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TinyCNN

import latentsight as ls

LABELS = ["red", "green", "blue"]
FLIPPED_LABEL = 1
FLIP_SHARE = 0.4


def _tagged(n: int, seed: int, subset: str, plant: bool) -> tuple[list, pd.DataFrame, np.ndarray]:
    """Images whose label k is on when channel k is bright; with ``plant``, label 1 flipped in a
    share of camera 'c''s samples. Returns the items, their metadata and the flipped mask."""
    generator = torch.Generator().manual_seed(seed)
    on = torch.rand(n, 3, generator=generator) > 0.5
    noise = torch.rand(n, 3, 12, 12, generator=generator)
    images = 0.15 + 0.7 * on[:, :, None, None].float() + 0.1 * noise
    camera = np.array(["a", "b", "c"])[np.arange(n) % 3]
    flipped = (camera == "c") & (np.random.default_rng(seed).random(n) < FLIP_SHARE) & plant
    given = on.clone()
    rows = torch.from_numpy(flipped)
    given[rows, FLIPPED_LABEL] = ~given[rows, FLIPPED_LABEL]
    items = [(images[i], given[i].float()) for i in range(n)]
    metadata = pd.DataFrame({"id": [f"{subset}/{i}" for i in range(n)], "camera": camera})
    return items, metadata, flipped


def _analysed(tmp_path, plant: bool):
    train, train_meta, train_flipped = _tagged(480, 1, "train", plant)
    val, val_meta, val_flipped = _tagged(240, 2, "val", plant)
    model = TinyCNN(n_classes=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    inputs = torch.stack([x for x, _ in train])
    targets = torch.stack([y for _, y in train])
    for _ in range(80):
        loss = ls.losses.binary_cross_entropy(model(inputs), targets).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    project = ls.Project(
        model=model.eval(),
        data={"train": train, "val": val},
        loss=ls.losses.binary_cross_entropy,
        metadata=pd.concat([train_meta, val_meta]),
        classes=LABELS,
    )
    run = ls.analyze(project, tmp_path / ("planted" if plant else "clean"), progress=False)
    return run, np.concatenate([train_flipped, val_flipped])


def _found(run) -> list:
    return [
        i for i in run.insights if any(e.detector == "multilabel_label_issues" for e in i.evidence)
    ]


def test_a_flipped_label_in_one_camera_is_found_there_and_named(tmp_path):
    run, flipped = _analysed(tmp_path, plant=True)
    found = _found(run)
    assert found, run.analysis_info["detectors"].get("multilabel_label_issues")
    truth = set(run.samples["id"][flipped])

    def f1(insight) -> float:
        population = set(insight.population)
        return 2 * len(population & truth) / (len(population) + len(truth))

    best = max(found, key=f1)
    assert f1(best) >= 0.5, [(i.title, f1(i)) for i in found]
    evidence = next(e for e in best.evidence if e.detector == "multilabel_label_issues")
    assert evidence.details["label"] == FLIPPED_LABEL and "mostly green" in best.title
    assert np.isfinite(evidence.effect) and evidence.effect > 2
    scores = run.scores.set_index("id")
    flagged = set(scores.index[scores["is_label_issue"].astype(bool)])
    assert len(flagged & truth) >= 0.6 * len(truth)  # most flipped samples are suspects


def test_clean_labels_raise_no_multilabel_label_issue(tmp_path):
    run, _ = _analysed(tmp_path, plant=False)
    note = run.analysis_info["detectors"]["multilabel_label_issues"]
    assert note["model_check"]["learned"], note
    assert _found(run) == [], [i.title for i in _found(run)]


@pytest.mark.parametrize("task", ["classification"])
def test_single_label_runs_are_left_to_the_label_issue_detector(tmp_path, task, data):
    run = ls.analyze(
        ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy),
        tmp_path / task,
        progress=False,
    )
    notes = run.analysis_info["detectors"]
    assert notes["multilabel_label_issues"] == {"not_for_task": "for multilabel runs"}
    assert "tested" in notes["label_issues"] or "skipped" in notes["label_issues"]
