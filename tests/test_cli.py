"""The command line, run as a user runs it: a real subprocess on a project file."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap

import pytest
from surfaces_helpers import CLASS_NAMES

import latentsight as ls
from latentsight.store.concepts import stored_tables

PROJECT = textwrap.dedent(
    """
    import pandas as pd
    import torch
    from torch import nn
    import latentsight as ls

    def build():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2)
        )
        x = torch.rand(30, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        data = {"train": [(x[i], i % 2) for i in range(20)], "val": [(x[i], i % 2) for i in range(20, 30)]}
        ids = [f"train/{i}" for i in range(20)] + [f"val/{i}" for i in range(10)]
        metadata = pd.DataFrame({"id": ids, "site": ["a", "b"] * 15})
        return ls.Project(model=model, data=data, loss=ls.losses.cross_entropy, metadata=metadata, name="toy")

    project = build()
    broken = ls.Project(model=project.model, data=project.data, loss=project.loss, layers=["5"])
    plain = ls.Project(model=project.model, data=project.data, loss=project.loss)
    named = ls.Project(
        model=project.model, data=project.data, loss=project.loss, classes=["cat", "dog"]
    )
    extra_row = pd.concat([project.metadata, pd.DataFrame({"id": ["test/0"], "site": ["c"]})])
    warned = ls.Project(model=project.model, data=project.data, loss=project.loss, metadata=extra_row)
    unlabeled = ls.Project(
        model=project.model,
        data={"train": project.data["train"], "production": [(x,) for x, _ in project.data["val"]]},
        loss=project.loss,
    )
    """
)


def latentsight(*arguments: str, cwd, python: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *python, "-m", "latentsight", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": ""},
    )


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "toy_project.py").write_text(PROJECT)
    return tmp_path


def test_check_prints_what_it_found(workdir):
    result = latentsight("check", "toy_project:project", cwd=workdir)
    assert result.returncode == 0, result.stderr
    for expected in (
        "train",
        "val",
        "(8, 3, 8, 8) float32",
        "(8, 2) float32",
        "classification (2 classes)",
        "site",
        "Layers (default choice)",
        "(6, 8, 8)",
        "4:input",
        "mean (6), grid (96)",
    ):
        assert expected in result.stdout, expected
    assert not re.search(r"^classes ", result.stdout, flags=re.M)  # none given, none listed


def test_check_lists_the_class_names_given(workdir):
    result = latentsight("check", "toy_project:named", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^classes +0 cat, 1 dog", result.stdout, flags=re.M)


def test_check_of_a_broken_project_says_what_to_fix_without_a_traceback(workdir):
    result = latentsight("check", "toy_project:broken", cwd=workdir)
    assert result.returncode == 2
    assert (
        "Layer '5' is not a module" in result.stderr
        and "Its modules: 0, 1, 2, 3, 4" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_a_model_named_instead_of_a_project_says_to_wrap_it(workdir):
    (workdir / "toy_model.py").write_text("from torch import nn\nnet = nn.Linear(4, 2)\n")
    result = latentsight("check", "toy_model:net", cwd=workdir)
    assert result.returncode == 2
    assert "is a model (Linear), not a latentsight.Project" in result.stderr
    assert "latentsight.Project(model=net" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_project_function_that_needs_arguments_is_named_without_a_traceback(workdir):
    (workdir / "toy_factory.py").write_text(
        "import latentsight as ls\n\ndef make(data_dir):\n    raise AssertionError\n"
    )
    result = latentsight("check", "toy_factory:make", cwd=workdir)
    assert result.returncode == 2
    assert "toy_factory:make (a function building the project) cannot be called" in result.stderr
    assert "missing a required argument: 'data_dir'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_module_is_explained(workdir):
    result = latentsight("check", "no_such_module:project", cwd=workdir)
    assert result.returncode == 2
    assert "No module named 'no_such_module'" in result.stderr


def test_analyze_then_info(workdir):
    result = latentsight("analyze", "toy_project.py:project", "--out", "runs/toy", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "Run written to" in result.stdout
    run = ls.open_run(workdir / "runs" / "toy")
    assert run.name == "toy" and len(run.samples) == 30
    info = latentsight("info", "runs/toy", cwd=workdir)
    assert info.returncode == 0, info.stderr
    for expected in (
        "toy",
        "train",
        "20",
        "val",
        "10",
        "0",
        "30 x 6",
        "30 x 96",
    ):
        assert expected in info.stdout, expected
    stated = " ".join(info.stdout.split())
    analysis = run.analysis_info
    assert (
        f"analysis layer {analysis['layer']} ({analysis['view']} view), "
        f"{len(run.insights)} insights" in stated
    )
    compact = "".join(info.stdout.split())  # a long list of files wraps
    tables = stored_tables(run.path)
    assert tables and all(f"concepts/{table.file.name}" in compact for table in tables)
    again = latentsight("analyze", "toy_project.py:project", "--out", "runs/toy", cwd=workdir)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert not loaded_model_libraries("info", "runs/toy", cwd=workdir)
    report = loaded_model_libraries("report", "runs/toy", "-o", "toy.html", cwd=workdir)
    assert not report and (workdir / "toy.html").is_file()


def test_the_checks_warnings_are_shown_before_the_pass_and_kept_with_the_run(workdir):
    warning = "1 row(s) matching no sample, e.g. ['test/0']"
    result = latentsight(
        "analyze", "toy_project.py:warned", "--out", "runs/w", "--no-insights", cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    assert "warnings of the check" in result.stderr and warning in result.stderr
    info = latentsight("info", "runs/w", cwd=workdir)
    assert "warnings of the check" in info.stdout and warning in info.stdout
    stated = " ".join(info.stdout.split())
    assert "analysis none yet: `latentsight insights runs/w` analyses the run" in stated
    assert "stored -" in stated
    clean = latentsight(
        "analyze", "toy_project.py:plain", "--out", "runs/c", "--no-insights", cwd=workdir
    )
    assert "warnings of the check" not in clean.stderr + clean.stdout


def test_info_shows_no_figure_where_an_unlabeled_subset_has_none(workdir):
    result = latentsight(
        "analyze", "toy_project.py:unlabeled", "--out", "runs/u", "--no-insights", cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    info = latentsight("info", "runs/u", cwd=workdir)
    production = next(line for line in info.stdout.splitlines() if "production" in line)
    cells = [cell.strip() for cell in production.strip("│ ").split("│")]
    assert cells == ["production", "10", "0", "-", "-"]
    assert "nan" not in info.stdout


def loaded_model_libraries(*arguments: str, cwd) -> set[str]:
    """The heavy libraries a command imported, read from ``python -X importtime``."""
    result = latentsight(*arguments, cwd=cwd, python=("-X", "importtime"))
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    return imported & {"torch", "sklearn", "scipy", "umap", "numba"}


def test_info_on_a_missing_run(workdir):
    result = latentsight("info", "runs/none", cwd=workdir)
    assert result.returncode == 2 and "There is no run at runs/none" in result.stderr
    marked = latentsight("info", "runs/[bold]x[/bold]", cwd=workdir)
    assert "There is no run at runs/[bold]x[/bold]" in marked.stderr, "printed as typed"


def test_info_on_an_interrupted_run_gives_the_command_that_finishes_it(workdir):
    made = latentsight(
        "analyze", "toy_project.py:project", "--out", "runs/cut", "--no-insights", cwd=workdir
    )
    assert made.returncode == 0, made.stderr
    manifest = workdir / "runs/cut/manifest.json"
    manifest.write_text(
        manifest.read_text().replace('"status": "complete"', '"status": "capturing"')
    )
    result = latentsight("info", "runs/cut", cwd=workdir)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "`latentsight analyze toy_project.py:project --out runs/cut --resume`" in message
    assert "analyze(project" not in result.stderr, "no Python advice on the command line"
    given = re.search(r"`latentsight (analyze .*?)`", message).group(1).split()
    finished = latentsight(*given, "--no-insights", cwd=workdir)
    assert finished.returncode == 0, finished.stderr
    assert latentsight("info", "runs/cut", cwd=workdir).returncode == 0


def test_help_explains_every_option(workdir):
    result = latentsight("analyze", "--help", cwd=workdir)
    for option in (
        "--out",
        "--resume",
        "--overwrite",
        "--batch-size",
        "--chunk-size",
        "--device",
        "--num-workers",
        "--fail-fast",
        "--renders",
    ):
        assert option in result.stdout, option
    assert not loaded_model_libraries("--help", cwd=workdir)


def test_version_and_a_bad_view_are_answered_before_any_work(dashboard_run, tmp_path):
    version = latentsight("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"latentsight {ls.__version__}"
    bad = latentsight("insights", str(dashboard_run.path), "--view", "nope", cwd=tmp_path)
    assert bad.returncode == 2 and "Invalid value for '--view'" in bad.stderr
    assert "analysis" not in bad.stdout


def test_insights_on_another_layer_says_it_replaced_the_stored_analysis(dashboard_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(dashboard_run.path, copy)
    before = ls.open_run(copy).analysis_info
    layer = next(name for name in dashboard_run.layers if name != before["layer"])
    again = latentsight("insights", str(copy), "--layer", layer, "--top", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"the stored analysis (layer {before['layer']}, {before['view']} view) was replaced" in (
        again.stderr.replace("\n", " ")
    )
    assert ls.open_run(copy).analysis_info["layer"] == layer


def test_concept_grids_into_a_file_are_refused_before_the_discovery(dashboard_run, tmp_path):
    taken = tmp_path / "afile"
    taken.write_text("precious")
    result = latentsight(
        "concepts", "discover", str(dashboard_run.path), "--layer", dashboard_run.layers[-1],
        "--grids", str(taken), "--no-save", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "it is a file, not a directory" in result.stderr
    assert "dictionaries" not in result.stdout + result.stderr
    assert taken.read_text() == "precious"


def test_a_misspelt_concept_is_told_before_the_labelling(dashboard_run, tmp_path):
    result = latentsight(
        "concepts", str(dashboard_run.path), "--concept", "nosuch == 1", "--no-save",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "No concept named 'nosuch == 1' in the vocabulary" in result.stderr
    assert "neuron" not in result.stdout.lower()  # no labels table came first


def test_a_misspelt_concepts_command_is_named_as_such(dashboard_run, tmp_path):
    result = latentsight("concepts", "audti", str(dashboard_run.path), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "No command 'audti' (did you mean 'audit'?): the commands are label, audit" in message


def test_insights_lists_one_line_each_and_shows_one_in_full(dashboard_run, tmp_path):
    path = str(dashboard_run.path)
    first = dashboard_run.insights[0]
    listed = latentsight("insights", path, "--top", "3", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert first.title[:25] in listed.stdout
    assert "what to do" not in listed.stdout and "--show RANK" in listed.stdout
    shown = latentsight("insights", path, "--show", "1", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    opening = " ".join(first.action.split()[:4])
    for expected in ("what it is", "what to do", opening, "Evidence", first.population[0]):
        assert expected in shown.stdout, expected
    assert first.evidence[0].detector in shown.stdout
    beyond = len(dashboard_run.insights) + 1
    missing = latentsight("insights", path, "--show", str(beyond), cwd=tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"no insight of rank {beyond}" in missing.stderr


def test_info_and_the_concepts_table_name_the_classes(dashboard_run, tmp_path):
    path = str(dashboard_run.path)
    info = latentsight("info", path, cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert re.search(r"classes +0 circle, 1 square, 2 triangle, 3 cross", info.stdout)
    arguments = ("--layer", "classifier.3:input", "--by", "target", "--k", "2", "--no-save")
    found = latentsight("concepts", "discover", path, *arguments, cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    rows = re.findall(r"^│ +(\d+) │ +(\S+) │", found.stdout, flags=re.M)
    assert [name for _, name in rows] == [name for name in CLASS_NAMES for _ in range(2)]


def test_info_of_a_run_without_class_names_lists_none(unnamed_dashboard_run, tmp_path):
    info = latentsight("info", str(unnamed_dashboard_run.path), cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "classification (4 classes)" in info.stdout
    assert not re.search(r"^classes ", info.stdout, flags=re.M)
    assert "circle" not in info.stdout


def test_every_public_name_resolves_and_a_wrong_one_is_named():
    script = (
        "import latentsight as ls; "
        "print(sorted(name for name in ls.__all__ if getattr(ls, name) is None)); "
        "print(sorted(dir(ls)) == sorted(ls.__all__)); ls.no_such_name"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.split() == ["[]", "True"]
    assert "module 'latentsight' has no attribute 'no_such_name'" in result.stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [("--batch-size", "0"), ("--chunk-size", "0"), ("--num-workers", "-1")],
)
def test_impossible_sizes_are_refused_before_the_project_loads(workdir, option, value):
    result = latentsight(
        "analyze", "missing_module:project", "-o", "run", option, value, cwd=workdir
    )
    assert result.returncode == 2
    assert f"Invalid value for '{option}'" in result.stderr
    assert "missing_module" not in result.stderr + result.stdout
    assert not (workdir / "run").exists()


def test_help_reads_as_prose_and_names_the_arguments(workdir):
    listing = latentsight("--help", cwd=workdir)
    assert listing.returncode == 0, listing.stderr
    assert "It reads the run and writes only the explanations" in " ".join(listing.stdout.split())
    usage = latentsight("serve", "--help", cwd=workdir)
    assert "latentsight serve [OPTIONS] RUN" in usage.stdout


def test_a_run_without_findings_says_what_was_tested_and_why_detectors_did_not_run(workdir):
    assert latentsight("analyze", "toy_project:plain", "-o", "run", cwd=workdir).returncode == 0
    result = latentsight("insights", "run", cwd=workdir)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "No significant finding among the" in text and "--show RANK" not in text
    assert "label issues" in text and "is not significantly above the most common class" in text
    table, other_tasks = text.split("Made for other tasks, not run:")
    assert "multilabel" not in table
    assert other_tasks.strip() == "multilabel label issues (for multilabel runs)."


def test_insights_analyses_with_the_recorded_model_or_says_it_could_not(workdir):
    assert latentsight("analyze", "toy_project:project", "-o", "run", cwd=workdir).returncode == 0
    run_dir = workdir / "run"

    def audit_note() -> dict:
        return ls.open_run(run_dir).analysis_info["detectors"]["spurious_feature"]

    assert latentsight("insights", "run", "--recompute", cwd=workdir).returncode == 0
    with_model = audit_note()
    assert "no model attached" not in str(with_model)

    (workdir / "toy_project.py").rename(workdir / "moved.py")
    result = latentsight("insights", "run", "--recompute", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "analysed without the model" in result.stderr
    assert "--project module:project" in audit_note()["skipped"]

    named = latentsight("insights", "run", "--recompute", "--project", "moved:project", cwd=workdir)
    assert named.returncode == 0, named.stderr
    assert audit_note() == with_model
    missing = latentsight(
        "insights", "run", "--recompute", "--project", "gone:project", cwd=workdir
    )
    assert missing.returncode == 2 and "gone" in missing.stderr
