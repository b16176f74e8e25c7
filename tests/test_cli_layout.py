"""The command line as a demanding user meets it: tables at 80 columns keep every name whole,
--help names values plainly, and errors advise shell options rather than Python keywords."""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
import types

import pytest
from rich.console import Console
from surfaces_helpers import CONCEPT_LAYER
from typer.main import get_command
from typer.testing import CliRunner

import latentsight as ls
from latentsight._display import insight_view
from latentsight.cli import app
from latentsight.concepts.display import audit_view, labels_view
from latentsight.discovery.display import bank_view

BOX = re.compile("[│┃╭╮╰╯─━┏┓┗┛┡┩┳┻╇╈┣┫┠┨┯┷┼╋]")


def invoke(*arguments: str, columns: int = 80):
    """The real command line, in process, at a terminal ``columns`` wide."""
    return CliRunner().invoke(
        app, list(arguments), env={"COLUMNS": str(columns)}, prog_name="latentsight"
    )


def rendered(renderable: object, width: int = 80) -> str:
    """What a rich console ``width`` columns wide prints for ``renderable``."""
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def prose(text: str) -> str:
    """``text`` without table and panel borders, its words joined by single spaces."""
    return " ".join(BOX.sub(" ", text).split())


def assert_whole(words: set[str], text: str) -> None:
    """Each word is printed whole, on one line, and nothing is ellipsized."""
    assert "…" not in text
    missing = sorted(word for word in words if word not in text)
    assert not missing, missing


def command_paths(command=None, path=()):
    """The argument path of every command and group of the CLI, the root first."""
    command = command or get_command(app)
    yield path
    for name, subcommand in getattr(command, "commands", {}).items():
        yield from command_paths(subcommand, (*path, name))


def test_every_help_names_values_plainly():
    paths = list(command_paths())
    assert ("concepts", "discover") in paths and len(paths) > 10
    for path in paths:
        result = invoke(*path, "--help", columns=100)
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, path
        assert not re.search(r"<[a-z][^>]*>|\{", result.output), (path, result.output)
    serve = invoke("serve", "--help", columns=100).output
    assert "latentsight serve [OPTIONS] RUN" in serve
    discover = invoke("concepts", "discover", "--help", columns=100).output
    assert re.search(r"--per-class +--global ", discover)
    assert re.search(r"--layer +TEXT ", discover)


@pytest.fixture(scope="module")
def audited(dashboard_run):
    """The INVERT labels and the audit of the linear head's input of the dashboard run."""
    concepts = dashboard_run.concepts(CONCEPT_LAYER, save=False)
    return concepts, concepts.audit(dashboard_run.project)


def test_concept_tables_at_80_columns_keep_every_name_whole(dashboard_run, audited):
    concepts, audit = audited
    shown = rendered(audit_view(audit))
    formulas = {str(d.formula) for c in audit.classes for d in c.drivers if d.formula is not None}
    assert_whole({c.name for c in audit.classes} | {w for f in formulas for w in f.split()}, shown)
    labels = rendered(labels_view(concepts, top=8))
    best = concepts.table.sort_values("auc", ascending=False).head(8)
    assert_whole({w for f in best["formula"].dropna() for w in f.split()}, labels)

    bank = dashboard_run.discover_concepts("features.2", k=3, per_class=False, save=False)
    table = rendered(bank_view(bank))
    assert_whole({w for name in bank.table["name"] for w in name.split()}, table)
    assert "|phi|" in table and "prevalence" in table, "the figures that matter stay"


def test_insight_shown_in_full_at_80_columns_keeps_its_title_and_layers(dashboard_run):
    rank, insight = max(enumerate(dashboard_run.insights, 1), key=lambda x: len(x[1].title))
    assert len(insight.title) > 70, "a title too long for a panel's border"
    result = invoke("insights", str(dashboard_run.path), "--show", str(rank))
    assert result.exit_code == 0, result.output
    assert insight.title in prose(result.output)
    assert_whole({item.layer for item in insight.evidence if item.layer}, result.output)


def test_insight_shown_in_full_prints_brackets_in_its_text_as_they_are(dashboard_run):
    run = ls.open_run(dashboard_run.path)  # its own insights list, changed here only
    first = run.insights[0]
    run.insights[0] = dataclasses.replace(
        first,
        description="loss [bold]twice[/] the rest",
        action="relabel [red]",
        population=["scan[a]1", *first.population[1:]],
    )
    shown = prose(rendered(insight_view(run, 1), width=200))
    assert "loss [bold]twice[/] the rest" in shown
    assert "relabel [red]" in shown
    assert "scan[a]1" in shown


def test_errors_advise_the_options_a_shell_user_types(dashboard_run, tmp_path, monkeypatch):
    path = str(dashboard_run.path)
    grouped = invoke(
        "concepts", "discover", path, "--layer", CONCEPT_LAYER, "--by", "colour", "--no-save",
        columns=200,
    )  # fmt: skip
    assert grouped.exit_code == 2
    assert "'colour' is not one of 'prediction', 'target'" in prose(grouped.stderr)
    assert "by='" not in grouped.stderr and "per_class=" not in grouped.stderr

    copy = tmp_path / "run"
    shutil.copytree(dashboard_run.path, copy)  # the audit stores the labels it computes
    module = types.ModuleType("dashboard_project")
    module.project = dashboard_run.project
    monkeypatch.setitem(sys.modules, "dashboard_project", module)
    unread = invoke(
        "concepts", "audit", str(copy), "--layer", "features.2", "--project",
        "dashboard_project:project", columns=200,
    )  # fmt: skip
    assert unread.exit_code == 2, unread.output
    assert "name it with --head HEAD if this layer feeds it directly" in prose(unread.stderr)
    assert "head=" not in unread.stderr


def test_the_audit_ends_with_its_verdict_and_where_it_is_stored(
    dashboard_run, audited, tmp_path, monkeypatch
):
    copy = tmp_path / "run"
    shutil.copytree(dashboard_run.path, copy)
    module = types.ModuleType("dashboard_project")
    module.project = dashboard_run.project
    monkeypatch.setitem(sys.modules, "dashboard_project", module)
    done = invoke(
        "concepts", "audit", str(copy), "--layer", CONCEPT_LAYER, "--project",
        "dashboard_project:project", columns=400,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    shown = prose(done.stdout)
    flagged = audited[1].insights
    assert ("No class leans on a concept other than itself" in shown) == (not flagged)
    assert all(insight.title in shown for insight in flagged)
    assert f"Stored in {copy / 'concepts' / 'audit.parquet'}" in shown
    assert (copy / "concepts" / "audit.parquet").is_file()
