"""Terminal tables (rich) of neuron labels, the layer summary and the spurious-feature audit."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from latentsight._numbers import probability_text
from latentsight.concepts.audit import Audit
from latentsight.concepts.result import Concepts


def _q(value: float) -> str:
    return probability_text(value, ".1e" if value < 0.001 else ".3f")


def labels_view(concepts: Concepts, *, top: int = 30, show_all: bool = False) -> Group:
    """Per layer, the neurons with a significant label (all with ``show_all``), best AUC first."""
    tables = []
    for layer, group in concepts.table.groupby("layer", sort=False):
        shown = group if show_all else group[group["significant"]]
        shown = shown.sort_values("auc", ascending=False, kind="stable").head(top)
        table = Table(
            title=f"{layer}: {int(group['significant'].sum())} of {len(group)} neurons have a "
            f"significant concept (q < {concepts.alpha})",
            title_justify="left",
        )
        for column in ("neuron", "concept (formula)", "AUC", "q", "share", "runner-up"):
            table.add_column(column, justify="left" if "formula" in column else "right")
        for row in shown.itertuples():
            runner_up = row.runner_ups[0] if row.runner_ups else "-"
            table.add_row(
                str(row.neuron),
                row.formula or "(constant)",
                f"{row.auc:.3f}" if row.formula else "-",
                _q(row.q_value),
                f"{row.fraction:.1%}" if row.formula else "-",
                runner_up,
            )
        tables.append(table)
    return Group(*tables, summary_view(concepts))


def summary_view(concepts: Concepts) -> Table:
    """The layer summary: significant neurons and dominant concepts per layer."""
    table = Table(title="Layers", title_justify="left")
    for column in ("layer", "neurons", "significant", "mean AUC", "dominant concepts"):
        table.add_column(column)
    for row in concepts.layer_summary.itertuples():
        table.add_row(
            row.layer,
            str(row.neurons),
            f"{row.significant} ({row.share_significant:.0%})",
            f"{row.mean_auc:.3f}" if row.significant else "-",
            ", ".join(row.top_concepts) or "-",
        )
    return table


def neurons_view(concepts: Concepts, concept: str, *, top: int = 30) -> Table:
    """The neurons that detect a concept, by AUC."""
    found = concepts.neurons_for(concept).head(top)
    table = Table(title=f"Neurons that detect '{concept}'", title_justify="left")
    for column in ("layer", "neuron", "AUC", "q", "its own best concept"):
        table.add_column(column)
    for row in found.itertuples():
        table.add_row(
            row.layer, str(row.neuron), f"{row.auc:.3f}", _q(row.q_value), row.best_formula
        )
    return table


def audit_view(audit: Audit) -> Table:
    """Per class, its driving neurons, what they detect, and the verdict."""
    table = Table(title=f"Spurious-feature audit of {audit.layer}", title_justify="left")
    for column in ("class", "neuron", "share of logit", "concept", "AUC", "class AUC", "verdict"):
        table.add_column(column)
    for audited in audit.classes:
        verdict = (
            f"[bold red]likely shortcut ({audited.shortcut_share:.0%})[/]"
            if audited.likely_shortcut
            else f"class ({audited.shortcut_share:.0%} other)"
        )
        for i, driver in enumerate(audited.drivers):
            table.add_row(
                audited.name if i == 0 else "",
                str(driver.neuron),
                f"{driver.share:.0%}",
                str(driver.formula) if driver.formula is not None else "-",
                f"{driver.auc:.3f}",
                f"{driver.class_auc:.3f}",
                verdict if i == 0 else "",
            )
    return table
