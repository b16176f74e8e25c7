"""Terminal table (rich) of discovered concepts."""

from __future__ import annotations

import math

from rich.table import Table

from latentsight.discovery.result import ConceptBank


def _number(value: float, spec: str) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )


def bank_view(bank: ConceptBank, *, top: int = 50) -> Table:
    """Per concept: class, importance, prevalence, reliability and name, most important first."""
    table = Table(
        title=f"{bank.layer}: {len(bank.table)} concepts in {len(bank.banks)} dictionaries",
        title_justify="left",
    )
    for column in ("concept", "class", "|phi|", "phi", "prevalence", "accuracy", "loss x", "name"):
        table.add_column(column, justify="left" if column == "name" else "right")
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
