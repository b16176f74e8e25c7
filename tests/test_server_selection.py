"""Selection statistics computed from the smaller side of a selection agree with pandas and with
the insights' describer, for small and large selections, repeated rows and missing values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentsight.insights.describe import enriched_metadata
from latentsight.server.selection import SelectionStats

METADATA = ["size", "colour", "clutter", "flag", "empty"]


@pytest.fixture(scope="module")
def samples() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 4_000
    group = rng.integers(0, 4, n)
    size = rng.normal(10, 2, n) - 3 * (group == 1)
    size[rng.random(n) < 0.1] = np.nan  # missing values are left out of the rank test
    colour = np.where(group == 2, "red", rng.choice(["red", "blue", "green"], n)).astype(object)
    colour[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "subset": np.where(rng.random(n) < 0.7, "train", "val"),
            "loss": rng.gamma(2, 1, n) * (1 + (group == 1)),
            "correct": rng.random(n) < 0.8,
            "size": size,
            "colour": colour,
            "clutter": rng.integers(0, 5, n),  # few integers, ties everywhere
            "flag": group == 3,
            "empty": np.full(n, np.nan),
            "group": group,
        }
    )


def _masks(samples: pd.DataFrame) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    group = samples["group"].to_numpy()
    return [
        group == 1,  # a quarter: the selection is the smaller side
        group != 2,  # three quarters: the rest is the smaller side
        rng.random(len(samples)) < 0.5,
        (samples["size"] > 11).to_numpy(),
        np.arange(len(samples)) < 3,
        np.arange(len(samples)) > 0,
    ]


def test_statistics_match_pandas_and_the_describer(samples):
    stats = SelectionStats(samples, METADATA)
    found_any = False
    for mask in _masks(samples):
        described = stats.describe(np.flatnonzero(mask))
        assert described["size"] == mask.sum() and described["rest"] == (~mask).sum()
        for value in described["values"]:
            column = samples[value["column"]].astype(float)
            assert value["inside"] == pytest.approx(column[mask].mean())
            assert value["outside"] == pytest.approx(column[~mask].mean())
        mix = {m["subset"]: (m["inside"], m["outside"]) for m in described["subsets"]}
        for subset, (inside, outside) in mix.items():
            assert inside == (samples["subset"][mask] == subset).sum()
            assert outside == (samples["subset"][~mask] == subset).sum()
        expected = enriched_metadata(samples, METADATA, mask)
        assert [e["text"] for e in described["enriched"]] == [e.text for e in expected]
        assert [e["p_value"] for e in described["enriched"]] == pytest.approx(
            [e.p_value for e in expected], rel=1e-9, abs=1e-300
        )
        assert [e["effect"] for e in described["enriched"]] == pytest.approx(
            [e.effect for e in expected]
        )
        found_any |= bool(expected)
    assert found_any  # the planted groups are found, so the comparison covered the tests


def test_repeated_rows_count_once_and_extremes_report_nothing(samples):
    stats = SelectionStats(samples, METADATA)
    rows = np.flatnonzero(samples["group"] == 1)
    assert stats.describe(np.concatenate([rows, rows[:50]])) == stats.describe(rows)
    assert stats.describe(np.zeros(0, np.int64))["enriched"] == []
    everything = stats.describe(np.arange(len(samples)))
    assert everything["enriched"] == [] and everything["rest"] == 0
    assert all(v["outside"] is None for v in everything["values"])
