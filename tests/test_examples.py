"""The examples the README links to run as they are, from a fresh working directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import latentsight as ls

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_quickstart_runs_and_writes_its_run(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    run = ls.open_run(tmp_path / "runs" / "quickstart")
    assert run.class_names == {0: "circle", 1: "square", 2: "triangle", 3: "cross"}
    assert "background" in result.stdout and str(run.latent("features.2").shape) in result.stdout


def test_the_quickstart_project_serves_the_command_line_without_capturing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "latentsight", "check", f"{EXAMPLES / 'quickstart.py'}:project"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "features.2" in result.stdout and "classifier.3:input" in result.stdout
    assert not (tmp_path / "runs").exists(), "importing the project captured a run"
