"""A capture killed with SIGKILL resumes where it stopped and ends identical to an uninterrupted one."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TinyCNN

import latentsight as ls
import latentsight.store.writer as writer_module
from latentsight._loading import load_project
from latentsight.report.renders import RenderIndex

PROJECT_FILE = textwrap.dedent(
    """
    import time
    import torch
    from torch import nn
    import latentsight as ls

    class SlowImages:
        loads = 0

        def __init__(self, n, seed):
            generator = torch.Generator().manual_seed(seed)
            self.images = torch.rand(n, 3, 10, 10, generator=generator)
            self.labels = torch.randint(0, 3, (n,), generator=generator)

        def __len__(self):
            return len(self.images)

        def __getitem__(self, index):
            SlowImages.loads += 1
            time.sleep(0.004)
            if index == 77:
                raise OSError("corrupt file on disk")
            return self.images[index], int(self.labels[index])

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 3)
    )
    project = ls.Project(
        model=model,
        data={"train": SlowImages(300, 1), "val": SlowImages(120, 2)},
        loss=ls.losses.cross_entropy,
    )
    """
)


def _tables_equal(a: ls.Run, b: ls.Run) -> None:
    pd.testing.assert_frame_equal(a.samples, b.samples)
    pd.testing.assert_frame_equal(a.quarantine, b.quarantine)
    for layer in a.layers:
        for view in a.views(layer):
            assert np.array_equal(a.latent(layer, view), b.latent(layer, view))
    renders_a, renders_b = RenderIndex(a.path), RenderIndex(b.path)
    assert set(renders_a.where) == set(a.samples["id"])
    for sample_id in a.samples["id"]:
        assert np.array_equal(renders_a.get(sample_id).pixels, renders_b.get(sample_id).pixels)


@pytest.fixture
def project_file(tmp_path: Path) -> Path:
    path = tmp_path / "slow_project.py"
    path.write_text(PROJECT_FILE)
    return path


def _capture_until(project_file: Path, out: Path, shards: int, *options: str) -> subprocess.Popen:
    """A command-line capture of the slow project into ``out``, once ``shards`` chunks are done."""
    command = [
        sys.executable, "-m", "latentsight", "analyze", f"{project_file}:project",
        "--out", str(out), "--batch-size", "8", "--chunk-size", "24", *options,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.rglob("*.samples.parquet"))) < shards:
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.01)
    return process


def test_killed_capture_resumes_to_an_identical_run(tmp_path, project_file):
    killed = tmp_path / "killed"
    process = _capture_until(project_file, killed, 5, "--no-insights")
    shards = killed / "_capture"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list(shards.rglob("*.samples.parquet")))
    assert 5 <= done_before < 18, "the capture must be killed part way"

    with pytest.raises(ls.RunStoreError, match=r"incomplete.*--resume"):
        ls.open_run(killed)
    with pytest.raises(ls.RunStoreError, match=r"interrupted run.*resume=True"):
        ls.analyze(
            load_project(f"{project_file}:project"),
            killed,
            batch_size=8,
            chunk_size=24,
            progress=False,
            insights=False,
        )

    project = load_project(f"{project_file}:project")
    dataset_class = type(project.data["train"])
    dataset_class.loads = 0
    resumed = ls.analyze(
        project, killed, resume=True, batch_size=8, chunk_size=24, progress=False, insights=False
    )
    loads_on_resume = dataset_class.loads

    dataset_class.loads = 0
    fresh = ls.analyze(
        project, tmp_path / "fresh", batch_size=8, chunk_size=24, progress=False, insights=False
    )
    _tables_equal(resumed, fresh)
    assert loads_on_resume <= dataset_class.loads - done_before * 24 + 1, (
        "completed chunks were recomputed"
    )
    assert list(resumed.quarantine["id"]) == ["train/77", "val/77"]
    assert "corrupt file on disk" in resumed.quarantine["error"][0]
    assert not (killed / "_capture").exists()


def test_a_second_capture_into_a_run_being_written_is_refused(tmp_path, project_file):
    out = tmp_path / "run"
    process = _capture_until(project_file, out, 2, "--no-insights")
    project = load_project(f"{project_file}:project")
    options = dict(batch_size=8, chunk_size=24, progress=False, insights=False)
    for how in ({"overwrite": True}, {"resume": True}):
        with pytest.raises(ls.RunStoreError, match=r"Another capture is writing .* right now"):
            ls.analyze(project, out, **how, **options)
    assert process.wait(timeout=120) == 0, process.stderr.read().decode()
    _tables_equal(ls.open_run(out), ls.analyze(project, tmp_path / "fresh", **options))
    assert not (out / writer_module.LOCK).exists()


def test_a_capture_stopped_as_it_starts_leaves_a_run_to_resume(tmp_path, data, monkeypatch):
    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy)
    out = tmp_path / "run"
    real_create = writer_module.LatentArray.create
    monkeypatch.setattr(writer_module.LatentArray, "create", _stop_at_second_call(real_create))
    with pytest.raises(_Stopped):
        ls.analyze(project, out, progress=False, insights=False)
    monkeypatch.setattr(writer_module.LatentArray, "create", real_create)
    with pytest.raises(ls.RunStoreError, match=r"incomplete.*--resume"):
        ls.open_run(out)
    resumed = ls.analyze(project, out, resume=True, progress=False, insights=False)
    _tables_equal(resumed, ls.analyze(project, tmp_path / "fresh", progress=False, insights=False))

    left_lock = tmp_path / "locked"
    left_lock.mkdir()
    (left_lock / writer_module.LOCK).touch()  # what a capture killed before its manifest leaves
    assert len(ls.analyze(project, left_lock, progress=False, insights=False).samples) == 64


def test_an_interrupted_command_line_capture_says_how_to_resume(tmp_path, project_file):
    out = tmp_path / "run"
    process = _capture_until(project_file, out, 2)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    stderr = " ".join(process.stderr.read().decode().split())
    assert "Interrupted." in stderr and "Traceback" not in stderr
    command = re.search(r"`(latentsight analyze .*?)`", stderr).group(1).split()
    assert command[-5:] == ["--batch-size", "8", "--chunk-size", "24", "--resume"]
    finished = subprocess.run(
        [sys.executable, "-m", *command, "--no-insights"], capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr
    _tables_equal(
        ls.open_run(out),
        ls.analyze(
            load_project(f"{project_file}:project"),
            tmp_path / "fresh",
            batch_size=8,
            chunk_size=24,
            progress=False,
            insights=False,
        ),
    )


def test_a_run_stopped_during_its_analysis_resumes_there(tmp_path, data, monkeypatch):
    import latentsight.insights.engine as engine

    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy)
    out = tmp_path / "run"
    real_write = engine.write_analysis

    def stopped(run_dir, **parts):
        (run_dir / ".analysis.tmp-999999").mkdir(exist_ok=True)  # what a killed analysis leaves
        raise _Stopped

    monkeypatch.setattr(engine, "write_analysis", stopped)
    with pytest.raises(_Stopped):
        ls.analyze(project, out, progress=False)
    monkeypatch.setattr(engine, "write_analysis", real_write)
    assert not ls.open_run(out).analysed
    resumed = ls.analyze(project, out, resume=True, progress=False)
    assert resumed.analysed and resumed.analysis_info["layer"]
    assert not list(out.glob(".analysis.*"))
    other = ls.Project(model=TinyCNN(seed=5), data=data, loss=ls.losses.cross_entropy)
    with pytest.raises(ls.RunStoreError, match=r"captured with another model.*overwrite=True"):
        ls.analyze(other, out, resume=True, progress=False)


def test_resume_refuses_different_settings(tmp_path, project_file):
    out = tmp_path / "run"
    project = load_project(f"{project_file}:project")
    ls.analyze(project, out, batch_size=8, chunk_size=24, progress=False, insights=False)
    manifest = (
        (out / "manifest.json").read_text().replace('"status": "complete"', '"status": "capturing"')
    )
    (out / "manifest.json").write_text(manifest)
    with pytest.raises(
        ls.RunStoreError,
        match=r"batch size \(8 then, 16 now\), chunk size \(24 then, 32 now\) differ from",
    ) as refused:
        ls.analyze(
            project, out, resume=True, batch_size=16, chunk_size=24, progress=False, insights=False
        )
    assert "(here batch_size=8, chunk_size=24)" in str(refused.value)


def test_resuming_a_complete_run_with_other_sizes_is_refused_not_ignored(tmp_path, project_file):
    out = tmp_path / "run"
    project = load_project(f"{project_file}:project")
    ls.analyze(project, out, batch_size=8, chunk_size=24, progress=False, insights=False)
    manifest = (out / "manifest.json").read_bytes()
    resumed = ls.analyze(
        project, out, resume=True, batch_size=8, chunk_size=24, progress=False, insights=False
    )
    assert resumed.manifest["settings"]["batch_size"] == 8
    with pytest.raises(ls.RunStoreError, match=r"already complete.*batch size \(8 then, 16 now\)"):
        ls.analyze(
            project, out, resume=True, batch_size=16, chunk_size=24, progress=False, insights=False
        )
    assert (out / "manifest.json").read_bytes() == manifest


def test_a_resume_without_sizes_takes_the_recorded_ones(tmp_path, project_file):
    out = tmp_path / "run"
    project = load_project(f"{project_file}:project")
    ls.analyze(project, out, batch_size=8, chunk_size=16, progress=False, insights=False)
    finished = ls.analyze(project, out, resume=True, progress=False)  # only the analysis is left
    assert finished.analysed and finished.manifest["settings"]["batch_size"] == 8
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["status"] = "capturing"
    (out / "manifest.json").write_text(json.dumps(manifest))
    resumed = ls.analyze(project, out, resume=True, progress=False, insights=False)
    assert resumed.manifest["settings"]["chunk_size"] == 16


def test_resume_refuses_another_loss_or_metadata_rather_than_mixing_them(tmp_path, project_file):
    out = tmp_path / "run"
    project = load_project(f"{project_file}:project")
    ls.analyze(project, out, batch_size=8, chunk_size=24, progress=False, insights=False)
    manifest = out / "manifest.json"
    manifest.write_text(
        manifest.read_text().replace('"status": "complete"', '"status": "capturing"')
    )
    options = dict(resume=True, batch_size=8, chunk_size=24, progress=False, insights=False)
    doubled = dataclasses.replace(
        project, loss=lambda outputs, targets: 2 * ls.losses.cross_entropy(outputs, targets)
    )
    with pytest.raises(ls.RunStoreError, match=r"values on the checked samples \(loss"):
        ls.analyze(doubled, out, **options)

    def site(subset, index):
        return {"site": index % 2}

    with pytest.raises(ls.RunStoreError, match=r"metadata_columns, values on the checked"):
        ls.analyze(dataclasses.replace(project, metadata=site), out, **options)
    resumed = ls.analyze(project, out, **options)
    assert resumed.manifest["status"] == "complete"


class _Stopped(Exception):
    """Stands for a capture killed while it finalizes the run."""


def _stop_at_second_call(real):
    calls = []

    def stop(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise _Stopped
        return real(*args, **kwargs)

    return stop


def _stop_before_complete(real):
    def stop(path, payload):
        if payload.get("status") == "complete":
            raise _Stopped
        real(path, payload)

    return stop


@pytest.mark.parametrize(
    ("where", "stop"),
    [("link", _stop_at_second_call), ("write_json", _stop_before_complete)],
    ids=["while-placing-the-renders", "before-marking-complete"],
)
def test_a_capture_stopped_while_finalizing_resumes_to_an_identical_run(
    tmp_path, data, monkeypatch, where, stop
):
    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy)
    out, settings = tmp_path / "run", dict(batch_size=8, chunk_size=16, progress=False)
    target = writer_module.os if where == "link" else writer_module
    monkeypatch.setattr(target, where, stop(getattr(target, where)))
    with pytest.raises(_Stopped):
        ls.analyze(project, out, insights=False, **settings)
    monkeypatch.undo()
    with pytest.raises(ls.RunStoreError, match=r"incomplete.*--resume"):
        ls.open_run(out)

    resumed = ls.analyze(project, out, resume=True, insights=False, **settings)
    fresh = ls.analyze(project, tmp_path / "fresh", insights=False, **settings)
    _tables_equal(resumed, fresh)
    assert len(fresh.samples) == 64
