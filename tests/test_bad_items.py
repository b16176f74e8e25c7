"""Items, labels, ids and metadata that break the contract are refused up front, quarantined
one by one, or stop the capture early: never stored wrong, never a traceback from inside."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import TinyCNN, image_items

import latentsight as ls
from latentsight.capture.id_hashes import IdHashes

OPTIONS = dict(insights=False, progress=False)


def project(**overrides):
    arguments = dict(
        model=TinyCNN(), data={"train": image_items(16, 1)}, loss=ls.losses.cross_entropy
    )
    arguments.update(overrides)
    return ls.Project(**arguments)


def test_inputs_of_different_shapes_without_a_collate_are_refused_naming_collate():
    items = [(torch.rand(3, 8 + i % 3, 8), i % 3) for i in range(16)]
    with pytest.raises(ls.ProjectError, match=r"cannot be stacked.*\[3, 9, 8\].*Project\.collate"):
        ls.check(project(data={"train": items}))


def test_cross_entropy_takes_whole_float_labels_and_refuses_fractional_ones():
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 2, 1, 2])
    expected = F.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(ls.losses.cross_entropy(logits, labels.double()), expected)
    with pytest.raises(ValueError, match=r"whole class labels.*a target is 1.5"):
        ls.losses.cross_entropy(logits, torch.tensor([0.0, 1.5, 1.0, 2.0]))
    fractional = [(x, y + 0.5) for x, y in image_items(16, 1)]
    with pytest.raises(ls.ProjectError, match=r"The loss raised ValueError.*whole class labels"):
        ls.check(project(data={"train": fractional}))


def _ids(n: int) -> list[str]:
    return [f"train/{i}" for i in range(n)]


@pytest.mark.parametrize(
    ("columns", "problem"),
    [
        ({"b": [2**70] * 16}, r"'b' of sample 'train/0' holds the integer 1180591620717411303424"),
        ({"cam": [1] * 16, "Cam": [2] * 16}, r"'cam' and 'Cam' differ only in case"),
        ({"ID": [1] * 16}, r"'ID' clashes with a column latentsight writes"),
        ({"Loss_extra": [1] * 16}, r"'Loss_extra' clashes with a column latentsight writes"),
    ],
)
def test_metadata_that_the_store_cannot_keep_as_given_is_refused(columns, problem):
    with pytest.raises(ls.ProjectError, match=problem):
        ls.check(project(metadata=pd.DataFrame({"id": _ids(16), **columns})))


def test_date_metadata_is_stored_as_midnight_timestamps(tmp_path):
    days = [datetime.date(2024, 1, 1 + i) for i in range(16)]
    run = ls.analyze(
        project(metadata=pd.DataFrame({"id": _ids(16), "day": days})), tmp_path / "run", **OPTIONS
    )
    assert list(run.samples["day"]) == [pd.Timestamp(day) for day in days]


def test_items_whose_target_contradicts_their_subset_are_quarantined_past_the_check(tmp_path):
    labeled = image_items(24, 1)
    labeled[20] = (labeled[20][0], None)
    unlabeled = [(x,) for x, _ in image_items(24, 2)]
    unlabeled[21] = (unlabeled[21][0], 1)
    data = {"train": labeled, "production": unlabeled}
    run = ls.analyze(project(data=data), tmp_path / "run", **OPTIONS)
    errors = dict(zip(run.quarantine["id"], run.quarantine["error"], strict=True))
    assert set(errors) == {"train/20", "production/21"}
    assert "has no target, but subset 'train' is labeled" in errors["train/20"]
    assert "has a target, but subset 'production' is unlabeled" in errors["production/21"]
    train = run.samples[run.samples["subset"] == "train"]
    assert len(train) == 23 and train["loss"].notna().all()
    assert run.samples.loc[run.samples["subset"] == "production", "loss"].isna().all()


def test_a_malformed_item_among_those_the_data_fingerprint_reads_is_quarantined(tmp_path):
    items = image_items(16, 1)  # a subset this small is fingerprinted item by item
    items[12] = None  # past the items the check reads
    run = ls.analyze(project(data={"train": items}), tmp_path / "run", **OPTIONS)
    assert list(run.quarantine["id"]) == ["train/12"]
    assert "is a NoneType" in run.quarantine["error"][0]
    assert len(run.samples) == 15


class CountingItems(torch.utils.data.Dataset):
    """Items with ids of their own, counting how many times an item is asked for."""

    def __init__(self, ids: list[str]) -> None:
        self.ids, self.items, self.calls = ids, image_items(len(ids), 3), 0

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        self.calls += 1
        image, label = self.items[index]
        return {"input": image, "target": label, "id": self.ids[index]}


def test_a_repeated_id_stops_the_capture_at_the_chunk_that_repeats_it(tmp_path):
    ids = [f"img_{i}" for i in range(96)]
    ids[20] = ids[3]  # past the items the check reads, in the third chunk of twelve
    data = CountingItems(ids)
    options = dict(OPTIONS, batch_size=8, chunk_size=8)
    with pytest.raises(ls.ProjectError, match=r"'img_3' is the id of train/3 and train/20"):
        ls.analyze(project(data={"train": data}), tmp_path / "run", **options)
    assert data.calls < len(ids), "the capture stopped before the end of the data"
    with pytest.raises(ls.ProjectError, match=r"'img_3' is the id of train/3 and train/20"):
        ls.analyze(project(data={"train": data}), tmp_path / "run", resume=True, **options)
    with pytest.raises(ls.RunStoreError, match="incomplete"):
        ls.open_run(tmp_path / "run")


def test_unique_ids_over_many_chunks_capture_every_sample(tmp_path):
    ids = [f"img_{i}" for i in range(96)]
    run = ls.analyze(
        project(data={"train": CountingItems(ids)}),
        tmp_path / "run",
        **dict(OPTIONS, batch_size=8, chunk_size=8),
    )
    assert list(run.samples["id"]) == ids


def test_id_hashes_find_a_repeat_of_any_earlier_chunk_and_flag_no_unique_id():
    chunks = [[f"img-{chunk}-{row}" for row in range(chunk % 7 + 1)] for chunk in range(300)]
    for earlier in (0, 5, 150, 298):
        hashes = IdHashes()
        assert not any(hashes.add(ids) for ids in chunks[:299])
        assert hashes.add([*chunks[299], chunks[earlier][-1]])
    assert IdHashes().add(["a", "b", "a"])
    assert not IdHashes().add([])


def test_numpy_datetimes_in_item_metadata_are_stored_as_times(tmp_path):
    taken = [np.datetime64("2024-01-02T03:04", "ns") + np.timedelta64(i, "m") for i in range(16)]
    items = [
        {"input": x, "target": y, "metadata": {"taken": taken[i]}}
        for i, (x, y) in enumerate(image_items(16, 1))
    ]
    run = ls.analyze(project(data={"train": items}), tmp_path / "run", **OPTIONS)
    assert list(run.samples["taken"]) == [pd.Timestamp(value) for value in taken]
