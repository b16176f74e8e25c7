"""Terminal table (rich) of discovered concepts."""

from __future__ import annotations

import math

from latentsight._display import Column, FitTable
from latentsight.discovery.result import ConceptBank


def _number(value: float, spec: str) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )


def bank_view(bank: ConceptBank, *, top: int = 50) -> FitTable:
    """Per concept: class, importance, prevalence, reliability and name, most important first;
    at a narrow width the reliability figures (loss x, then accuracy) give way to the names."""
    figures = ("concept", "class", "|phi|", "phi", "prevalence", "accuracy", "loss x")
    table = FitTable(
        f"{bank.layer}: {len(bank.table)} concepts in {len(bank.banks)} dictionaries",
        [*(Column(name, "right") for name in figures), Column("name", wraps=True)],
        optional=["loss x", "accuracy"],
    )
    shown = bank.table.sort_values(
        ["class", "importance", "prevalence"], ascending=[True, False, False], kind="stable"
    ).head(top)
    for row in shown.to_dict("records"):
        name = row["name"] if row["name"] == "unnamed" else f"{row['name']} (AUC {row['auc']:.2f})"
        table.add_row(
            str(row["concept"]),
            str(row.get("class_name", row["class"])) if row["class"] is not None else "all",
            _number(row["importance"], ".3f"),
            _number(row["signed_importance"], "+.3f"),
            _number(row["prevalence"], ".0%"),
            _number(row["accuracy"], ".0%"),
            _number(row["loss_ratio"], ".2f"),
            name,
        )
    return table
