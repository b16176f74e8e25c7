"""`latentsight demo` end to end, as a user types it: data, model (trained, then cached), run."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pandas as pd
from conftest import TinyCNN, image_items
from rich.console import Console

import latentsight as ls
from latentsight.demo.model import default_epochs
from latentsight.demo.run import DEMO_LAYERS, GROUND_TRUTH, demo_config, training_progress


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
    first = demo(tmp_path)  # output piped, not a terminal: the training is logged line by line
    assert first.returncode == 0, first.stderr
    epochs = default_epochs(demo_config(tiny=True).n_train)
    logged = re.findall(
        r"^Training the demo CNN: epoch (\d+)/(\d+), loss \d+\.\d{3}, \d+\.\d s$",
        first.stdout,
        re.M,
    )
    assert {int(total) for _, total in logged} == {epochs}
    assert {1, 5, epochs} <= {int(epoch) for epoch, _ in logged}
    assert len(logged) <= epochs // 5 + 2
    trained = re.search(r"^Model: trained the demo CNN in \d+\.\d s and cached it in (.+)$",
                        first.stdout, re.M)  # fmt: skip
    assert trained, first.stdout
    cache_file = trained.group(1)
    assert cache_file.startswith(str(tmp_path / "cache")) and os.path.isfile(cache_file)
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
    assert f"Model: reused the cached demo CNN from {cache_file}\n" in second.stdout
    assert "Training the demo CNN" not in second.stdout
    again = ls.open_run(tmp_path / "run")
    pd.testing.assert_frame_equal(again.samples, samples)


def test_training_is_a_bar_in_a_terminal_and_a_few_lines_elsewhere():
    logged = io.StringIO()
    with training_progress(Console(file=logged, force_terminal=False, width=60)) as on_epoch:
        for epoch in range(1, 13):
            on_epoch(epoch, 12, 1.0 / epoch)
    lines = logged.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        f"Training the demo CNN: epoch {epoch}/12" for epoch in (1, 5, 10, 12)
    ]
    assert lines[-1].startswith("Training the demo CNN: epoch 12/12, loss 0.083, ")

    shown = io.StringIO()
    with training_progress(Console(file=shown, force_terminal=True, width=60)) as on_epoch:
        for epoch in range(1, 13):
            on_epoch(epoch, 12, 1.0 / epoch)
    assert "training CNN" in shown.getvalue() and "Training the demo CNN" not in shown.getvalue()


def test_the_demo_refuses_to_replace_a_run_of_another_project(tmp_path):
    project = ls.Project(
        model=TinyCNN(), data={"train": image_items(16, 1)}, loss=ls.losses.cross_entropy
    )
    mine = ls.analyze(project, tmp_path / "run", progress=False, insights=False)
    refused = demo(tmp_path)
    assert refused.returncode == 2
    message = " ".join(refused.stderr.split())
    assert f"{tmp_path / 'run'} holds the run '{mine.manifest['name']}', not a demo run" in message
    assert "Traceback" not in refused.stderr and "Generating" not in refused.stdout
    pd.testing.assert_frame_equal(ls.open_run(tmp_path / "run").samples, mine.samples)
