"""The run store refuses what is broken and never clobbers what it did not write."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TinyCNN
from torch import nn

import latentsight as ls
from latentsight.store.manifest import SCHEMA_VERSION


@pytest.fixture
def run(tmp_path, data, metadata) -> ls.Run:
    project = ls.Project(
        model=TinyCNN(), data=data, loss=ls.losses.cross_entropy, metadata=metadata
    )
    return ls.analyze(project, tmp_path / "run", progress=False, insights=False)


def test_manifest_holds_provenance_settings_and_layout(run):
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["status"] == "complete"
    assert len(manifest["provenance"]["model_fingerprint"]) == 64
    assert manifest["provenance"]["model_parameters"] == sum(
        p.numel() for p in TinyCNN().parameters()
    )
    assert manifest["settings"]["batch_size"] == 64 and manifest["settings"]["device"] == "cpu"
    assert [s["name"] for s in manifest["subsets"]] == ["train", "val"]
    assert manifest["layers"][0]["sample_shape"] == [16, 12, 12]
    assert set(manifest["timings"]) >= {"check_s", "capture_s"}
    assert manifest["n_samples"] == 64 and manifest["n_quarantined"] == 0


def test_reopening_needs_no_model(run):
    reopened = ls.open_run(run.path)
    assert reopened.layers == ["features", "fc:input"]
    assert reopened.views("features") == ["mean", "grid"]
    np.testing.assert_array_equal(reopened.latent("features"), run.latent("features"))
    with pytest.raises(ls.NotRecordedError, match=r"recorded layers: \['features', 'fc:input'\]"):
        reopened.latent("classifier")
    with pytest.raises(ls.NotRecordedError, match="no 'grid' view"):
        reopened.latent("fc:input", view="grid")


def test_missing_directory_and_non_run_directory(tmp_path):
    with pytest.raises(ls.RunStoreError, match="There is no run at"):
        ls.open_run(tmp_path / "nothing")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ls.RunStoreError, match=r"no manifest.json"):
        ls.open_run(tmp_path / "photos")


def test_corrupt_manifest(run):
    (run.path / "manifest.json").write_text("{ not json")
    with pytest.raises(ls.RunStoreError, match=r"manifest of .* is corrupt"):
        ls.open_run(run.path)


def test_unsupported_schema_version(run):
    manifest = json.loads((run.path / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (run.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ls.RunStoreError, match="schema version 99"):
        ls.open_run(run.path)


def test_truncated_latent_array(run):
    file = run.path / run.manifest["layers"][0]["views"]["mean"]["file"]
    file.write_bytes(file.read_bytes()[:-100])
    with pytest.raises(ls.RunStoreError, match=r"latents of layer 'features' \(mean\).*corrupt"):
        ls.open_run(run.path)


def test_missing_samples_table(run):
    (run.path / "samples.parquet").unlink()
    with pytest.raises(ls.RunStoreError, match=r"samples table .* missing or corrupt"):
        ls.open_run(run.path)


def test_samples_table_of_the_wrong_length(run, tmp_path, data):
    other = ls.analyze(
        ls.Project(model=TinyCNN(), data={"train": data["train"]}, loss=ls.losses.cross_entropy),
        tmp_path / "other",
        progress=False,
        insights=False,
    )
    (run.path / "samples.parquet").write_bytes((other.path / "samples.parquet").read_bytes())
    with pytest.raises(ls.RunStoreError, match="has 40 rows but the manifest says 64"):
        ls.open_run(run.path)


def test_existing_runs_are_not_replaced_silently(run, data):
    project = ls.Project(model=TinyCNN(seed=3), data=data, loss=ls.losses.cross_entropy)
    with pytest.raises(ls.RunStoreError, match=r"complete run already exists.*overwrite=True"):
        ls.analyze(project, run.path, progress=False, insights=False)
    replaced = ls.analyze(project, run.path, overwrite=True, progress=False, insights=False)
    assert (
        replaced.manifest["provenance"]["model_fingerprint"]
        != run.manifest["provenance"]["model_fingerprint"]
    )


def test_overwrite_replaces_a_run_of_another_schema_version(run, data):
    manifest = run.path / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"schema_version": 3', '"schema_version": 2'))
    with pytest.raises(ls.RunStoreError, match="schema version 2"):
        ls.open_run(run.path)
    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy)
    replaced = ls.analyze(project, run.path, overwrite=True, progress=False, insights=False)
    assert replaced.manifest["schema_version"] == 3


def test_an_out_path_that_is_a_file_is_refused_and_kept(tmp_path, data):
    file = tmp_path / "run.txt"
    file.write_text("precious")
    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy)
    with pytest.raises(ls.RunStoreError, match="is a file: --out must name a directory"):
        ls.analyze(project, file, overwrite=True, progress=False, insights=False)
    assert file.read_text() == "precious"


def test_a_directory_that_is_not_a_run_is_never_deleted(tmp_path, data):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy)
    with pytest.raises(ls.RunStoreError, match="not a latentsight run"):
        ls.analyze(project, folder, overwrite=True, progress=False, insights=False)
    assert (folder / "notes.txt").read_text() == "precious"


def test_another_tools_manifest_is_not_taken_for_a_run(tmp_path, data):
    folder = tmp_path / "webapp"
    (folder / "src").mkdir(parents=True)
    (folder / "manifest.json").write_text('{"name": "my-webapp"}')
    (folder / "src" / "app.js").write_text("precious")
    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy)
    with pytest.raises(ls.RunStoreError, match="not a latentsight run"):
        ls.analyze(project, folder, overwrite=True, progress=False, insights=False)
    assert (folder / "src" / "app.js").read_text() == "precious"


def test_overwrite_refuses_a_run_holding_files_it_did_not_write(tmp_path, data):
    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy)
    out = tmp_path / "run"
    ls.analyze(project, out, progress=False, insights=False)
    (out / "my_notes.txt").write_text("precious")
    (out / "inner").mkdir()
    with pytest.raises(
        ls.RunStoreError, match=r"files latentsight did not write \(inner, my_notes"
    ):
        ls.analyze(project, out, overwrite=True, progress=False, insights=False)
    assert (out / "my_notes.txt").read_text() == "precious"
    ls.open_run(out)  # the run is untouched too


@pytest.mark.parametrize("damage", ["unreadable", "deleted"])
def test_a_run_whose_manifest_is_damaged_is_replaced_by_overwrite_only(tmp_path, data, damage):
    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy)
    out = tmp_path / "run"
    ls.analyze(project, out, progress=False, insights=False)
    if damage == "unreadable":
        (out / "manifest.json").write_text("{bad")
    else:
        (out / "manifest.json").unlink()
    with pytest.raises(ls.RunStoreError, match=r"manifest"):
        ls.open_run(out)
    options = dict(progress=False, insights=False)
    message = (
        r"damaged latentsight run .* pass overwrite=True" if damage == "deleted" else r"--overwrite"
    )
    with pytest.raises(ls.RunStoreError, match=message):
        ls.analyze(project, out, **options)
    assert len(ls.analyze(project, out, overwrite=True, **options).samples) == 64
    assert len(ls.open_run(out).samples) == 64


def test_resume_and_overwrite_together_are_refused(tmp_path, data):
    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy)
    with pytest.raises(ls.ProjectError, match=r"resume=True and overwrite=True"):
        ls.analyze(project, tmp_path / "run", resume=True, overwrite=True, progress=False)
    assert not (tmp_path / "run").exists()


def test_overwrite_replaces_a_run_given_as_the_current_directory_or_a_link(
    tmp_path, data, monkeypatch
):
    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy)
    out = tmp_path / "run"
    ls.analyze(project, out, progress=False, insights=False)
    monkeypatch.chdir(out)
    replaced = ls.analyze(project, ".", overwrite=True, progress=False, insights=False)
    assert len(replaced.samples) == 64
    link = tmp_path / "latest"
    link.symlink_to(out, target_is_directory=True)
    ls.analyze(project, link, overwrite=True, progress=False, insights=False)
    assert link.is_symlink() and len(ls.open_run(out).samples) == 64


class Fragile(nn.Module):
    """Fails on inputs whose first pixel is negative, returns NaN when it is above 0.99."""

    def __init__(self):
        super().__init__()
        self.net = TinyCNN()

    def forward(self, x):
        if (x[:, 0, 0, 0] < 0).any():
            raise RuntimeError("negative pixel")
        out = self.net(x)
        return torch.where((x[:, 0, 0, 0] > 0.99)[:, None], torch.full_like(out, float("nan")), out)


def _fragile_data(data):
    train = list(data["train"])
    x, y = train[5]
    train[5] = (
        x.clone().index_put_(
            (torch.tensor(0), torch.tensor(0), torch.tensor(0)), torch.tensor(-1.0)
        ),
        y,
    )
    x, y = train[30]
    train[30] = (
        x.clone().index_put_(
            (torch.tensor(0), torch.tensor(0), torch.tensor(0)), torch.tensor(1.5)
        ),
        y,
    )
    return {"train": train, "val": data["val"]}


def test_failing_and_nan_samples_are_quarantined_and_the_run_goes_on(tmp_path, data):
    project = ls.Project(
        model=Fragile(),
        data=_fragile_data(data),
        loss=ls.losses.cross_entropy,
        layers=["net.features"],
    )
    run = ls.analyze(project, tmp_path / "run", batch_size=8, progress=False, insights=False)
    assert list(run.quarantine["id"]) == ["train/5", "train/30"]
    assert "negative pixel" in run.quarantine["error"][0]
    assert "non-finite" in run.quarantine["error"][1]
    assert len(run.samples) == 62 and "train/5" not in set(run.samples["id"])
    assert run.latent("net.features").shape == (62, 16)
    assert list(run.samples["row"]) == list(range(62))
    inputs = torch.stack([x for x, _ in data["val"]])
    with torch.no_grad():
        expected = project.model.net.features(inputs).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(run.latent("net.features")[-24:], expected, rtol=1e-5, atol=1e-6)
    assert run.manifest["n_quarantined"] == 2


def test_fail_fast_stops_at_the_first_failing_sample(tmp_path, data):
    project = ls.Project(
        model=Fragile(),
        data=_fragile_data(data),
        loss=ls.losses.cross_entropy,
        layers=["net.features"],
    )
    with pytest.raises(ls.CaptureError, match=r"train/5.*negative pixel.*--resume"):
        ls.analyze(
            project, tmp_path / "run", batch_size=8, fail_fast=True, progress=False, insights=False
        )
