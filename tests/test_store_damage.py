"""A damaged run is refused when it is opened, with a RunStoreError that names what is wrong and
how to fix it, instead of a raw traceback later or a wrong diagnosis."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import TinyCNN, image_items
from torch import nn
from typer.testing import CliRunner

import latentsight as ls
from latentsight.cli import app
from latentsight.store.manifest import read_manifest

RECAPTURE = r"capture it again \(`latentsight analyze \.\.\. --overwrite`\)"
RECREATE = r"re-create the run with `latentsight analyze \.\.\. --overwrite`"


def _data() -> dict[str, list]:
    return {"train": image_items(40, seed=1), "val": image_items(24, seed=2)}


def _capture(out, *, renders=True, model=None, data=None):
    project = ls.Project(
        model=model or TinyCNN(), data=data or _data(), loss=ls.losses.cross_entropy
    )
    return ls.analyze(
        project,
        out,
        batch_size=16,
        chunk_size=16,
        renders=renders,
        progress=False,
        insights=False,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A fresh run of 64 samples with renders in 5 parts (chunks of 16), built once."""
    return _capture(tmp_path_factory.mktemp("pristine") / "run").path


@pytest.fixture(scope="module")
def other_run(tmp_path_factory):
    """A run of the same data through another model, without renders, built once."""
    out = tmp_path_factory.mktemp("other") / "run"
    return _capture(out, renders=False, model=TinyCNN(seed=1)).path


@pytest.fixture
def run_dir(pristine, tmp_path):
    """A copy of the pristine run, to damage."""
    return shutil.copytree(pristine, tmp_path / "run")


def _edit_manifest(run_dir, change):
    file = run_dir / "manifest.json"
    manifest = json.loads(file.read_text())
    change(manifest)
    file.write_text(json.dumps(manifest))


def _refused(run_dir, pattern):
    with pytest.raises(ls.RunStoreError, match=pattern):
        ls.open_run(run_dir)


# -- runs that must still open ------------------------------------------------------------------


def test_a_fresh_run_opens_and_reads(pristine):
    run = ls.open_run(pristine)
    manifest = run.manifest
    assert manifest["settings"]["renders"] is True and "check_warnings" in manifest
    assert len(sorted((pristine / "renders").glob("part-*.parquet"))) == 5
    assert len(run.samples) == 64 and len(run.quarantine) == 0
    assert run.latent("features").shape == (64, 16)
    assert run.render("val/3") is not None
    _read_every_view(run)


def _read_every_view(run):
    """Read every layer view, which checks each one's digest, recorded for each at capture."""
    for entry in run.manifest["layers"]:
        for view, spec in entry["views"].items():
            assert len(spec["rows_digest"]) == 32
            assert len(run.latent(entry["name"], view)) == run.manifest["n_samples"]


def test_a_run_without_renders_opens(other_run):
    run = ls.open_run(other_run)
    assert not (run.path / "renders").exists() and run.manifest["settings"]["renders"] is False
    with pytest.raises(ls.NotRecordedError, match="stored no renders"):
        run.render("val/3")


class FailsOnNegative(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = TinyCNN()

    def forward(self, x):
        if (x[:, 0, 0, 0] < 0).any():
            raise RuntimeError("negative pixel")
        return self.net(x)


def test_a_run_with_quarantined_samples_opens_its_renders_count_only_kept_samples(tmp_path):
    data = _data()
    x, y = data["train"][5]
    data["train"][5] = (x.clone().index_put_((torch.tensor(0),) * 3, torch.tensor(-1.0)), y)
    run = ls.open_run(_capture(tmp_path / "run", model=FailsOnNegative(), data=data).path)
    assert run.manifest["n_samples"] == 63 and list(run.quarantine["id"]) == ["train/5"]
    assert run.render("train/6") is not None
    _read_every_view(run)  # the digests are of the arrays without the quarantined row


def test_newer_optional_fields_and_unknown_fields_are_accepted(run_dir):
    _edit_manifest(
        run_dir,
        lambda m: m.update(
            check_warnings=["labels look 1-based"],
            project_spec={"target": "x.py:project", "working_directory": "/"},
            a_field_of_a_newer_version={"anything": [1, 2]},
        ),
    )
    ls.open_run(run_dir)
    _edit_manifest(run_dir, lambda m: [m.pop(k) for k in ("check_warnings", "classes")])
    ls.open_run(run_dir)


def test_a_run_still_capturing_passes_the_manifest_check_and_is_refused_as_incomplete(run_dir):
    _edit_manifest(
        run_dir,
        lambda m: [m.update(status="capturing"), m.pop("n_samples"), m.pop("n_quarantined")],
    )
    assert read_manifest(run_dir)["status"] == "capturing"  # what a resume reads
    _refused(run_dir, r"is incomplete \(its capture was interrupted\).*--resume")


# -- 1. the manifest ----------------------------------------------------------------------------


def _drop(*path):
    def change(manifest):
        for key in path[:-1]:
            manifest = manifest[key]
        del manifest[path[-1]]

    return change


def _set(value, *path):
    def change(manifest):
        for key in path[:-1]:
            manifest = manifest[key]
        manifest[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_drop("n_samples"), r"field 'n_samples' is missing \(an int was expected\)"),
        (_set(None, "n_samples"), r"field 'n_samples' is null \(an int was expected\)"),
        (_set("64", "n_samples"), r"field 'n_samples' is the string \"64\" \(an int was"),
        (_set(True, "n_samples"), r"field 'n_samples' is the boolean true \(an int was"),
        (_drop("layers"), r"field 'layers' is missing \(a list was expected\)"),
        (_set(None, "layers"), r"field 'layers' is null \(a list was expected\)"),
        (_drop("layers", 0, "views"), r"field 'layers\[0\]\.views' is missing \(an object"),
        (
            _drop("layers", 1, "views", "mean", "dim"),
            r"field 'layers\[1\]\.views\.mean\.dim' is missing \(an int was expected\)",
        ),
        (
            _drop("layers", 0, "views", "grid", "file"),
            r"field 'layers\[0\]\.views\.grid\.file' is missing \(a string was expected\)",
        ),
        (_drop("subsets"), r"field 'subsets' is missing \(a list was expected\)"),
        (_set([{"name": "train"}], "subsets"), r"field 'subsets\[0\]\.size' is missing"),
        (_drop("task"), r"field 'task' is missing \(a string was expected\)"),
        (_drop("provenance"), r"field 'provenance' is missing \(an object was expected\)"),
        (_drop("provenance", "model_fingerprint"), r"field 'provenance\.model_fingerprint'"),
        (_drop("name"), r"field 'name' is missing \(a string was expected\)"),
        (_set(5, "classes"), r"field 'classes' is the int 5 \(a list or null was expected\)"),
        (_set(["a", 1], "classes"), r"field 'classes\[1\]' is the int 1 \(a string was"),
        (_set("yes", "settings", "renders"), r"field 'settings\.renders' is the string"),
        (_set("3", "schema_version"), r"field 'schema_version' is the string \"3\" \(an int"),
    ],
)
def test_a_damaged_manifest_names_the_field_and_the_fix(run_dir, change, problem):
    _edit_manifest(run_dir, change)
    _refused(run_dir, rf"manifest\.json of .*run is damaged: {problem}.*{RECAPTURE}")


def test_a_manifest_of_another_schema_version_keeps_its_message(run_dir):
    _edit_manifest(run_dir, _set(2, "schema_version"))
    _refused(run_dir, r"uses run schema version 2, and this latentsight reads version 3")


def test_every_surface_gets_the_clear_message(run_dir):
    _edit_manifest(run_dir, _drop("subsets"))
    for command in (["info"], ["insights"], ["report", "--out", str(run_dir / "r.html")]):
        result = CliRunner().invoke(app, [command[0], str(run_dir), *command[1:]])
        assert result.exit_code == 2, (command, result.output)
        assert "field 'subsets' is missing" in " ".join(result.output.split()), command
        assert result.exception is None or isinstance(result.exception, SystemExit)


# -- 2. the quarantine table --------------------------------------------------------------------


def test_a_deleted_quarantine_table(run_dir):
    (run_dir / "quarantine.parquet").unlink()
    _refused(
        run_dir,
        rf"quarantine table of .* is missing \(its quarantine\.parquet is gone\); "
        rf"{RECREATE}",
    )


def test_a_truncated_quarantine_table(run_dir):
    file = run_dir / "quarantine.parquet"
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    _refused(
        run_dir, rf"quarantine table of .* is missing or corrupt \(.*magic bytes.*\); {RECREATE}"
    )


# -- 3. the renders -----------------------------------------------------------------------------


def test_deleted_renders_are_not_taken_for_a_run_without_renders(run_dir):
    shutil.rmtree(run_dir / "renders")
    _refused(
        run_dir,
        rf"renders of .* are missing \(renders/ is gone\), though the run was "
        rf"captured with renders: {RECREATE}",
    )


def test_a_deleted_render_part(run_dir):
    (run_dir / "renders" / "part-000002.parquet").unlink()
    _refused(
        run_dir,
        rf"renders of .* are incomplete: renders/part-000002\.parquet is missing; "
        rf"{RECREATE}",
    )


def test_a_deleted_last_render_part_leaves_too_few_rows(run_dir):
    (run_dir / "renders" / "part-000004.parquet").unlink()
    _refused(run_dir, rf"renders of .* hold 56 rows but the run has 64 samples.*{RECREATE}")


def test_a_truncated_render_part(run_dir):
    part = run_dir / "renders" / "part-000003.parquet"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    _refused(
        run_dir,
        rf"renders of .* are corrupt: renders/part-000003\.parquet cannot be read "
        rf"\(.*magic bytes.*\); {RECREATE}",
    )


# -- 4. the latents -----------------------------------------------------------------------------


def test_a_latent_array_with_bytes_appended(run_dir):
    file = run_dir / "latents" / "features.mean.npy"
    with file.open("ab") as handle:
        handle.write(b"\0" * 4096)
    _refused(
        run_dir,
        r"latents of layer 'features' \(mean\) in .* are corrupt: features\.mean\.npy "
        r"has \d+ bytes, but its header and 64 x 16 float32 values make \d+ \(\+4096\); "
        r"re-create the run with --overwrite",
    )


def test_a_latent_array_that_is_not_npy(run_dir):
    file = run_dir / "latents" / "features.mean.npy"
    with file.open("wb") as handle:
        np.savez(handle, a=np.zeros(3))
    _refused(run_dir, r"latents of layer 'features' \(mean\) .* corrupt.*--overwrite")


def test_a_latent_array_cut_to_nothing(run_dir):
    (run_dir / "latents" / "features.mean.npy").write_bytes(b"")
    _refused(run_dir, r"latents of layer 'features' \(mean\) .* missing or corrupt.*--overwrite")


def _latents(run_dir, name="fc@input.mean.npy"):
    return run_dir / "latents" / name


NOT_CAPTURED = (
    r"latents of layer {layer} \({view}\) in .* are not the ones captured: rows of "
    r"latents/{file} differ from the digest in the manifest \(rows reordered, or the file "
    rf"replaced by another run's\); {RECREATE}"
)


def test_reordered_latent_rows_are_refused_when_the_layer_is_first_read(run_dir):
    file = _latents(run_dir)
    np.save(file, np.load(file)[::-1])
    run = ls.open_run(run_dir)  # opening reads the arrays' headers only
    problem = NOT_CAPTURED.format(layer="'fc:input'", view="mean", file=r"fc@input\.mean\.npy")
    with pytest.raises(ls.RunStoreError, match=problem):
        run.latent("fc:input")
    assert run.latent("features").shape == (64, 16)  # the other arrays are still read
    result = CliRunner().invoke(app, ["insights", str(run_dir)])  # analyses fc:input
    assert result.exit_code == 2, result.output
    assert "are not the ones captured" in " ".join(result.output.split())


def test_a_latent_file_of_another_run_of_the_same_shape_is_refused(run_dir, other_run):
    name = "features.grid.npy"
    shutil.copyfile(_latents(other_run, name), _latents(run_dir, name))
    problem = NOT_CAPTURED.format(layer="'features'", view="grid", file=r"features\.grid\.npy")
    with pytest.raises(ls.RunStoreError, match=problem):
        ls.open_run(run_dir).latent("features", "grid")


def test_a_run_recorded_without_digests_reads_its_latents_unchecked(run_dir):
    _edit_manifest(
        run_dir,
        lambda m: [spec.pop("rows_digest") for e in m["layers"] for spec in e["views"].values()],
    )
    reordered = np.load(_latents(run_dir))[::-1]
    np.save(_latents(run_dir), reordered)
    assert np.array_equal(ls.open_run(run_dir).latent("fc:input"), reordered)


# -- 5. the analysis ----------------------------------------------------------------------------

AGAIN = r"analyse the run again with `latentsight insights .*run --recompute`"


def _cut_short(name):
    def damage(folder):
        table = pq.read_table(folder / name)
        pq.write_table(table.slice(0, table.num_rows // 2), folder / name)

    return damage


def _delete(name):
    return lambda folder: (folder / name).unlink()


def _truncate(name):
    def damage(folder):
        file = folder / name
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])

    return damage


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (
            _cut_short("map.parquet"),
            r"is incomplete: analysis/map\.parquet has 280 rows but the run "
            r"has 560 samples \(the file was replaced or cut short\)",
        ),
        (_cut_short("neighbours.parquet"), r"analysis/neighbours\.parquet has 280 rows"),
        (_cut_short("scores.parquet"), r"analysis/scores\.parquet has 280 rows"),
        (_delete("neighbours.parquet"), r"is incomplete: it has no analysis/neighbours\.parquet"),
        (_delete("scores.parquet"), r"is incomplete: it has no analysis/scores\.parquet"),
        (_delete("clusters.parquet"), r"it has no analysis/clusters\.parquet"),
        (_truncate("clusters.parquet"), r"analysis file .*clusters\.parquet is corrupt \("),
    ],
    ids=[
        "map-cut-short",
        "neighbours-cut-short",
        "scores-cut-short",
        "neighbours-deleted",
        "scores-deleted",
        "clusters-deleted",
        "clusters-truncated",
    ],
)
def test_a_damaged_analysis_is_refused_by_every_reader_and_the_report(
    dashboard_run, tmp_path, damage, problem
):
    run_dir = shutil.copytree(dashboard_run.path, tmp_path / "run")
    damage(run_dir / "analysis")
    run = ls.open_run(run_dir)
    assert run.manifest["n_samples"] == 560
    for reader in ("map", "clusters", "neighbours", "scores", "insights"):
        with pytest.raises(ls.RunStoreError, match=rf"{problem}.*{AGAIN}"):
            getattr(run, reader)
    assert run.analysis_info["layer"]  # how it was made stays readable, for --recompute to name
    page = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(page)])
    assert result.exit_code == 2 and not page.exists(), result.output
    assert "--recompute`" in " ".join(result.output.split())


def test_an_analysis_copied_from_another_capture_is_refused(pristine, other_run, tmp_path):
    """Same data, same number of samples, another model: the copied analysis has one row per
    sample as it should, and is still refused, since it describes the other model's latents."""
    runs = [
        ls.open_run(shutil.copytree(run, tmp_path / name))
        for run, name in ((pristine, "run"), (other_run, "other"))
    ]
    for run in runs:
        run.analyze(settings=ls.AnalysisSettings(map_method="pca"), progress=False)
    this, other = runs
    assert len(this.map) == len(other.map) == 64
    shutil.rmtree(this.path / "analysis")
    shutil.copytree(other.path / "analysis", this.path / "analysis")
    reopened = ls.open_run(this.path)
    for reader in ("map", "insights"):
        with pytest.raises(ls.RunStoreError, match=rf"was made for another capture.*{AGAIN}"):
            getattr(reopened, reader)
