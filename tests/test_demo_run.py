"""`latentsight demo` end to end, as a user types it: data, model (trained, then cached), run."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd

import latentsight as ls
from latentsight.demo.run import DEMO_LAYERS, GROUND_TRUTH


def demo(tmp_path, *arguments):
    env = {**os.environ, "LATENTSIGHT_CACHE": str(tmp_path / "cache"), "COLUMNS": "160"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "latentsight",
            "demo",
            "--tiny",
            "--out",
            str(tmp_path / "run"),
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_demo_trains_once_captures_and_keeps_ground_truth_apart(tmp_path):
    first = demo(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "trained the demo CNN" in first.stdout
    assert f"Demo run written to {tmp_path / 'run'}" in first.stdout.replace("\n", "")

    run = ls.open_run(tmp_path / "run")
    assert run.insights and run.insights[0].kind.replace("_", " ") in first.stdout
    assert f"all {len(run.insights)}: --top {len(run.insights)}" in first.stdout
    assert run.layers == DEMO_LAYERS
    assert run.subsets == {"train": 600, "val": 240}
    samples = run.samples
    assert {"background", "clutter", "size", "occlusion"} <= set(samples.columns)
    truth = pd.read_parquet(tmp_path / "run" / GROUND_TRUTH)
    assert sorted(truth["id"]) == sorted(samples["id"])
    hidden = set(truth.columns) - {"id"}
    assert hidden and not hidden & set(samples.columns), (
        "ground truth must not leak into the analysis"
    )

    env = {**os.environ, "LATENTSIGHT_CACHE": str(tmp_path / "cache"), "COLUMNS": "160"}
    explained = subprocess.run(  # the demo run records its Project: the model can be reloaded
        [sys.executable, "-m", "latentsight", "explain", str(tmp_path / "run"), "--ids", "val/3"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert explained.returncode == 0, explained.stderr + explained.stdout
    assert not ls.open_run(tmp_path / "run").explanations.empty

    second = demo(tmp_path)
    assert second.returncode == 0, second.stderr
    assert "reused the cached demo CNN" in second.stdout
    again = ls.open_run(tmp_path / "run")
    pd.testing.assert_frame_equal(again.samples, samples)
