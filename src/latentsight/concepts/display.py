"""Terminal tables (rich) of neuron labels, the layer summary and the spurious-feature audit."""

from __future__ import annotations

from rich.console import Group

from latentsight._display import Column, FitTable
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
        table = FitTable(
            f"{layer}: {int(group['significant'].sum())} of {len(group)} neurons have a "
            f"significant concept (q < {concepts.alpha})",
            [
                Column("neuron", "right"),
                Column("concept (formula)", wraps=True),
                *(Column(figure, "right") for figure in ("AUC", "q", "share")),
                Column("runner-up", wraps=True),
            ],
            optional=["runner-up"],
        )
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


def summary_view(concepts: Concepts) -> FitTable:
    """The layer summary: significant neurons and dominant concepts per layer."""
    table = FitTable(
        "Layers",
        [
            *(Column(name) for name in ("layer", "neurons", "significant", "mean AUC")),
            Column("dominant concepts", wraps=True),
        ],
    )
    for row in concepts.layer_summary.itertuples():
        table.add_row(
            row.layer,
            str(row.neurons),
            f"{row.significant} ({row.share_significant:.0%})",
            f"{row.mean_auc:.3f}" if row.significant else "-",
            ", ".join(row.top_concepts) or "-",
        )
    return table


def neurons_view(concepts: Concepts, concept: str, *, top: int = 30) -> FitTable:
    """The neurons that detect a concept, by AUC."""
    found = concepts.neurons_for(concept).head(top)
    table = FitTable(
        f"Neurons that detect '{concept}'",
        [
            *(Column(name) for name in ("layer", "neuron", "AUC", "q")),
            Column("its own best concept", wraps=True),
        ],
    )
    for row in found.itertuples():
        table.add_row(
            row.layer, str(row.neuron), f"{row.auc:.3f}", _q(row.q_value), row.best_formula
        )
    return table


def audit_view(audit: Audit) -> FitTable:
    """Per class, its driving neurons, what they detect, and the verdict."""
    table = FitTable(
        f"Spurious-feature audit of {audit.layer}",
        [
            *(Column(name) for name in ("class", "neuron", "share of logit")),
            Column("concept", wraps=True),
            *(Column(name) for name in ("AUC", "class AUC")),
            Column("verdict", wraps=True),
        ],
    )
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
