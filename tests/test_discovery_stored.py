"""The discovered-concept table that the analysis stored in the run is never degraded: a
discovery without the model (no importance) keeps it, from Python, from the CLI and from a
re-analysis; with the model the table is replaced with importance; ``--no-save`` writes nothing."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import latentsight as ls
from latentsight.cli import app
from latentsight.store.concepts import discovered_file

LAYER = "fc:input"  # read by TinyCNN's linear head: importance in closed form
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
def analysed(tmp_path_factory) -> tuple[Path, str]:
    """A TinyCNN run analysed with its model (so the stored concepts have importance), and the
    ``file.py:project`` that loads that model again."""
    root = tmp_path_factory.mktemp("stored")
    module = root / "tiny_project.py"
    module.write_text(PROJECT)
    target = f"{module}:project"
    from latentsight._loading import load_project

    ls.analyze(
        load_project(target),
        root / "run",
        progress=False,
        analysis=ls.AnalysisSettings(map_method="pca"),
    )
    return root / "run", target


@pytest.fixture
def run_path(analysed, tmp_path) -> Path:
    """A fresh copy of the analysed run, so each test may change it."""
    return Path(shutil.copytree(analysed[0], tmp_path / "run"))


def _stored(path: Path) -> pd.DataFrame:
    return pd.read_parquet(discovered_file(path, LAYER))


def _digest(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file of the folder with its content hash."""
    return {str(f.relative_to(folder)): _digest(f) for f in folder.rglob("*") if f.is_file()}


def _discover(*args: str) -> tuple[int, str]:
    """The exit code and the output (whitespace collapsed: the terminal wraps lines)."""
    result = CliRunner().invoke(app, ["concepts", "discover", *args])
    return result.exit_code, " ".join(result.output.split())


def test_the_analysis_stored_concepts_with_importance(run_path):
    assert np.isfinite(_stored(run_path)["importance"]).all()


def test_a_discovery_without_the_model_keeps_the_stored_table(run_path):
    file = discovered_file(run_path, LAYER)
    before = _digest(file)
    bank = ls.open_run(run_path).discover_concepts(LAYER, per_class=False, k=2)
    assert bank.table["importance"].isna().all()  # no model, no importance
    assert bank.stored is None
    assert any(
        note.startswith("not stored") and "run.attach(project)" in note for note in bank.notes
    )
    assert _digest(file) == before
    assert np.isfinite(_stored(run_path)["importance"]).all()


def test_a_reanalysis_without_the_model_keeps_the_stored_table(run_path):
    before = _stored(run_path)
    ls.open_run(run_path).analyze(settings=ls.AnalysisSettings(map_method="pca"), progress=False)
    after = _stored(run_path)
    assert np.isfinite(after["importance"]).all()
    pd.testing.assert_frame_equal(after, before)


def test_with_the_model_the_table_is_replaced_with_importance(analysed, run_path):
    from latentsight._loading import load_project

    run = ls.open_run(run_path, project=load_project(analysed[1]))
    bank = run.discover_concepts(LAYER, per_class=False, k=2)
    assert bank.stored == discovered_file(run_path, LAYER)
    stored = _stored(run_path)
    assert len(stored) == 2 and stored["class"].isna().all()  # the new, global, table
    assert np.isfinite(stored["importance"]).all()
    np.testing.assert_allclose(stored["importance"], bank.table["importance"])


def test_a_table_without_importance_replaces_one_without(run_path):
    run = ls.open_run(run_path)
    discovered_file(run_path, LAYER).unlink()
    first = run.discover_concepts(LAYER, per_class=False, k=2)
    assert first.stored == discovered_file(run_path, LAYER)
    again = run.discover_concepts(LAYER, per_class=False, k=3)
    assert again.stored is not None and len(_stored(run_path)) == 3


def test_cli_without_the_model_prints_and_says_the_table_was_kept(run_path):
    before = _digest(discovered_file(run_path, LAYER))
    code, output = _discover(str(run_path), "--layer", LAYER, "--global", "--k", "2")
    assert code == 0, output
    assert "2 concepts" in output and "not stored" in output
    assert "--project module:project" in output and "Stored in" not in output
    assert _digest(discovered_file(run_path, LAYER)) == before


def test_cli_with_the_project_stores_the_new_table_with_importance(analysed, run_path):
    args = [str(run_path), "--layer", LAYER, "--global", "--k", "2", "--project", analysed[1]]
    code, output = _discover(*args)
    assert code == 0, output
    assert "Stored in" in output and "not stored" not in output
    stored = _stored(run_path)
    assert len(stored) == 2 and np.isfinite(stored["importance"]).all()


@pytest.mark.parametrize("with_project", [False, True])
def test_cli_no_save_writes_nothing(analysed, run_path, with_project):
    discovered_file(run_path, LAYER).unlink()  # nothing stored: a save would create it
    before = _snapshot(run_path)
    args = [str(run_path), "--layer", LAYER, "--global", "--k", "2", "--no-save"]
    code, output = _discover(*args, *(["--project", analysed[1]] if with_project else []))
    assert code == 0, output
    assert "2 concepts" in output and "Stored in" not in output
    assert _snapshot(run_path) == before


def test_cli_help_says_what_is_kept():
    result = CliRunner().invoke(app, ["concepts", "discover", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--no-save" in text and "never replaces a stored one" in text
