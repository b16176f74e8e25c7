"""Metadata trends on data whose trends are known: the demo's scale sensitivity is a significant
negative loss-vs-size trend, random columns and a permuted loss raise nothing, and the numbers are
scipy's."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from conftest import analysis_context
from scipy import stats

from latentsight.insights.base import AnalysisContext, AnalysisSettings
from latentsight.insights.metadata_trends import MetadataTrends
from latentsight.insights.populations import metadata_populations
from latentsight.insights.stats import benjamini_hochberg
from latentsight.latent.neighbors import neighbor_graph

ALPHA = AnalysisSettings().alpha


def _with_columns(ctx: AnalysisContext, **columns) -> AnalysisContext:
    """The context with extra metadata columns."""
    return dataclasses.replace(
        ctx,
        samples=ctx.samples.assign(**columns),
        metadata_columns=[*ctx.metadata_columns, *columns],
    )


def _by_column(result) -> dict:
    return {i.evidence[0].details["column"]: i for i in result.insights}


# --- the demo: scale sensitivity ---------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes_context(shapes_run):
    rng = np.random.default_rng(0)
    ctx = analysis_context(shapes_run)
    return _with_columns(
        ctx,
        random_number=rng.normal(size=ctx.n),
        random_category=rng.choice(["a", "b", "c", "d"], ctx.n),
        random_count=rng.integers(0, 4, ctx.n),
        random_flag=rng.random(ctx.n) < 0.3,
    )


def test_small_objects_are_a_significant_negative_size_trend(shapes_context):
    ctx = shapes_context
    result = MetadataTrends().run(ctx)
    size = _by_column(result)["size"]
    evidence = size.evidence[0]
    details = evidence.details
    assert size.kind == "metadata_trend" and evidence.q_value < 1e-10
    assert details["test"] == "spearman" and details["spearman_rho"] < -0.2
    val = ctx.samples[ctx.samples["subset"] == "val"]
    rho, p = stats.spearmanr(val["size"], val["loss"])
    assert details["spearman_rho"] == pytest.approx(rho) and details["spearman_p"] == pytest.approx(
        p
    )
    assert details["tested_on"] == "evaluation subsets"
    # The worst bin is the smallest objects, and the binned trend falls overall.
    bins = details["bins"]
    assert (
        details["worst"] == bins[0]["label"] and bins[0]["mean_loss"] > 1.5 * bins[-1]["mean_loss"]
    )
    assert sum(b["n"] for b in bins) == len(val)
    sizes = ctx.samples.set_index("id").loc[size.population, "size"]
    assert sizes.max() <= details["edges"][1] and len(size.population) == evidence.n
    assert evidence.effect == pytest.approx(bins[0]["mean_loss"] / val["loss"].mean())
    assert "train" in evidence.counts and "val" in evidence.counts
    json.dumps(asdict(size), allow_nan=True)  # plain Python values, ready for insights.json
    # Columns with no relation to the loss are not significant.
    q_values = result.info["columns"]
    for column in ("random_number", "random_category", "random_count", "random_flag"):
        assert q_values[column]["q"] >= ALPHA, (column, q_values[column])


def test_permuted_loss_raises_nothing(shapes_context):
    rng = np.random.default_rng(1)
    ctx = shapes_context
    shuffled = ctx.samples["loss"].to_numpy().copy()
    shuffled = rng.permutation(shuffled)
    result = MetadataTrends().run(
        dataclasses.replace(ctx, samples=ctx.samples.assign(loss=shuffled))
    )
    assert result.info["tested"] == len(ctx.metadata_columns)
    flagged = {c: v["q"] for c, v in result.info["columns"].items() if v["q"] < ALPHA}
    assert flagged == {}


# --- hand-made data: scipy's numbers, exactly ------------------------------------------------------


def _context(samples: pd.DataFrame, columns: list[str]) -> AnalysisContext:
    """An AnalysisContext over a samples table (latents are noise; only the table matters)."""
    n = len(samples)
    latents = np.random.default_rng(0).normal(size=(n, 4))
    return AnalysisContext(
        samples=samples,
        layer="toy",
        latents=latents,
        reduced=latents,
        coords=np.zeros((n, 2)),
        clusters=np.zeros(n, dtype=int),
        noise=np.zeros(n, dtype=bool),
        neighbors=neighbor_graph(latents, 5),
        loss_columns=["loss"],
        metrics={},
        metadata_columns=columns,
        task="classification",
        settings=AnalysisSettings(),
    )


def _hand_made(n_val: int = 300, seed: int = 0) -> pd.DataFrame:
    """Loss rising with age, worst at site "c", highest at both ends of ``dose``; ``noise``
    unrelated."""
    rng = np.random.default_rng(seed)
    n = 600 + n_val
    age = rng.uniform(20, 80, n)
    site = rng.choice(["a", "b", "c", "d"], n)
    dose = rng.uniform(-1, 1, n)
    loss = rng.exponential(1.0, n) * (1 + (age - 20) / 30) * np.where(site == "c", 2.0, 1.0)
    loss *= 1 + 2 * dose**2
    return pd.DataFrame(
        {
            "id": [f"s{i}" for i in range(n)],
            "subset": ["train"] * 600 + ["val"] * n_val,
            "loss": loss,
            "age": age,
            "site": site,
            "dose": dose,
            "noise": rng.normal(size=n),
        }
    )


def test_hand_made_numbers_match_scipy():
    samples = _hand_made()
    columns = ["age", "site", "dose", "noise"]
    result = MetadataTrends().run(_context(samples, columns))
    val = samples[samples["subset"] == "val"]
    rho, p_rho = stats.spearmanr(val["age"], val["loss"])
    h_site, p_site = stats.kruskal(*[g["loss"].to_numpy() for _, g in val.groupby("site")])
    info = result.info["columns"]
    age_bins = pd.qcut(val["age"], 5)
    _, p_age_bins = stats.kruskal(
        *[g["loss"].to_numpy() for _, g in val.groupby(age_bins, observed=True)]
    )
    assert info["age"]["p"] == pytest.approx(min(1.0, 2 * min(p_rho, p_age_bins)))
    assert info["site"]["p"] == pytest.approx(p_site)
    expected_q = benjamini_hochberg(np.array([info[c]["p"] for c in columns]))
    np.testing.assert_allclose([info[c]["q"] for c in columns], expected_q)
    insights = _by_column(result)
    site = insights["site"].evidence[0]
    assert site.details["kruskal_h"] == pytest.approx(h_site) and site.details["worst"] == "c"
    assert site.effect == pytest.approx(
        val.loc[val["site"] == "c", "loss"].mean() / val["loss"].mean()
    )
    assert set(insights["site"].population) == set(samples.loc[samples["site"] == "c", "id"])
    assert insights["age"].evidence[0].details["spearman_rho"] == pytest.approx(rho)
    age = insights["age"].evidence[0].details
    assert age["worst"] == age["bins"][-1]["label"]  # the oldest bin
    # A U-shaped trend is found by the test across bins, not by the rank correlation.
    dose = insights["dose"].evidence[0]
    assert dose.details["test"] == "kruskal" and dose.q_value < ALPHA
    assert dose.details["worst"] in (
        dose.details["bins"][0]["label"],
        dose.details["bins"][-1]["label"],
    )
    assert info["noise"]["q"] >= ALPHA
    assert all(e.q_value < ALPHA for c in ("age", "site") for e in insights[c].evidence)


def test_few_evaluation_samples_fall_back_to_every_labeled_sample():
    samples = _hand_made(n_val=20)
    result = MetadataTrends().run(_context(samples, ["age", "site"]))
    assert {i.evidence[0].details["tested_on"] for i in result.insights} == {"labeled subsets"}
    rho, _ = stats.spearmanr(samples["age"], samples["loss"])
    age = _by_column(result)["age"].evidence[0]
    assert age.details["spearman_rho"] == pytest.approx(rho)


def test_few_distinct_values_get_one_bin_each_and_missing_values_are_left_out():
    samples = _hand_made()
    rng = np.random.default_rng(5)
    samples["grade"] = rng.integers(1, 4, len(samples)).astype(float)
    samples.loc[samples.index[::7], "grade"] = np.nan
    samples["loss"] *= samples["grade"].fillna(1.0)
    result = MetadataTrends().run(_context(samples, ["grade"]))
    grade = _by_column(result)["grade"].evidence[0]
    assert [b["label"] for b in grade.details["bins"]] == ["1", "2", "3"]
    assert grade.details["worst"] == "3" and grade.details["n_missing"] > 0
    val = samples[(samples["subset"] == "val") & samples["grade"].notna()]
    rho, _ = stats.spearmanr(val["grade"], val["loss"])
    assert grade.details["spearman_rho"] == pytest.approx(rho)


def test_null_columns_are_flagged_at_most_at_the_nominal_rate():
    rng = np.random.default_rng(7)
    samples = _hand_made(n_val=400)
    columns = {f"n{i}": rng.normal(size=len(samples)) for i in range(60)}
    columns |= {f"c{i}": rng.choice(list("abc"), len(samples)) for i in range(60)}
    result = MetadataTrends().run(_context(samples.assign(**columns), list(columns)))
    p = np.array([v["p"] for v in result.info["columns"].values()])
    assert (p < 0.05).mean() <= 0.1
    assert all(v["q"] >= ALPHA for v in result.info["columns"].values())


def test_quantile_bins_are_named_by_the_values_their_members_take():
    counts = np.arange(1000) % 10  # integers 0..9: the bins' own edges fall between them
    samples = pd.DataFrame(
        {"id": [f"s{i}" for i in range(1000)], "subset": "val", "loss": 1.0, "count": counts}
    )
    ctx = _context(samples, ["count"])
    names = {p.name: p.mask for p in metadata_populations(ctx)}
    assert names, "no bins"
    for name, mask in names.items():
        low, high = (float(v) for v in name.split("[")[1].rstrip("]").split(", "))
        assert (low, high) == (counts[mask].min(), counts[mask].max()), name
    assert sum(mask.sum() for mask in names.values()) == 1000  # the bins cover every sample
