"""Reading an open run stays honest: it notices a run or a latent file replaced under it, refuses a run it cannot write before any work with the option
that avoids writing, names wrong argument types and near layer names, and tells a run still
being captured from an interrupted one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TinyCNN, image_items

import latentsight as ls
from latentsight.errors import OutputPathError
from latentsight.store.manifest import MANIFEST, STATUS_CAPTURING
from latentsight.store.writer import _lock, _unlock


def tiny_project(seed: int = 0) -> ls.Project:
    """The tiny CNN over 24 random images."""
    return ls.Project(
        model=TinyCNN(seed=seed), data={"train": image_items(24, 1)}, loss=ls.losses.cross_entropy
    )


@pytest.fixture(scope="module")
def project() -> ls.Project:
    return tiny_project()


@pytest.fixture(scope="module")
def run(project, tmp_path_factory) -> ls.Run:
    out = tmp_path_factory.mktemp("reading") / "run"
    return ls.analyze(project, out, progress=False, insights=False)


@pytest.fixture
def copy(run, tmp_path) -> Path:
    """A copy of the run that a test may damage."""
    return shutil.copytree(run.path, tmp_path / "runs" / "x")


def test_a_run_opened_by_a_relative_path_says_so_after_a_chdir(copy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opened = ls.open_run("runs/x")
    monkeypatch.chdir(tmp_path / "runs")
    with pytest.raises(ls.RunStoreError, match=r"relative path 'runs/x' in .*absolute path"):
        opened.latent("features")
    monkeypatch.chdir(tmp_path)
    assert opened.latent("features").shape == (24, 16)


def test_a_run_captured_again_after_it_was_opened_is_refused(copy):
    opened = ls.open_run(copy)
    opened.latent("features")
    ls.analyze(tiny_project(seed=1), copy, overwrite=True, progress=False, insights=False)
    replaced = rf"{copy} was replaced after it was opened.*latentsight\.open_run\('{copy}'\)"
    with pytest.raises(ls.RunStoreError, match=replaced):
        opened.latent("features")
    with pytest.raises(ls.RunStoreError, match=replaced):
        opened.samples  # noqa: B018 - reading it is the point
    assert ls.open_run(copy).latent("features").shape == (24, 16)


@pytest.mark.parametrize(
    ("replacement", "problem"),
    [
        (lambda rows: np.zeros((24, 17), np.float32), r"have shape \(24, 17\) float32"),
        (lambda rows: rows.astype(np.float64), r"float64, expected \(24, 16\) float32"),
        (lambda rows: rows[::-1].copy(), r"not the ones captured"),
    ],
    ids=["shape", "dtype", "rows"],
)
def test_a_latent_file_replaced_after_its_first_read_is_checked_again(copy, replacement, problem):
    opened = ls.open_run(copy)
    rows = np.array(opened.latent("features"))
    np.save(copy / "latents" / "features.mean.npy", replacement(rows))
    with pytest.raises(ls.RunStoreError, match=problem):
        opened.latent("features")


@pytest.fixture
def unwritable(copy):
    """Block writes into the copied run where a method stores its results: by making it
    read-only where permissions bind, else (as root, whom they do not bind) by a file where the
    method's folder must go. Yields a function of the folder that returns what blocks it."""

    def block(folder: str) -> Path:
        copy.chmod(0o555)
        try:
            (copy / ".probe").touch()
        except PermissionError:
            return copy
        (copy / ".probe").unlink()
        copy.chmod(0o755)
        (copy / folder).write_text("a file where a folder goes")
        return copy / folder

    yield block
    copy.chmod(0o755)


STORING_CALLS = {
    "concepts": ("concepts", lambda run, **o: run.concepts(**o), "save", r"pass save=False"),
    "discover_concepts": (
        "concepts",
        lambda run, **o: run.discover_concepts("fc:input", per_class=False, k=2, **o),
        "save",
        r"pass save=False",
    ),
    "explain": (
        "explanations",
        lambda run, **o: run.explain("train/0", method="saliency", **o),
        "cache",
        r"pass cache=False",
    ),
    "analyze": (
        "analysis",
        lambda run: run.analyze(progress=False, settings=ls.AnalysisSettings(map_method="pca")),
        None,
        r"no option to keep them in memory only; copy the run to a directory you can write to",
    ),
}


@pytest.mark.parametrize("method", list(STORING_CALLS))
def test_a_run_that_cannot_be_written_is_refused_naming_the_option_that_avoids_writing(
    unwritable, copy, project, method
):
    folder, call, option, fix = STORING_CALLS[method]
    blocked = unwritable(folder)
    opened = ls.open_run(copy, project=project)
    with pytest.raises(OutputPathError, match=fix) as raised:
        call(opened)
    assert str(blocked) in str(raised.value)
    if option is not None:  # the option named does what it says on the same run
        assert call(opened, **{option: False}) is not None


def test_cached_maps_are_read_from_a_run_that_cannot_be_written(copy, project, monkeypatch):
    import latentsight.explain.explainer as explainer

    opened = ls.open_run(copy, project=project)
    cached = opened.explain(["train/0"], method="saliency").maps

    def unwritable(path, **options):
        raise OutputPathError(f"Cannot write {path}: permission denied; {options['fix']}.")

    def no_computing(*args, **options):
        raise AssertionError("nothing may be computed")

    monkeypatch.setattr(explainer, "check_writable", unwritable)
    monkeypatch.setattr(explainer._Explainer, "_compute", no_computing)
    again = ls.open_run(copy, project=project).explain(["train/0"], method="saliency")
    np.testing.assert_array_equal(again.maps, cached)
    with pytest.raises(OutputPathError, match="pass cache=False"):
        opened.explain(["train/1"], method="saliency")


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (
            lambda run: run.latent(4),
            r"run\.latent\(layer\) takes a recorded layer name \(str\), one of "
            r"\['features', 'fc:input'\]; got int 4\.",
        ),
        (
            lambda run: run.latent("features", ["mean"]),
            r"run\.latent\(view\) takes a view name \(str\), one of \['mean', 'grid'\]; got list "
            r"\['mean'\]\.",
        ),
        (
            lambda run: run.render(3),
            r"run\.render\(sample_id\) takes one sample id \(str\), as in run\.samples\['id'\]; "
            r"got int 3\.",
        ),
        (
            lambda run: run.concepts(4),
            r"run\.concepts\(layer\) takes a recorded layer name \(str\), several, or None "
            r"for all of \['features', 'fc:input'\]; got int 4\.",
        ),
        (
            lambda run: run.attach(None),
            r"run\.attach\(project\) takes the latentsight\.Project .*; got NoneType None\.",
        ),
        (
            lambda run: ls.open_run(None),
            r"latentsight\.open_run\(path\) takes the run directory's path \(str or Path\); got "
            r"NoneType None\.",
        ),
    ],
    ids=["latent-layer", "latent-view", "render", "concepts", "attach", "open_run"],
)
def test_an_argument_of_the_wrong_type_is_named_with_what_it_takes(run, call, named):
    with pytest.raises(TypeError, match=named) as raised:
        call(run)
    assert isinstance(raised.value, ls.LatentsightError)


def test_concepts_take_the_layer_names_in_any_collection(run):
    listed = run.concepts(["features"], save=False, progress=False).table
    for names in (("features",), {"features"}, {"features": 1}.keys(), np.array(["features"])):
        named = run.concepts(names, save=False, progress=False).table
        assert named.equals(listed), type(names)


@pytest.mark.parametrize(
    ("asked", "meant"), [("fc", "fc:input"), ("fc:output", "fc:input"), ("featurs", "features")]
)
def test_a_layer_name_near_a_recorded_one_is_suggested(run, asked, meant):
    with pytest.raises(ls.NotRecordedError, match=rf"did you mean '{meant}'\?"):
        run.latent(asked)


def test_activations_of_a_recorded_module_input_say_what_it_is(run, project):
    opened = ls.open_run(run.path, project=project)
    with pytest.raises(
        ls.LatentsightError, match=r"'fc:input' is what enters module 'fc'"
    ) as raised:
        opened.activations("train/0", "fc:input")
    assert "not a module" not in str(raised.value)
    assert "run.latent('fc:input')" in str(raised.value)


def test_a_run_still_being_captured_is_in_progress_not_interrupted(copy):
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["status"] = STATUS_CAPTURING  # what a capture writes first, and leaves if killed
    (copy / MANIFEST).write_text(json.dumps(manifest))
    lock = _lock(copy)  # as the capture writing the run holds it
    try:
        with pytest.raises(ls.RunStoreError, match=r"in progress.*Wait for that capture") as held:
            ls.open_run(copy)
        assert "interrupted" not in str(held.value)
    finally:
        _unlock(copy, lock)
    with pytest.raises(ls.RunStoreError, match=r"its capture was interrupted.*--resume"):
        ls.open_run(copy)
