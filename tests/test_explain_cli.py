"""`latentsight explain`, run as a user runs it: analyze a project file, then explain from the run
directory alone (the project is found again from the manifest) or with --project."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from PIL import Image

PROJECT = textwrap.dedent(
    """
    import torch
    from torch import nn
    import latentsight as ls

    def build(seed):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(6, 2),
        )
        x = torch.rand(24, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        data = {"train": [(x[i], i % 2) for i in range(16)], "val": [(x[i], i % 2) for i in range(16, 24)]}
        return ls.Project(
            model=model, data=data, loss=ls.losses.cross_entropy, classes=["cat", "dog"], name="toy"
        )

    project = build(0)
    retrained = build(1)
    """
)


def latentsight(*arguments: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "latentsight", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={"COLUMNS": "200", "PATH": ""},
    )


def test_explain_writes_overlays_from_the_recorded_project(tmp_path):
    (tmp_path / "toy_project.py").write_text(PROJECT)
    made = latentsight("analyze", "toy_project:project", "--out", "runs/toy", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    manifest = json.loads((tmp_path / "runs/toy/manifest.json").read_text())
    assert manifest["project_spec"]["target"] == "toy_project:project"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = latentsight(
        "explain", str(tmp_path / "runs/toy"), "--ids", "val/0,val/3", "--out", "png",
        cwd=elsewhere,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = sorted(path.name for path in (elsewhere / "png").iterdir())
    assert written == ["val_0.gradcam@0.predicted.png", "val_3.gradcam@0.predicted.png"]
    assert Image.open(elsewhere / "png" / written[0]).size == (258, 128)  # input | overlay
    assert "val_3.gradcam@0.predicted.png" in result.stdout

    integrated = latentsight(
        "explain", "runs/toy", "--ids", "val/1", "--method", "ig", "--target", "1",
        "--project", "toy_project:project", cwd=tmp_path,
    )  # fmt: skip
    assert integrated.returncode == 0, integrated.stderr
    assert (tmp_path / "runs/toy/explanations/png/val_1.integrated_gradients.class-1.png").is_file()

    # one sample, one method, three targets into one folder: three files, none replaced
    for target, stem in (("cat", "class-0"), ("1", "class-1"), ("predicted", "predicted")):
        done = latentsight(
            "explain", "runs/toy", "--ids", "val/1", "--method", "saliency", "--target", target,
            "-o", "both", cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"val_1.saliency.{stem}.png" in done.stdout
    assert sorted(path.name for path in (tmp_path / "both").iterdir()) == [
        "val_1.saliency.class-0.png",
        "val_1.saliency.class-1.png",
        "val_1.saliency.predicted.png",
    ]


def test_explain_refuses_another_model_and_unknown_ids(tmp_path):
    (tmp_path / "toy_project.py").write_text(PROJECT)
    made = latentsight("analyze", "toy_project:project", "--out", "runs/toy", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    other = latentsight(
        "explain", "runs/toy", "--ids", "val/0", "--project", "toy_project:retrained",
        cwd=tmp_path,
    )  # fmt: skip
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert "not the one" in other.stderr and "captured with" in other.stderr
    unknown = latentsight("explain", "runs/toy", "--ids", "test/9", cwd=tmp_path)
    assert unknown.returncode == 2 and "not in this run" in unknown.stderr
    audit = latentsight(
        "concepts", "audit", "runs/toy", "--project", "toy_project:retrained", cwd=tmp_path
    )
    assert audit.returncode == 2 and "not the one" in audit.stderr, audit.stderr

    (tmp_path / "toy_project.py").rename(tmp_path / "moved.py")
    gone = latentsight("explain", "runs/toy", "--ids", "val/0", cwd=tmp_path)
    text = " ".join(gone.stderr.split())
    assert gone.returncode == 2 and "Traceback" not in gone.stderr
    assert "The Project this run recorded, 'toy_project:project'" in text
    assert "no longer loads" in text and "Pass --project module:project" in text
