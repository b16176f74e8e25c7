"""Bad integrations fail up front, on one batch, with a message that names the problem and fix."""

from __future__ import annotations

import datetime
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TinyCNN, image_items
from PIL import Image
from torch import nn

import latentsight as ls


def project(**overrides):
    arguments = dict(
        model=TinyCNN(),
        data={"train": image_items(16, 1), "val": image_items(8, 2)},
        loss=ls.losses.cross_entropy,
    )
    arguments.update(overrides)
    return ls.Project(**arguments)


def test_unknown_layer_lists_near_names():
    with pytest.raises(
        ls.ProjectError, match=r"'features\.9' is not a module.*Near names: .*features\.2"
    ):
        ls.check(project(layers=["features.9"]))


@pytest.mark.parametrize("name", ["", ":input"])
def test_the_whole_model_as_a_layer_is_refused(name):
    with pytest.raises(ls.ProjectError, match="names the whole model"):
        ls.check(project(layers=[name]))


def test_checking_no_samples_is_refused():
    with pytest.raises(ls.ProjectError, match=r"n=0: check at least 1 sample"):
        ls.check(project(), n=0)


def test_a_misspelt_point_of_a_known_module_says_which_points_exist():
    with pytest.raises(ls.ProjectError, match=r"Write 'fc' for what leaves it or 'fc:input'"):
        ls.check(project(layers=["fc:inputs"]))


def test_layer_given_as_a_module_is_told_its_name():
    model = TinyCNN()
    with pytest.raises(ls.ProjectError, match=r"got Linear: this module is named 'fc'"):
        ls.check(project(model=model, layers=[model.fc]))


def test_layer_given_as_a_string_says_to_use_a_list():
    with pytest.raises(ls.ProjectError, match=r"layers=\['fc'\]"):
        project(layers="fc")


def test_loss_returning_a_batch_mean_says_reduction_none():
    with pytest.raises(ls.ProjectError, match=r"single number for the batch.*reduction='none'"):
        ls.check(project(loss=nn.CrossEntropyLoss()))


def test_loss_of_the_wrong_length_is_refused():
    def bad_loss(outputs, targets):
        return ls.losses.cross_entropy(outputs, targets)[:-1]

    with pytest.raises(ls.ProjectError, match=r"shape \(7,\) for a batch of 8"):
        ls.check(project(loss=bad_loss))


def test_loss_component_of_the_wrong_shape_is_named():
    def bad_loss(outputs, targets):
        good = ls.losses.cross_entropy(outputs, targets)
        return {"class": good, "box": good.mean()}

    with pytest.raises(ls.ProjectError, match="loss component 'box'"):
        ls.check(project(loss=bad_loss))


def test_loss_that_raises_is_named_with_what_it_was_given():
    data = {"train": [(x, 5) for x, _ in image_items(16, 1)]}
    with pytest.raises(
        ls.ProjectError,
        match=r"The loss raised IndexError\('Target 5 is out of bounds.'\) on the first batch of "
        r"subset 'train'\. It was given outputs \(8, 3\) float32 and targets \(8,\) int64",
    ):
        ls.check(project(data=data))


def test_a_sample_the_loss_fails_on_is_reported_and_quarantined(tmp_path):
    data = {"train": image_items(16, 1)}
    data["train"][2] = (data["train"][2][0], 5)
    plan = ls.check(project(data=data))
    assert any(w.startswith("train/2: loss: IndexError") for w in plan.warnings)
    run = ls.analyze(project(data=data), out=tmp_path / "run", insights=False, progress=False)
    assert run.quarantine["id"].tolist() == ["train/2"]
    assert run.quarantine["error"].iloc[0].startswith("loss: IndexError('Target 5 is out of bounds")
    assert len(run.samples) == 15


def test_string_targets_are_described_when_the_loss_fails_on_them():
    data = {"train": [(x, "cat") for x, _ in image_items(16, 1)]}
    with pytest.raises(ls.ProjectError, match=r"collate to a list of str \('cat', ...\)"):
        ls.check(project(data=data))  # the ready-made loss says it itself

    def own_loss(outputs, targets):
        return torch.nn.functional.cross_entropy(outputs, targets, reduction="none")

    with pytest.raises(ls.ProjectError, match=r"The loss raised .* targets list of 8 str"):
        ls.check(project(data=data, loss=own_loss))


def test_metric_that_raises_is_named():
    def top5(outputs, targets):
        return outputs.topk(5, dim=1).indices.eq(targets[:, None]).any(dim=1).float()

    with pytest.raises(ls.ProjectError, match=r"Metric 'Top5' raised RuntimeError.*given outputs"):
        ls.check(project(metrics={"Top5": ls.Metric(top5, better="higher")}))


def test_metadata_function_that_raises_is_named():
    def metadata(subset, index):
        return {"camera": {"train": "a"}[subset]}

    with pytest.raises(ls.ProjectError, match=r"The metadata function raised KeyError\('val'\)"):
        ls.check(project(metadata=metadata))


def test_render_that_raises_is_named():
    def render(image):
        return image.permute(1, 2, 0).numpy()[..., 3]

    with pytest.raises(ls.ProjectError, match=r"Project\.render raised IndexError"):
        ls.check(project(render=render))


def test_render_returning_an_array_that_is_no_picture_names_its_shape():
    def render(image):
        return image.flatten().numpy()

    size = image_items(1, 1)[0][0].numel()
    with pytest.raises(
        ls.ProjectError, match=rf"Project\.render returned an array of shape \({size},\).*picture"
    ):
        ls.check(project(render=render))


def test_metadata_without_ids_is_refused():
    frame = pd.DataFrame({"brightness": range(24)})
    with pytest.raises(ls.ProjectError, match="add an 'id' column"):
        ls.check(project(metadata=frame))


def test_metadata_that_does_not_align_names_missing_ids():
    frame = pd.DataFrame({"id": [f"sample-{i}" for i in range(24)], "brightness": range(24)})
    with pytest.raises(
        ls.ProjectError, match=r"no row for 24 of the 24 samples, e\.g\. \['train/0'.*'sample-0'"
    ):
        ls.check(project(metadata=frame))


def test_metadata_missing_rows_past_the_checked_items_is_refused_up_front():
    ids = [f"train/{i}" for i in range(10)] + [f"val/{i}" for i in range(8)]
    frame = pd.DataFrame({"id": ids, "brightness": range(18)})
    with pytest.raises(
        ls.ProjectError, match=r"no row for 6 of the 24 samples, e\.g\. \['train/10', 'train/11'"
    ):
        ls.check(project(metadata=frame))


def test_metadata_rows_matching_no_sample_are_a_warning():
    ids = [f"train/{i}" for i in range(16)] + [f"val/{i}" for i in range(8)] + ["test/0"]
    plan = ls.check(project(metadata=pd.DataFrame({"id": ids, "brightness": range(25)})))
    assert plan.metadata_columns == ["brightness"]
    assert any("1 row(s) matching no sample, e.g. ['test/0']" in w for w in plan.warnings)


def test_metadata_shorter_than_the_data_is_refused_when_items_carry_ids():
    items = [
        {"input": x, "target": y, "id": f"img-{i}"} for i, (x, y) in enumerate(image_items(16, 1))
    ]
    frame = pd.DataFrame({"id": [f"img-{i}" for i in range(12)], "brightness": range(12)})
    with pytest.raises(ls.ProjectError, match="12 rows for 16 samples"):
        ls.check(project(data={"train": items}, metadata=frame))


def test_a_mistyped_own_id_stops_the_capture_at_it_and_the_fixed_project_resumes(tmp_path):
    items = [
        {"input": x, "target": y, "id": f"img-{i}"} for i, (x, y) in enumerate(image_items(32, 1))
    ]
    ids = [f"img-{i}" for i in range(32)]
    typo = pd.DataFrame({"id": [*ids[:20], "img-2O", *ids[21:]], "brightness": range(32)})
    out = tmp_path / "run"
    options = dict(out=out, progress=False, insights=False, batch_size=8, chunk_size=8)
    with pytest.raises(
        ls.ProjectError, match=r"\['img-20'\].*stopped at the batch 'img-16' \.\. 'img-23'.*resume"
    ):
        ls.analyze(project(data={"train": items}, metadata=typo), **options)
    fixed = typo.assign(id=ids)
    run = ls.analyze(project(data={"train": items}, metadata=fixed), resume=True, **options)
    assert run.samples["brightness"].tolist() == list(range(32))


def _items_with_ids(ids: list[str], seed: int) -> list[dict]:
    return [
        {"input": x, "target": y, "id": sample_id}
        for sample_id, (x, y) in zip(ids, image_items(len(ids), seed), strict=True)
    ]


def test_samples_sharing_an_id_are_refused_by_the_check_and_by_the_capture(tmp_path):
    names = [f"img_{i:04d}.png" for i in range(20)]
    reused = {"train": _items_with_ids(names, 1), "val": _items_with_ids(names, 2)}
    with pytest.raises(ls.ProjectError, match=r"'img_0000.png' is the id of train/0 and val/0"):
        ls.check(project(data=reused))

    late = [f"val_{i}.png" for i in range(20)]
    late[15] = late[17] = names[5]  # past the items the check reads
    data = {"train": _items_with_ids(names, 1), "val": _items_with_ids(late, 2)}
    ls.check(project(data=data))
    with pytest.raises(
        ls.ProjectError,
        match=r"'img_0005.png' is the id of train/5 and val/15 and val/17: .*overwrite=True",
    ):
        ls.analyze(project(data=data), tmp_path / "run", insights=False, progress=False)
    with pytest.raises(ls.RunStoreError, match=r"is incomplete \(its capture was interrupted\)"):
        ls.open_run(tmp_path / "run")


def test_metadata_with_duplicated_ids_is_refused():
    ids = [f"train/{i}" for i in range(16)] + [f"val/{i}" for i in range(8)]
    frame = pd.DataFrame({"id": [*ids, "train/0"], "brightness": range(25)})
    with pytest.raises(ls.ProjectError, match="duplicated id"):
        ls.check(project(metadata=frame))


def test_missing_metadata_values_are_stored_as_nulls(tmp_path):
    ids = [f"train/{i}" for i in range(16)] + [f"val/{i}" for i in range(8)]
    weather = ["sun", "rain", None, "snow"] * 6
    frame = pd.DataFrame({"id": ids, "weather": pd.Series(weather, dtype="str")})
    frame["exposure"] = [math.nan if i % 5 == 0 else i / 10 for i in range(24)]
    run = ls.analyze(project(metadata=frame), tmp_path / "run", insights=False, progress=False)
    stored = run.samples.set_index("id").loc[ids]
    assert stored["weather"].isna().tolist() == [value is None for value in weather]
    assert stored["weather"].dropna().tolist() == [value for value in weather if value]
    assert stored["exposure"].isna().tolist() == [i % 5 == 0 for i in range(24)]
    assert run.sql("SELECT count(*) FROM samples WHERE weather IS NULL").fetchall() == [(6,)]


def test_a_metadata_column_that_changes_kind_is_refused_naming_both_samples():
    ids = [f"train/{i}" for i in range(16)] + [f"val/{i}" for i in range(8)]
    frame = pd.DataFrame({"id": ids, "camera": ["north", 3] * 12})
    with pytest.raises(
        ls.ProjectError,
        match=r"'camera' mixes kinds.*string for 'train/0' \('north'\) but number for 'train/1'",
    ):
        ls.check(project(metadata=frame))

    def by_subset(subset, index):
        return {"site": index if subset == "train" else f"site-{index}"}

    with pytest.raises(ls.ProjectError, match=r"'site' mixes kinds.*but string for 'val/0'"):
        ls.check(project(metadata=by_subset))


def test_times_with_and_without_a_zone_in_one_column_are_refused_and_zoned_times_kept(tmp_path):
    zone = datetime.timezone(datetime.timedelta(hours=2))

    def mixed(subset, index):
        return {"taken": datetime.datetime(2020, 1, 1, 12, tzinfo=zone if index == 3 else None)}

    with pytest.raises(
        ls.ProjectError, match=r"'taken' mixes kinds.*time for 'train/0'.*zone for 'train/3'"
    ):
        ls.check(project(metadata=mixed))

    def zoned(subset, index):
        return {"taken": datetime.datetime(2020, 1, 1, 12, index, tzinfo=zone)}

    run = ls.analyze(project(metadata=zoned), tmp_path / "run", insights=False, progress=False)
    first = run.samples.set_index("id").loc["train/5", "taken"]
    assert first == pd.Timestamp(datetime.datetime(2020, 1, 1, 12, 5, tzinfo=zone))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("n/a", r"'exposure' mixes kinds.*number for 'train/0' \(0\.5\) but string for 'train/12'"),
        ([1, 2], r"'exposure' of sample 'train/12' holds a list"),
        (2**63 + 5, r"'exposure' of sample 'train/12' holds the integer 9223372036854775813"),
    ],
    ids=["string among numbers", "list", "past 64 bits"],
)
def test_a_bad_frame_value_past_the_checked_items_is_refused_up_front(value, message):
    ids = [f"train/{i}" for i in range(16)] + [f"val/{i}" for i in range(8)]
    values: list = [0.5] * 24 if not isinstance(value, int) else list(range(24))
    values[12] = value  # train/12, past the first 8 items of train that the check runs
    frame = pd.DataFrame({"id": ids, "exposure": pd.Series(values, dtype=object)})
    with pytest.raises(ls.ProjectError, match=message):
        ls.check(project(metadata=frame))


def test_a_frame_of_plain_numbers_and_strings_passes_the_value_check():
    ids = [f"train/{i}" for i in range(16)] + [f"val/{i}" for i in range(8)]
    frame = pd.DataFrame(
        {"id": ids, "site": ["north", None] * 12, "gain": np.arange(24, dtype=np.uint64)}
    )
    assert ls.check(project(metadata=frame)).metadata_columns == ["site", "gain"]


def test_a_column_given_by_the_items_and_by_project_metadata_is_refused():
    items = [
        {"input": x, "target": y, "metadata": {"camera": "item"}} for x, y in image_items(16, 1)
    ]
    ids = [f"train/{i}" for i in range(16)]
    frame = pd.DataFrame({"id": ids, "camera": ["frame"] * 16})
    with pytest.raises(ls.ProjectError, match=r"'camera' comes both from the items' 'metadata'"):
        ls.check(project(data={"train": items}, metadata=frame))
    with pytest.raises(ls.ProjectError, match=r"and from the Project.metadata function"):
        ls.check(project(data={"train": items}, metadata=lambda subset, index: {"camera": "fn"}))


def test_metadata_column_clashing_with_a_stored_column_is_refused():
    ids = [f"train/{i}" for i in range(16)] + [f"val/{i}" for i in range(8)]
    frame = pd.DataFrame({"id": ids, "loss": range(24)})
    with pytest.raises(ls.ProjectError, match="'loss' clashes"):
        ls.check(project(metadata=frame))


def test_nan_outputs_are_refused_before_the_pass():
    model = TinyCNN()
    with torch.no_grad():
        model.fc.bias.fill_(math.nan)
    with pytest.raises(ls.ProjectError, match="outputs on the first batch of 'train' contain NaN"):
        ls.check(project(model=model))


def test_a_nan_sample_in_the_first_batch_is_listed_and_quarantined_alone(tmp_path):
    items = image_items(16, 1)
    items[3] = (items[3][0].clone().fill_(math.nan), items[3][1])
    report = ls.check(project(data={"train": items}))
    assert [w for w in report.warnings if w.startswith("train/")] == [
        "train/3: non-finite (NaN or inf) outputs, loss or activations (it will be quarantined)"
    ]
    run = ls.analyze(
        project(data={"train": items}), tmp_path / "run", insights=False, progress=False
    )
    assert run.quarantine["id"].tolist() == ["train/3"]
    assert len(run.samples) == 15


def test_a_collate_that_does_not_return_inputs_and_targets_is_refused_with_the_form():
    def to_dict(pairs):
        return {"pixel_values": torch.stack([x for x, _ in pairs]), "labels": None}

    with pytest.raises(
        ls.ProjectError, match=r"collate returned a dict with keys \['pixel_values', 'labels'\]"
    ):
        ls.check(project(collate=to_dict))


def test_picture_inputs_that_are_not_float_tensors_are_told_how_to_convert():
    pictures = [(Image.new("RGB", (12, 12)), 0) for _ in range(4)]
    with pytest.raises(ls.ProjectError, match=r"inputs are PIL images.*ToTensor"):
        ls.check(project(data={"train": pictures}))
    arrays = [(np.zeros((12, 12, 3), dtype=np.uint8), 0) for _ in range(4)]
    with pytest.raises(ls.ProjectError, match=r"uint8 arrays of shape \(12, 12, 3\).*permute"):
        ls.check(project(data={"train": arrays}))


def test_labels_that_do_not_look_like_the_tasks_are_named_by_the_check():
    one_based = [(x, i % 3 + 1) for i, (x, _) in enumerate(image_items(16, 1))]
    report = ls.check(project(data={"train": one_based}))
    assert any("'train' look 1-based (from 1 to 3 for 3 logits)" in w for w in report.warnings)
    assert not any("1-based" in w for w in ls.check(project()).warnings)

    class OneLogit(TinyCNN):
        def __init__(self) -> None:
            super().__init__(n_classes=1)

    three_values = [(x, float(i % 3)) for i, (x, _) in enumerate(image_items(16, 1))]
    binary = dict(model=OneLogit(), loss=ls.losses.binary_cross_entropy)
    report = ls.check(project(data={"train": three_values}, **binary))
    assert any("'train' go from 0 to 2: binary cross-entropy" in w for w in report.warnings)
    zero_one = [(x, float(i % 2)) for i, (x, _) in enumerate(image_items(16, 1))]
    assert not ls.check(project(data={"train": zero_one}, **binary)).warnings


def test_empty_subset_is_refused():
    with pytest.raises(ls.ProjectError, match="Subset 'val' is empty"):
        project(data={"train": image_items(4, 1), "val": []})


def test_unindexable_subset_is_refused():
    with pytest.raises(ls.ProjectError, match="cannot be indexed"):
        project(data={"train": iter(image_items(4, 1))})


def test_item_of_the_wrong_form_is_explained():
    data = {"train": [(x, y, "extra") for x, y in image_items(4, 1)]}
    with pytest.raises(ls.ProjectError, match=r"sequence of 3 elements.*\(input, target\)"):
        ls.check(project(data=data))


def test_subset_mixing_labeled_and_unlabeled_items_is_refused():
    items = image_items(4, 1)
    data = {"train": [items[0], (items[1][0],), items[2]]}
    with pytest.raises(ls.ProjectError, match="either labeled or unlabeled"):
        ls.check(project(data=data))


def test_model_factory_must_return_a_module():
    with pytest.raises(ls.ProjectError, match="factory returned a str"):
        ls.check(project(model=lambda: "not a model"))


def test_a_model_factory_that_needs_arguments_is_refused_with_the_fix():
    def build(depth):
        raise AssertionError("never called")

    with pytest.raises(ls.ProjectError, match=r"factory .*build cannot be called.*'depth'.*lambda"):
        ls.check(project(model=build))


def test_metrics_given_as_a_list_are_refused_with_the_form():
    accuracy = ls.Metric(lambda outputs, targets: outputs.argmax(1) == targets, better="higher")
    with pytest.raises(ls.ProjectError, match=r"metrics must be a dict.*got list"):
        project(metrics=[accuracy])


def test_a_metric_returning_its_mean_gets_the_metric_help():
    mean = ls.Metric(lambda o, t: (o.argmax(1) == t).float().mean(), better="higher")
    with pytest.raises(ls.ProjectError, match=r"metric 'acc' returned a single number.*A metric"):
        ls.check(project(metrics={"acc": mean}))


def test_metric_needs_a_direction():
    with pytest.raises(ls.ProjectError, match=r"latentsight.Metric"):
        project(metrics={"accuracy": lambda outputs, targets: outputs.argmax(1) == targets})
    with pytest.raises(ls.ProjectError, match="'higher' or 'lower'"):
        ls.Metric(lambda o, t: o, better="up")


def test_unknown_device_is_refused():
    with pytest.raises(ls.ProjectError, match="not a torch device"):
        ls.check(project(), device="gpu-please")


def _available(device: str) -> bool:
    module = getattr(torch, device, None) if device != "mps" else torch.backends.mps
    return module is not None and module.is_available()


UNUSABLE_DEVICES = [  # devices this machine lacks: the ones it has are captured on
    (device, message)
    for device, message in [
        ("mps", r"Device 'mps' was asked for, but it is not available here \(.*MPS.*\): use 'cpu'"),
        ("xpu", r"Device 'xpu' was asked for, but it is not available here \(.*XPU.*\): use 'cpu'"),
    ]
    if not _available(device)
] + [("meta", r"Device 'meta' holds no values")]


@pytest.mark.parametrize(("device", "message"), UNUSABLE_DEVICES)
def test_a_device_torch_cannot_use_here_is_refused(device, message):
    with pytest.raises(ls.ProjectError, match=message):
        ls.check(project(), device=device)


def test_a_layer_that_never_runs_is_named():
    class WithUnused(TinyCNN):
        def __init__(self):
            super().__init__()
            self.unused = nn.Linear(4, 4)

    with pytest.raises(ls.ProjectError, match=r"\['unused'\] did not run"):
        ls.check(project(model=WithUnused(), layers=["unused"]))


class SequenceFirstText(nn.Module):
    """A GRU left at its default batch_first=False: its output is time x batch x features."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(10, 8)
        self.gru = nn.GRU(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.gru(self.embed(ids).transpose(0, 1))
        return self.head(hidden.mean(dim=0))


class PerImageBackbone(TinyCNN):
    """Runs its convolutions on one image at a time, as detectors taking a list of images do;
    ``per_image_below`` decides from which batch size down it does (0: never)."""

    def __init__(self, per_image_below: int = 10**6) -> None:
        super().__init__()
        self.per_image_below = per_image_below

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) < self.per_image_below:
            maps = torch.cat([self.features(image[None]) for image in x])
        else:
            maps = self.features(x)
        return self.fc(self.pool(maps).flatten(1))


class Siamese(TinyCNN):
    """One encoder applied to the image and to its mirror image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        both = self.pool(self.features(x)) + self.pool(self.features(x.flip(3)))
        return self.fc(both.flatten(1))


def test_a_sequence_first_layer_is_refused_with_its_shape():
    ids = torch.randint(0, 10, (8, 5), generator=torch.Generator().manual_seed(0))
    data = {"train": [(ids[i], i % 3) for i in range(8)]}
    with pytest.raises(
        ls.ProjectError, match=r"'gru'.*shape \(5, 8, 8\) for a batch of 8.*batch_first"
    ):
        ls.check(project(model=SequenceFirstText(), data=data, layers=["gru", "head:input"]))


def test_a_layer_run_once_per_image_or_twice_per_batch_is_refused():
    with pytest.raises(ls.ProjectError, match=r"'features'.*shape \(1, 16, 12, 12\).*each image"):
        ls.check(project(model=PerImageBackbone(), layers=["features"]))
    with pytest.raises(ls.ProjectError, match=r"'features' ran more than once"):
        ls.check(project(model=Siamese(), layers=["features"]))


def test_default_layers_skip_modules_that_do_not_run_once_on_the_whole_batch():
    plan = ls.check(project(model=PerImageBackbone()))
    assert [ref.name for ref, _ in plan.layers] == ["fc:input"]
    assert [ref.name for ref, _ in ls.check(project()).layers] == ["features", "fc:input"]


def test_a_layer_that_stops_running_on_the_whole_batch_stops_the_capture(tmp_path):
    data = {"train": image_items(10, 1)}
    model = PerImageBackbone(per_image_below=4)  # the last batch, of 2, runs image by image
    with pytest.raises(
        ls.ProjectError, match=r"'features'.*for a batch of 2.*stopped at the batch 'train/8' \.\."
    ):
        ls.analyze(
            project(model=model, data=data, layers=["features"]),
            tmp_path / "run",
            batch_size=4,
            chunk_size=4,
            insights=False,
            progress=False,
        )
    resumable = ls.analyze(
        project(model=PerImageBackbone(per_image_below=0), data=data, layers=["features"]),
        tmp_path / "run",
        batch_size=4,
        chunk_size=4,
        resume=True,
        insights=False,
        progress=False,
    )
    assert len(resumable.samples) == 10


def test_check_reports_what_it_found(metadata):
    plan = ls.check(
        project(data={"train": image_items(40, 1), "val": image_items(24, 2)}, metadata=metadata)
    )
    assert [s.name for s in plan.subsets] == ["train", "val"]
    assert [s.size for s in plan.subsets] == [40, 24]
    assert plan.layers_defaulted
    assert [ref.name for ref, _ in plan.layers] == ["features", "fc:input"]
    assert plan.layers[0][1].dims == {"mean": 16, "grid": 256}
    assert plan.output_shape == "(8, 3) float32"
    assert plan.spec.task == "classification" and plan.n_classes == 3
    assert plan.loss_names == ["loss"]
    assert plan.metadata_columns == ["brightness", "source"]


@pytest.mark.parametrize(
    "classes",
    [["a", "a", "b", "c"], ["a", ""], "abc", ["a", 3]],
    ids=["twice", "empty", "str", "int"],
)
def test_class_names_that_are_not_distinct_names_are_refused(classes):
    with pytest.raises(ls.ProjectError, match=r"distinct, non-empty class names"):
        project(classes=classes)


def test_class_names_must_number_the_classes_the_outputs_score():
    n_classes = TinyCNN().fc.out_features
    with pytest.raises(
        ls.ProjectError, match=rf"has {n_classes - 1} names, but the outputs score {n_classes}"
    ):
        ls.check(project(classes=[f"c{i}" for i in range(n_classes - 1)]))


def test_class_names_of_a_regression_are_refused():
    with pytest.raises(ls.ProjectError, match=r"the task is 'regression'"):
        ls.check(project(task="regression", loss=ls.losses.mse, classes=["a", "b"]))


def test_class_names_are_stored_and_name_the_label_concepts(tmp_path):
    n_classes = TinyCNN().fc.out_features
    names = [f"kind-{i}" for i in range(n_classes)]
    run = ls.analyze(project(classes=names), tmp_path / "run", progress=False, insights=False)
    assert ls.open_run(tmp_path / "run").class_names == dict(enumerate(names))
    concepts = run.concepts(save=False)
    labels = {name for name in concepts.vocabulary.names if name.startswith("label == ")}
    present = sorted(set(run.samples["target"]))
    assert labels == {f"label == {names[k]}" for k in present}
    assert concepts.class_names == dict(enumerate(names))


@pytest.mark.parametrize(
    ("weights", "inputs", "said"),
    [
        (torch.float64, torch.float32, "weights are float64 and the items' inputs float32"),
        (torch.float32, np.float64, "weights are float32 and the items' inputs float64"),
        (torch.float16, torch.float32, "weights are float16 and the items' inputs float32"),
    ],
)
def test_inputs_of_another_precision_than_the_weights_are_named(weights, inputs, said):
    rows = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    if inputs is np.float64:
        data = [(row.numpy().astype(np.float64), 0) for row in rows]
    else:
        data = [(row.to(inputs), 0) for row in rows]
    model = nn.Sequential(nn.Linear(4, 2)).to(weights)
    project = ls.Project(model=model, data={"train": data}, loss=ls.losses.cross_entropy)
    with pytest.raises(ls.ProjectError, match=rf"{said}: give it inputs of its own dtype"):
        ls.check(project)
