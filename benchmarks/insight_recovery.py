"""Recovery of the demo's planted failure modes: latentsight's ranked insights against two peers on
the same run, the same embeddings and the same predicted probabilities.

Peers:
- cleanlab Datalab with the ``label`` and ``underperforming_group`` issue types (needs
  ``pip install 'cleanlab[datalab]'``, the ``bench`` extra);
- a confusion-matrix baseline, as in the Domino paper: one slice per (label, prediction) cell,
  ranked by mean loss.

Per planted mode, as the Domino paper scores slice discovery: the rank, precision, recall and F1
of the best-matching population among each finder's top 10, and with its members ordered hardest
first (by loss) its precision among the first 10 and its average precision; beside them the
average precision of the whole list read top-down (see ``latentsight.demo.recovery``).
Run: ``python benchmarks/insight_recovery.py [--quick]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

import latentsight as ls
from latentsight.demo.recovery import PLANTED_MODES, masks_of, planted_masks, recovery_table
from latentsight.demo.run import GROUND_TRUTH, run_demo


def datalab_populations(run, layer: str) -> list[np.ndarray]:
    """Datalab's label issues and its underperforming group, most severe issue type first."""
    from cleanlab import Datalab

    samples = run.samples
    probabilities = np.stack(samples["probabilities"].to_numpy()).astype(np.float64)
    lab = Datalab(data={"label": samples["target"].to_numpy()}, label_name="label", verbosity=0)
    lab.find_issues(
        pred_probs=probabilities,
        features=np.asarray(run.latent(layer), dtype=np.float32),
        issue_types={"label": {}, "underperforming_group": {}},
    )
    summary = lab.get_issue_summary().sort_values("score")
    populations = []
    for issue_type in summary["issue_type"]:
        flagged = lab.get_issues(issue_type)[f"is_{issue_type}_issue"].to_numpy(bool)
        if flagged.any():
            populations.append(flagged)
    return populations


def confusion_populations(run, min_size: int = 10) -> list[np.ndarray]:
    """One slice per (label, prediction) cell with at least ``min_size`` samples, worst loss first."""
    samples = run.samples
    cells = samples.groupby(["target", "prediction"])["loss"].agg(["mean", "size"])
    cells = cells[cells["size"] >= min_size].sort_values("mean", ascending=False)
    target, prediction = samples["target"].to_numpy(), samples["prediction"].to_numpy()
    return [(target == t) & (prediction == p) for t, p in cells.index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny demo (faster, noisier)")
    parser.add_argument("--out", type=Path, default=None, help="where to build the demo run")
    parser.add_argument("--reuse", action="store_true", help="reuse the demo run already at --out")
    args = parser.parse_args()
    console = Console()
    out = args.out or Path(tempfile.mkdtemp(prefix="latentsight-recovery-")) / "demo"
    if args.reuse and (out / GROUND_TRUTH).is_file():
        run = ls.open_run(out)
    else:
        run = run_demo(out, tiny=args.quick, console=console)
    started = time.perf_counter()
    insights = run.analyze(progress=False)
    analysis_seconds = time.perf_counter() - started
    truth = pd.read_parquet(run.path / GROUND_TRUTH)
    masks = planted_masks(run.samples, truth)
    ids = run.samples["id"].tolist()
    layer = run.analysis_info["layer"]
    started = time.perf_counter()
    datalab = datalab_populations(run, layer)
    datalab_seconds = time.perf_counter() - started
    hardness = run.samples["loss"].to_numpy()
    ours = masks_of([i.population for i in insights], ids)
    tables = pd.concat(
        [
            recovery_table("latentsight", ours, masks, hardness),
            recovery_table("cleanlab Datalab", datalab, masks, hardness),
            recovery_table("confusion matrix", confusion_populations(run), masks, hardness),
        ]
    )
    table = Table(title=f"Planted-mode recovery on the demo ({len(ids)} samples)")
    columns = ("mode", "finder", "rank", "precision", "recall", "F1", "P@10", "AP", "list AP")
    for column in columns:
        table.add_column(column, justify="left" if column in ("mode", "finder") else "right")
    for mode in PLANTED_MODES:
        rows = tables[tables["mode"] == mode]
        for _, row in rows.iterrows():
            found = row["rank"] is not None and not pd.isna(row["rank"])
            table.add_row(
                mode if row["finder"] == "latentsight" else "",
                row["finder"],
                str(int(row["rank"])) if found else "-",
                f"{row['precision']:.2f}",
                f"{row['recall']:.2f}",
                f"{row['f1']:.2f}",
                f"{row['precision_at_10']:.2f}",
                f"{row['average_precision']:.2f}",
                f"{row['list_average_precision']:.2f}",
            )
        table.add_section()
    console.print(table)
    ahead = []
    for mode in PLANTED_MODES:
        rows = tables[tables["mode"] == mode].set_index("finder")
        figures = []
        for measure in ("f1", "precision_at_10", "average_precision"):
            mine, best_peer = (
                rows.loc["latentsight", measure],
                rows.drop(index="latentsight")[measure].max(),
            )
            ahead.append(mine > best_peer)
            figures.append(f"{measure} {mine:.2f} vs {best_peer:.2f}")
        console.print(f"{mode}: latentsight vs best peer: " + ", ".join(figures))
    console.print(
        f"latentsight ahead on {sum(ahead)}/{len(ahead)} (mode, measure) pairs; analysis "
        f"{analysis_seconds:.1f} s (every layer searched), Datalab {datalab_seconds:.1f} s."
    )


if __name__ == "__main__":
    main()
