"""The attribution methods' names live in one torch-free table: the CLI and the Python API take
the same names and short names, and reading cached maps (the report) imports neither torch nor
Captum."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import latentsight as ls
from latentsight.attribution_methods import ALIASES, KINDS, method_name
from latentsight.cli import app
from latentsight.errors import ExplanationError
from latentsight.explain.attribution import METHODS, method_class

PROJECT = """
import latentsight as ls
from conftest import TinyCNN, image_items

project = ls.Project(
    model=TinyCNN(),
    data={"train": image_items(40, seed=1), "val": image_items(24, seed=2)},
    loss=ls.losses.cross_entropy,
    name="tiny",
)
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[ls.Run, str]:
    """An analysed TinyCNN run (model attached) and the ``file.py:project`` that loads it."""
    from latentsight._loading import load_project

    root = tmp_path_factory.mktemp("methods")
    module = root / "tiny_project.py"
    module.write_text(PROJECT)
    target = f"{module}:project"
    run = ls.analyze(
        load_project(target),
        root / "run",
        progress=False,
        analysis=ls.AnalysisSettings(map_method="pca"),
    )
    return run, target


def test_the_table_names_every_method_and_their_kinds():
    assert set(KINDS) == set(METHODS)
    for name, method in METHODS.items():
        assert (method.signed, method.layered) == (KINDS[name].signed, KINDS[name].layered)
    assert {name for name, kind in KINDS.items() if kind.layered} == {"gradcam", "layercam"}
    assert all(full in KINDS for full in ALIASES.values())


@pytest.mark.parametrize(
    ("given", "expected"),
    [("ig", "integrated_gradients"), ("IG", "integrated_gradients"), ("Grad-CAM", "gradcam")]
    + [(name, name) for name in KINDS],
)
def test_every_spelling_resolves_to_one_method(given, expected):
    assert method_name(given) == expected and method_class(given).name == expected


def test_an_unknown_method_is_refused_with_the_names_and_short_names():
    with pytest.raises(ExplanationError, match=r"'deeplift'.*'ig' for integrated_gradients"):
        method_name("deeplift")


def test_the_cli_and_the_python_api_take_ig_for_the_same_cached_maps(tiny):
    run, target = tiny
    before = set(run.explanations["folder"])
    args = ["--ids", "val/3", "--method", "ig", "--target", "1", "--project", target]
    result = CliRunner().invoke(app, ["explain", str(run.path), *args])
    assert result.exit_code == 0, result.output
    assert "integrated_gradients explanations" in result.output
    entries = run.explanations
    made = entries[~entries["folder"].isin(before)]
    assert list(made["method"]) == ["integrated_gradients"] and list(made["samples"]) == [1]
    found = run.explain("val/3", method="ig", target=1)
    assert found.method == "integrated_gradients"
    assert run.explanations.equals(entries)  # read from the entry the CLI wrote, not a new one
    unknown = CliRunner().invoke(
        app,
        ["explain", str(run.path), "--ids", "val/3", "--method", "deeplift", "--project", target],
    )
    assert unknown.exit_code != 0 and "'ig' for integrated_gradients" in unknown.output
    with pytest.raises(ExplanationError, match="'ig' for integrated_gradients"):
        run.explain("val/3", method="deeplift")


READ_CACHED = """
import json, sys
from latentsight.cli import app
from latentsight.store.explanations import sample_maps

run_path, out = sys.argv[1], sys.argv[2]
signs = {stored.method: stored.sign for stored in sample_maps(run_path, "val/5")}
code = None
try:
    app(["report", run_path, "--out", out], prog_name="latentsight")
except SystemExit as stop:
    code = stop.code
print(json.dumps({"code": code, "signs": signs, "captum": "captum" in sys.modules,
                  "torch": "torch" in sys.modules}))
"""


def test_the_report_reads_cached_maps_without_torch_or_captum(tiny, tmp_path):
    run, _ = tiny
    ids = list(run.samples["id"])  # every sample, so each one the report shows has maps
    explained = [run.explain(ids, method=m) for m in ("ig", "gradcam", "saliency")]
    signs = {found.method: found.sign for found in explained}
    out = tmp_path / "report.html"
    child = subprocess.run(
        [sys.executable, "-c", READ_CACHED, str(run.path), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    seen = json.loads(child.stdout.strip().splitlines()[-1])
    assert seen["code"] in (0, None), child.stdout
    assert seen["signs"] == signs  # as Explanation.sign reads the same maps
    assert signs == {
        "integrated_gradients": "absolute",
        "gradcam": "positive",
        "saliency": "positive",
    }
    assert 'class="heatmap" title="' in out.read_text()  # cached maps were drawn
    assert not seen["captum"] and not seen["torch"]
