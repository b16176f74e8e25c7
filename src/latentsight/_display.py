"""Readable terminal tables for a check, a run, and the end of a capture."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Group
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from latentsight._numbers import probability_text

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from rich.console import Console, ConsoleOptions, JustifyMethod, RenderResult

    from latentsight.capture.plan import CapturePlan
    from latentsight.store.run import Run

_CELL_PADDING = 2  # a rich Table pads each cell with one space on either side


@dataclass(frozen=True)
class Column:
    """A column of a :class:`FitTable`; ``wraps`` marks prose, the only cells that may wrap."""

    header: str
    justify: JustifyMethod = "left"
    wraps: bool = False


class FitTable:
    """A table laid out at the console's width so that nothing a user copies is cut: identifiers
    and figures keep their full width, prose columns share the rest without breaking a word, and
    where even that cannot fit, the ``optional`` columns (headers) are left out, first one first."""

    def __init__(self, title: str, columns: Sequence[Column], optional: Sequence[str] = ()) -> None:
        self.title = title
        self.columns = list(columns)
        self.optional = list(optional)
        self.rows: list[tuple[str, ...]] = []

    def add_row(self, *cells: str) -> None:
        """Add one row, a cell (text with rich markup) per column."""
        self.rows.append(cells)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The table with the fewest columns left out whose words all fit the width."""
        for count in range(len(self.optional) + 1):
            shown = [i for i, c in enumerate(self.columns) if c.header not in self.optional[:count]]
            widths = self._widths(console, options, shown)
            if widths is not None:
                break
        yield self._table(shown, widths or {})

    def _widths(
        self, console: Console, options: ConsoleOptions, shown: list[int]
    ) -> dict[int, int] | None:
        """Content width per shown column ({}: every one at its natural width), or None where
        some word would have to be cut."""
        ranges = {i: self._range(console, options, i) for i in shown}
        room = options.max_width - (len(shown) + 1) - _CELL_PADDING * len(shown)
        if sum(widest for _, widest in ranges.values()) <= room:
            return {}
        spare = room - sum(narrowest for narrowest, _ in ranges.values())
        if spare < 0:
            return None
        lacking = sum(widest - narrowest for narrowest, widest in ranges.values())
        return {
            i: narrowest + spare * (widest - narrowest) // lacking
            for i, (narrowest, widest) in ranges.items()
        }

    def _range(self, console: Console, options: ConsoleOptions, index: int) -> tuple[int, int]:
        """The narrowest a column may be (its longest word; all of every cell where it does not
        wrap, though its header may) and its natural width."""
        header = Measurement.get(console, options, self.columns[index].header)
        cells = [Measurement.get(console, options, row[index]) for row in self.rows]
        widest = max([header.maximum, *(cell.maximum for cell in cells)])
        if not self.columns[index].wraps:
            return min(widest, max([header.minimum, *(c.maximum for c in cells)])), widest
        return max([header.minimum, *(cell.minimum for cell in cells)]), widest

    def _table(self, shown: list[int], widths: dict[int, int]) -> Table:
        """The rich Table of the ``shown`` columns at these ``widths`` (missing: natural)."""
        table = Table(title=self.title, title_justify="left")
        for i in shown:
            column = self.columns[i]
            table.add_column(
                column.header, justify=column.justify, overflow="fold", width=widths.get(i)
            )
        for row in self.rows:
            table.add_row(*(row[i] for i in shown))
        return table


def _fmt(value: object) -> str:
    """A figure for a table: ``-`` where there is none (None, or NaN for an unlabeled subset)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _classes(names: Mapping[int, str]) -> str:
    """The class names after their indices, ``0 circle, 1 square``: the samples table and
    ``explain --target`` take the index."""
    return ", ".join(f"{index} {name}" for index, name in names.items())


def _task_text(task: str, n_classes: int | None) -> str:
    """``classification (4 classes)``, ``multilabel (3 labels)``, or the task alone."""
    if not n_classes:
        return task
    return f"{task} ({n_classes} {'labels' if task == 'multilabel' else 'classes'})"


def _labels_view(run: Run) -> Table:
    """Per label of a multilabel run and per subset: how often it is on, and the F1 of its
    predictions, so that the labels the model gets wrong stand out."""
    import numpy as np  # here, not at the top: `latentsight --help` must not wait for them
    from sklearn.metrics import f1_score

    samples = run.samples.dropna(subset=["target"])
    subsets = list(dict.fromkeys(samples["subset"]))
    table = Table(title="Labels: share on / F1", title_justify="left")
    table.add_column("label")
    for subset in subsets:
        table.add_column(subset, justify="right")
    truth = {s: np.stack(samples.loc[samples["subset"] == s, "target"]) >= 0.5 for s in subsets}
    said = {s: np.stack(samples.loc[samples["subset"] == s, "prediction"]) >= 0.5 for s in subsets}
    for label in range(next(iter(truth.values())).shape[1]):
        cells = []
        for subset in subsets:
            on, predicted = truth[subset][:, label], said[subset][:, label]
            f1 = f1_score(on, predicted, zero_division=np.nan)
            cells.append(f"{on.mean():.0%} / {_fmt(f1)}")
        table.add_row(run.class_names.get(label, f"label {label}"), *cells)
    return table


def check_view(plan: CapturePlan) -> Group:
    """What `latentsight check` found: subsets, shapes, layers, loss, metadata."""
    subsets = Table(title="Subsets", title_justify="left")
    for column in ("subset", "samples", "labeled"):
        subsets.add_column(column)
    for subset in plan.subsets:
        subsets.add_row(subset.name, str(subset.size), "yes" if subset.labeled else "no")
    layers = FitTable(
        "Layers" + (" (default choice)" if plan.layers_defaulted else ""),
        [
            Column("layer"),
            Column("kind", wraps=True),
            Column("activation per sample"),
            Column("stored views (dims)", wraps=True),
        ],
    )
    for ref, pooler in plan.layers:
        layers.add_row(
            ref.name,
            pooler.kind + (" (real positions)" if pooler.masked else ""),
            str(tuple(pooler.sample_shape)),
            ", ".join(f"{view} ({dim})" for view, dim in pooler.dims.items()),
        )
    facts = Table.grid(padding=(0, 2))
    facts.add_row("model", type(plan.spec.model).__name__)
    facts.add_row("device", str(plan.spec.device))
    facts.add_row("input batch", plan.input_shape)
    facts.add_row("output batch", plan.output_shape)
    facts.add_row("task", _task_text(plan.spec.task, plan.n_classes))
    if plan.project.classes:
        facts.add_row("classes", _classes(dict(enumerate(plan.project.classes))))
    facts.add_row("loss", ", ".join(plan.loss_names) or "- (no labeled subset)")
    facts.add_row(
        "metrics",
        ", ".join(f"{n} ({m.better} is better)" for n, m in plan.project.metrics.items()) or "-",
    )
    facts.add_row("metadata", ", ".join(plan.metadata_columns) or "-")
    facts.add_row("renders", "yes" if plan.spec.render is not None else "no")
    facts.add_row("checked in", f"{plan.check_seconds:.2f} s")
    parts: list[object] = [facts, subsets, layers]
    if plan.warnings:
        parts.append(warnings_panel(plan.warnings))
    return Group(*parts)


def warnings_panel(warnings: list[str], title: str = "warnings") -> Panel:
    """What the check warned about, in a yellow panel."""
    return Panel("\n".join(warnings), title=title, border_style="yellow")


def _analysis_text(run: Run) -> str:
    """The stored analysis in a line: its layer, view and insights, or how to make one."""
    if not run.analysed:
        return f"none yet: `latentsight insights {run.path}` analyses the run"
    info = run.analysis_info
    return f"layer {info['layer']} ({info['view']} view), {len(run.insights)} insights"


def _stored_text(run: Run) -> str:
    """What later commands stored in the run beside the capture: concept tables, explanations."""
    from latentsight.store.concepts import stored_tables
    from latentsight.store.explanations import EXPLANATIONS, has_maps

    parts = [f"concepts/{table.file.name}" for table in stored_tables(run.path)]
    if has_maps(run.path):
        entries = [folder for folder in (run.path / EXPLANATIONS).iterdir() if folder.is_dir()]
        parts.append(f"explanation maps ({len(entries)} method, layer and target choices)")
    return ", ".join(parts) or "-"


def run_view(run: Run) -> Group:
    """What a run holds: provenance, subsets with headline figures, layers, columns, quarantine."""
    manifest = run.manifest
    provenance = manifest["provenance"]
    facts = Table.grid(padding=(0, 2))
    facts.add_row("run", str(run.path))
    facts.add_row("project", manifest["name"])
    facts.add_row("created", manifest["created_at"])
    facts.add_row(
        "model",
        f"{provenance['model_class']} ({provenance['model_parameters']:,} parameters, "
        f"weights {provenance['model_fingerprint'][:12]})",
    )
    facts.add_row("data", f"fingerprint {provenance['data_fingerprint'][:12]}")
    facts.add_row("task", _task_text(manifest["task"], manifest["n_classes"]))
    if run.class_names:
        facts.add_row("classes", _classes(run.class_names))
    facts.add_row("loss components", ", ".join(manifest["loss_components"]) or "-")
    facts.add_row(
        "metrics", ", ".join(f"{n} ({b} is better)" for n, b in manifest["metrics"].items()) or "-"
    )
    facts.add_row("metadata", ", ".join(manifest["metadata_columns"]) or "-")
    timings = manifest.get("timings", {})
    facts.add_row(
        "timings",
        ", ".join(
            f"{name.removesuffix('_s')} {seconds:.1f} s" for name, seconds in timings.items()
        ),
    )
    facts.add_row(
        "versions",
        f"latentsight {provenance['latentsight_version']}, torch {provenance['torch_version']}",
    )
    facts.add_row("analysis", _analysis_text(run))
    facts.add_row("stored", _stored_text(run))

    summary = run.summary()
    quarantined = run.quarantine["subset"].value_counts().to_dict() if len(run.quarantine) else {}
    subsets = Table(title="Subsets", title_justify="left")
    accuracy = "exact match" if manifest["task"] == "multilabel" else "accuracy"
    for column in ("subset", "samples", "quarantined", "mean loss", accuracy):
        subsets.add_column(column, justify="right" if column != "subset" else "left")
    for subset in manifest["subsets"]:
        figures = summary.get(subset["name"], {})
        subsets.add_row(
            subset["name"],
            str(figures.get("samples", 0)),
            str(quarantined.get(subset["name"], 0)),
            _fmt(figures.get("mean_loss")),
            _fmt(figures.get("accuracy")),
        )
    layers = FitTable(
        "Latents",
        [
            Column("layer"),
            Column("kind"),
            Column("activation per sample"),
            Column("views (N x D, memory-mapped)", wraps=True),
        ],
    )
    for entry in manifest["layers"]:
        layers.add_row(
            entry["name"],
            entry["kind"],
            str(tuple(entry["sample_shape"])),
            ", ".join(
                f"{view} {manifest['n_samples']} x {spec['dim']}"
                for view, spec in entry["views"].items()
            ),
        )
    parts: list[object] = [facts, subsets, layers]
    if manifest.get("check_warnings"):
        parts.append(warnings_panel(manifest["check_warnings"], "warnings of the check"))
    if manifest["task"] == "multilabel" and "prediction" in run.samples:
        parts.append(_labels_view(run))
    if len(run.quarantine):
        shown = run.quarantine.head(5)
        lines = [f"{row.id}: {row.error}" for row in shown.itertuples()]
        more = len(run.quarantine) - len(shown)
        if more:
            lines.append(f"... and {more} more (run.quarantine lists them all)")
        parts.append(Panel("\n".join(lines), title="quarantined samples", border_style="yellow"))
    return Group(*parts)


def insights_view(run: Run, top: int) -> Group:
    """The ranked insights, one line each, with what was analysed and how to see one in full."""
    info = run.analysis_info
    insights = run.insights
    if not insights:
        return _no_insights_view(info)
    searched = info.get("layers_searched", [info["layer"]])
    table = FitTable(
        f"Insights: map of layer {info['layer']} ({info['view']} view), layers searched: "
        f"{', '.join(searched)}; {len(insights)} significant of {info['candidates']} tested",
        [
            Column("#", "right"),
            Column("kind", wraps=True),
            Column("finding", wraps=True),
            *(Column(figure, "right") for figure in ("samples", "effect", "q")),
        ],
    )
    for rank, insight in enumerate(insights[:top], start=1):
        finding = insight.title
        if insight.merged:
            finding += f" [dim](+{len(insight.merged)} merged)[/]"
        table.add_row(
            str(rank),
            insight.kind.replace("_", " "),
            finding,
            str(insight.size),
            f"{insight.evidence[0].effect:.3g}",
            probability_text(insight.q_value),
        )
    hint = f"One in full: latentsight insights {run.path} --show RANK"
    if len(insights) > top:
        hint += f"; all {len(insights)}: --top {len(insights)}"
    failed = {name: note["error"] for name, note in info["detectors"].items() if "error" in note}
    parts: list[object] = [table, f"[dim]{hint}[/]"]
    if failed:
        lines = [f"{name}: {error}" for name, error in failed.items()]
        parts.append(Panel("\n".join(lines), title="detectors that failed", border_style="red"))
    return Group(*parts)


def _no_insights_view(info: dict) -> Group:
    """What was tested when nothing was significant: each detector's count, or why it did not
    run; the detectors made for other tasks are named after the table, in one line."""
    elsewhere = {
        name: note["not_for_task"]
        for name, note in info["detectors"].items()
        if "not_for_task" in note
    }
    notes = {name: note for name, note in info["detectors"].items() if name not in elsewhere}
    tested = sum(note.get("tested", 0) for note in notes.values())
    table = Table(
        title=f"No significant finding among the {tested} populations tested "
        f"(map of layer {info['layer']}, {info['view']} view; layers searched: "
        f"{', '.join(info.get('layers_searched', [info['layer']]))}). Per detector:",
        title_justify="left",
    )
    for column in ("detector", "tested", "note"):
        table.add_column(column, justify="right" if column == "tested" else "left")
    for name, note in notes.items():
        remark = note.get("error") or note.get("skipped") or ""
        table.add_row(name.replace("_", " "), str(note.get("tested", "-")), str(remark))
    if not elsewhere:
        return Group(table)
    other = ", ".join(f"{name.replace('_', ' ')} ({tasks})" for name, tasks in elsewhere.items())
    return Group(table, Text(f"Made for other tasks, not run: {other}.", style="dim"))


def insight_view(run: Run, rank: int) -> Group:
    """One insight in full: what was found and where, every piece of evidence, what to do."""
    insight = run.insights[rank - 1]
    facts = Table.grid(padding=(0, 2))
    facts.add_row("[bold]finding[/]", Text(insight.title, style="bold"))
    facts.add_row("[bold]kind[/]", insight.kind.replace("_", " "))
    facts.add_row("[bold]samples[/]", f"{insight.size:,}")
    facts.add_row("[bold]what it is[/]", Text(insight.description))
    facts.add_row("[bold]what to do[/]", Text(insight.action))
    if insight.merged:
        facts.add_row("[bold]merged[/]", Text("\n".join(insight.merged)))
    shown = ", ".join(insight.population[:10])
    more = (
        f" and {insight.size - 10:,} more (every one: latentsight serve {run.path}; in Python, "
        f"run.insights[{rank - 1}].population)"
    )
    facts.add_row("[bold]members[/]", Text(shown + (more if insight.size > 10 else "")))
    evidence = FitTable(
        "Evidence",
        [
            Column("detector"),
            Column("layer"),
            Column("effect"),
            Column("what the effect measures", wraps=True),
            *(Column(figure) for figure in ("p", "q", "n")),
        ],
        optional=["p", "n"],
    )
    for item in insight.evidence:
        evidence.add_row(
            item.detector,
            item.layer or "-",
            f"{item.effect:.3g}",
            item.effect_name,
            probability_text(item.p_value),
            probability_text(item.q_value),
            f"{item.n:,}",
        )
    title = f"insight #{rank}"  # short: a panel title does not wrap, the finding above does
    return Group(Panel(facts, title=title, title_align="left"), evidence)
