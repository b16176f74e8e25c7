"""What the command line tells its users: options and commands, never the Python calls behind them."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest
from test_cli import PROJECT, latentsight
from typer.testing import CliRunner

import latentsight as ls
from latentsight.cli import app

OTHER_MODEL = textwrap.dedent(
    """
    import torch
    from torch import nn
    import latentsight as ls
    from toy_project import project as toy

    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2)
    )
    project = ls.Project(model=model, data=toy.data, loss=toy.loss)
    """
)
STOPPED_PAST_THE_CHECK = textwrap.dedent(
    """
    import latentsight as ls
    from toy_project import project as toy

    def site(subset, index):
        return {"site": "a"} if index < 16 else ["a"]

    project = ls.Project(model=toy.model, data=toy.data, loss=toy.loss, metadata=site)
    """
)


def said(text: str) -> str:
    """``text`` with its lines joined, as the user reads a wrapped message."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A folder with the toy project files and ``run``, its run analysed with the model."""
    folder = tmp_path_factory.mktemp("toy")
    (folder / "toy_project.py").write_text(PROJECT)
    (folder / "other_model.py").write_text(OTHER_MODEL)
    (folder / "stopped.py").write_text(STOPPED_PAST_THE_CHECK)
    made = latentsight("analyze", "toy_project:project", "--out", "run", cwd=folder)
    assert made.returncode == 0, made.stderr
    return folder


def copy_of_run(toy, tmp_path):
    """A copy of the toy run that a test may change."""
    copy = tmp_path / "run"
    shutil.copytree(toy / "run", copy)
    return copy


def test_a_view_the_layer_lacks_names_the_layers_that_have_it(toy):
    before = ls.open_run(toy / "run").analysis_info
    by_default = latentsight("insights", "run", "--view", "grid", cwd=toy)
    assert by_default.returncode == 2 and "Traceback" not in by_default.stderr
    assert (
        "Layer '4:input' (the last recorded, analysed when --layer is not given) has no grid "
        "view; layers with one: 1; pass --layer 1." in said(by_default.stderr)
    )
    named = latentsight("insights", "run", "--layer", "4:input", "--view", "grid", cwd=toy)
    assert named.returncode == 2
    assert "Layer '4:input' has no grid view; layers with one: 1; pass --layer 1." in said(
        named.stderr
    )
    assert "analysis" not in by_default.stderr + named.stderr, "refused before the analysis"
    assert ls.open_run(toy / "run").analysis_info == before


def test_recompute_analyses_the_stored_layer_and_view_again(toy, tmp_path):
    copy = copy_of_run(toy, tmp_path)
    chosen = latentsight("insights", str(copy), "--layer", "1", "--view", "grid", cwd=toy)
    assert chosen.returncode == 0, chosen.stderr
    again = latentsight("insights", str(copy), "--recompute", cwd=toy)
    assert again.returncode == 0, again.stderr
    assert "(layer 1, grid view) was replaced" in said(again.stderr)
    info = ls.open_run(copy).analysis_info
    assert (info["layer"], info["view"]) == ("1", "grid")
    other = latentsight("insights", str(copy), "--layer", "4:input", cwd=toy)
    assert other.returncode == 0, other.stderr
    info = ls.open_run(copy).analysis_info
    assert (info["layer"], info["view"]) == ("4:input", "mean")


def test_check_takes_its_sample_count_as_samples_or_n(toy):
    result = latentsight("check", "toy_project:project", "--samples", "3", cwd=toy)
    assert result.returncode == 0, result.stderr
    assert "(3, 3, 8, 8) float32" in result.stdout
    shown = said(latentsight("check", "--help", cwd=toy).stdout)
    assert "--samples -n INTEGER" in shown
    assert "How many samples of each subset to try (the first ones)" in shown


def test_resuming_a_complete_run_says_so_and_refuses_other_sizes(toy):
    manifest = (toy / "run" / "manifest.json").read_bytes()
    again = latentsight("analyze", "toy_project:project", "--out", "run", "--resume", cwd=toy)
    assert again.returncode == 0, again.stderr
    assert "The run at run is already complete: nothing was captured or analysed again" in said(
        again.stdout
    )
    assert "Run written to" not in again.stdout
    other = latentsight(
        "analyze", "toy_project:project", "--out", "run", "--resume", "--batch-size", "16",
        "--chunk-size", "4090", cwd=toy,
    )  # fmt: skip
    assert other.returncode == 2 and "Traceback" not in other.stderr
    message = said(other.stderr)
    assert (
        "The run at run is already complete, and its batch size (64 then, 16 now) differs:"
        in message
    )
    assert "Pass --overwrite to capture it again with the new sizes" in message
    assert "(here --batch-size 64)" in message, "chunks of 4090 in batches of 16 are 4096 rows"
    assert (toy / "run" / "manifest.json").read_bytes() == manifest


def test_a_run_without_analysis_is_told_with_the_command_to_analyse_it(toy, tmp_path):
    copy = copy_of_run(toy, tmp_path)
    shutil.rmtree(copy / "analysis")
    result = latentsight("report", str(copy), cwd=toy)
    assert result.returncode == 2
    assert f"has not been analysed yet: run `latentsight insights {copy}`." in said(result.stderr)
    assert "run.analyze()" not in result.stderr


def test_a_complete_run_at_out_is_told_with_the_command_that_inspects_it(toy):
    result = latentsight("analyze", "toy_project:project", "--out", "run", cwd=toy)
    assert result.returncode == 2
    message = said(result.stderr)
    assert "A complete run already exists at run: open it (latentsight info run), or" in message
    assert "open_run" not in message and "--overwrite to replace it" in message


def test_another_model_is_told_with_the_command_that_captures_it(toy):
    result = latentsight(
        "explain", "run", "--ids", "val/0", "--project", "other_model:project", cwd=toy
    )
    assert result.returncode == 2
    message = said(result.stderr)
    assert "capture a new run of this model with latentsight analyze." in message
    assert "latentsight.analyze" not in message


def test_a_recorded_project_that_no_longer_loads_is_told_as_options(toy, tmp_path, monkeypatch):
    copy = copy_of_run(toy, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["project_spec"]["target"] = "moved_away:project"
    (copy / "manifest.json").write_text(json.dumps(manifest))

    explained = latentsight("explain", str(copy), "--ids", "val/0", cwd=toy)
    assert explained.returncode == 2
    assert "Pass --project module:project to say where it is now." in said(explained.stderr)

    monkeypatch.setattr("latentsight.server.runner.serve_app", lambda app, listening: None)
    served = CliRunner().invoke(app, ["serve", str(copy), "--port", "0"])
    assert served.exit_code == 0, served.output
    assert "The dashboard shows cached explanations only" in said(served.output)

    discovered = latentsight(
        "concepts", "discover", str(copy), "--layer", "4:input", cwd=toy
    )  # a 6-value layer of a few samples: too small to sweep k, so k=auto takes 2
    assert discovered.returncode == 0, discovered.stderr
    notes = said(discovered.stdout)
    assert "no model: attach the Project (--project module:project) to get importance" in notes
    assert "the run was captured from (--project module:project), or pass --no-save" in notes
    for shown in (explained.stderr, served.output, discovered.stdout + discovered.stderr):
        assert "run.attach" not in shown and "save=False" not in shown


def test_the_users_own_error_text_is_shown_as_it_is(toy, tmp_path, monkeypatch):
    copy = copy_of_run(toy, tmp_path)
    (tmp_path / "stale_checkpoint.py").write_text(
        "raise RuntimeError(\"checkpoint was saved with layer='fc' and batch_size=32\")\n"
    )
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["project_spec"] = {
        "target": "stale_checkpoint:project",
        "working_directory": str(tmp_path),
    }
    (copy / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr("latentsight.server.runner.serve_app", lambda app, listening: None)
    served = CliRunner().invoke(app, ["serve", str(copy), "--port", "0"])
    assert served.exit_code == 0, served.output
    shown = said(served.output)
    assert "checkpoint was saved with layer='fc' and batch_size=32" in shown
    assert shown.count("--project module:project") == 1, shown


def test_a_capture_stopped_past_the_check_names_resume_once(toy, tmp_path):
    out = tmp_path / "stopped"
    result = latentsight(
        "analyze", "stopped:project", "--out", str(out), "--batch-size", "8", "--chunk-size",
        "8", "--no-insights", cwd=toy,
    )  # fmt: skip
    assert result.returncode == 2
    message = said(result.stderr)
    assert "fix the project and resume (--resume)." in message
    assert "resume=True" not in message


def test_an_audit_without_other_concepts_says_to_capture_them(toy, tmp_path):
    out = tmp_path / "plain"
    made = latentsight("analyze", "toy_project:plain", "--out", str(out), "--no-insights", cwd=toy)
    assert made.returncode == 0, made.stderr
    result = latentsight("concepts", "audit", str(out), cwd=toy)
    assert result.returncode == 2
    message = said(result.stderr)
    assert "give the Project metadata columns and capture the run again (latentsight" in message
    assert "annotations=" not in message and "run.concepts" not in message


def test_arguments_the_run_can_refuse_are_refused_before_the_model_loads(toy):
    unloadable = ("--project", "no_such_module:project")  # loading it would fail
    unknown_id = latentsight("explain", "run", "--ids", "val/0,val/9999", *unloadable, cwd=toy)
    assert unknown_id.returncode == 2
    assert "1 sample id(s) are not in this run" in said(unknown_id.stderr)
    assert "no_such_module" not in unknown_id.stderr
    unknown_method = latentsight(
        "explain", "run", "--ids", "val/0", "--method", "gradcamm", cwd=toy
    )
    assert unknown_method.returncode == 2
    assert "Unknown explanation method 'gradcamm'" in said(unknown_method.stderr)
    layer = latentsight("concepts", "discover", "run", "--layer", "4", *unloadable, cwd=toy)
    assert layer.returncode == 2 and "did you mean '4:input'?" in said(layer.stderr)
    assert "no_such_module" not in layer.stderr
    by = latentsight("concepts", "discover", "run", "--layer", "4:input", "--by", "targte", cwd=toy)
    assert by.returncode == 2 and "'targte' is not one of 'prediction', 'target'" in said(by.stderr)
