"""`latentsight demo`: generate the shapes data, train or reuse the demo CNN, capture a run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from latentsight import losses
from latentsight._loading import record_project
from latentsight.api import analyze
from latentsight.demo.model import ShapesCNN, load_or_train_demo_model
from latentsight.demo.projects import MODULE, project_name
from latentsight.demo.shapes import SHAPES, ShapesConfig, ShapesSubset, generate_shapes
from latentsight.project import Project
from latentsight.store.files import write_parquet
from latentsight.store.manifest import MANIFEST
from latentsight.store.run import Run

DEMO_LAYERS = ["features.1.0", "features.2", "classifier.3:input"]
GROUND_TRUTH = "extras/ground_truth.parquet"


def demo_config(*, tiny: bool = False, clean: bool = False, seed: int = 0) -> ShapesConfig:
    """The demo's data configuration: default or tiny size, planted modes on or the clean control."""
    config = ShapesConfig.tiny(seed=seed) if tiny else ShapesConfig(seed=seed)
    return config.clean() if clean else config


def demo_project(subsets: dict[str, ShapesSubset], model: ShapesCNN) -> Project:
    """The Project of the demo: the shapes subsets, their visible metadata, three layers."""
    metadata = pd.concat([subset.metadata for subset in subsets.values()], ignore_index=True)
    return Project(
        name="shapes-demo",
        model=model,
        data=dict(subsets),
        loss=losses.cross_entropy,
        metadata=metadata,
        layers=DEMO_LAYERS,
        classes=list(SHAPES),
    )


def run_demo(
    out: str | Path = "runs/demo",
    *,
    tiny: bool = False,
    clean: bool = False,
    retrain: bool = False,
    seed: int = 0,
    console: Console | None = None,
) -> Run:
    """Build the demo run at ``out`` (replacing an earlier demo run there) and return it."""
    console = console or Console()
    out = Path(out)
    config = demo_config(tiny=tiny, clean=clean, seed=seed)
    planted = "clean control, nothing planted" if clean else "failure modes planted"
    with console.status(f"Generating the shapes data set ({planted})"):
        subsets = generate_shapes(config)
    sizes = ", ".join(f"{name} {len(subset)}" for name, subset in subsets.items())
    console.print(
        f"[bold]Data[/]: {sizes} images of {config.image_size}x{config.image_size} ({planted})"
    )

    with Progress(
        TextColumn("[bold blue]{task.description:>14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("training CNN", total=None, loss="-")

        def on_epoch(epoch: int, epochs: int, loss: float) -> None:
            progress.update(task, completed=epoch, total=epochs, loss=f"{loss:.3f}")

        model, cached = load_or_train_demo_model(
            config, subsets, retrain=retrain, seed=seed, progress=on_epoch
        )
    console.print(
        "[bold]Model[/]: "
        + ("reused the cached demo CNN" if cached else "trained the demo CNN and cached it")
    )

    replace = (out / MANIFEST).is_file()
    run = analyze(demo_project(subsets, model), out, overwrite=replace)
    write_ground_truth(subsets, out)
    record_project(out, f"{MODULE}:{project_name(tiny=tiny, clean=clean, seed=seed)}")
    return run


def write_ground_truth(subsets: dict[str, ShapesSubset], out: Path) -> None:
    """Keep the subsets' hidden ground truth beside the run at ``out`` (``GROUND_TRUTH``), apart
    from the metadata the analysis sees, so recovery can be scored."""
    truth = pd.concat([subset.truth for subset in subsets.values()], ignore_index=True)
    (out / GROUND_TRUTH).parent.mkdir(parents=True, exist_ok=True)
    write_parquet(out / GROUND_TRUTH, pa.Table.from_pandas(truth, preserve_index=False))
