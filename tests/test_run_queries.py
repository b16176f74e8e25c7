"""Reading a run never changes it: ``run.sql`` runs one read-only SELECT and names what is
wrong with any other query, a run's path may hold a quote, and the samples frame a user edits
is their own."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import TinyCNN, image_items

import latentsight as ls


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    project = ls.Project(
        model=TinyCNN(), data={"train": image_items(24, 1)}, loss=ls.losses.cross_entropy
    )
    out = tmp_path_factory.mktemp("queries") / "run"
    return ls.analyze(project, out, progress=False, insights=False)


@pytest.mark.parametrize(
    "query",
    [
        "COPY (SELECT 0.0 AS loss) TO '{path}/samples.parquet'",
        "ATTACH '{path}/other.duckdb'",
        "DROP VIEW samples",
        "SELECT 1; SELECT 2",
    ],
)
def test_a_query_that_is_not_one_select_is_refused_and_the_run_kept(run, query):
    before = run.samples
    with pytest.raises(ls.QueryError, match=r"one SELECT query, read only"):
        run.sql(query.format(path=run.path))
    assert not (run.path / "other.duckdb").exists()
    pd.testing.assert_frame_equal(ls.open_run(run.path).samples, before)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("SELEC id FROM samples", r"syntax error"),
        ("SELECT nosuch FROM samples", r"nosuch"),
        ("SELECT * FROM sample", r"sample"),
    ],
)
def test_a_query_duckdb_cannot_run_names_the_tables_and_columns(run, query, problem):
    with pytest.raises(
        ls.QueryError, match=rf"The query failed: .*{problem}.*columns row, id, subset"
    ):
        run.sql(query)


@pytest.mark.parametrize("query", ["", "  ", None])
def test_an_empty_query_is_refused(run, query):
    with pytest.raises(ls.QueryError, match=r"takes one SELECT query as text"):
        run.sql(query)


def test_a_select_returns_what_the_samples_hold(run):
    found = run.sql("SELECT count(*) AS n, avg(loss) AS loss FROM samples").df()
    assert found["n"].item() == 24
    assert found["loss"].item() == pytest.approx(run.samples["loss"].mean())


def test_a_run_whose_path_holds_a_quote_is_queried(run, tmp_path):
    quoted = ls.open_run(shutil.copytree(run.path, tmp_path / "it's run"))
    assert quoted.sql("SELECT count(*) FROM samples").fetchall() == [(24,)]
    pd.testing.assert_frame_equal(quoted.samples, run.samples)


def test_editing_the_samples_frame_leaves_the_run_as_it_is(run):
    mine = run.samples
    expected = mine.copy()
    mine["loss"] = 0.0
    mine.iloc[0, mine.columns.get_loc("id")] = "edited"
    pd.testing.assert_frame_equal(run.samples, expected)
    assert np.array_equal(run.samples["id"], expected["id"])


def test_the_summary_lists_the_subsets_in_the_projects_order(tmp_path):
    names = ["val", "train", "test", "prod"]
    data = {name: image_items(8, seed) for seed, name in enumerate(names)}
    data["prod"] = [image for image, _ in data["prod"]]  # unlabeled
    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy)
    run = ls.analyze(project, tmp_path / "run", progress=False, insights=False)
    summary = run.summary()
    assert list(summary) == names
    samples = run.samples
    for name in names:
        assert summary[name]["samples"] == 8
    val = samples[samples["subset"] == "val"]
    assert summary["val"]["mean_loss"] == pytest.approx(val["loss"].mean())
    assert summary["val"]["accuracy"] == pytest.approx(val["correct"].mean())
