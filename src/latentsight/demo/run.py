"""`latentsight demo`: generate the shapes data, train or reuse the demo CNN, capture a run."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from latentsight import losses
from latentsight._loading import record_project
from latentsight.api import analyze
from latentsight.demo.model import Progress as EpochProgress
from latentsight.demo.model import ShapesCNN, demo_model_path, load_or_train_demo_model
from latentsight.demo.projects import MODULE, project_name
from latentsight.demo.shapes import SHAPES, ShapesConfig, ShapesSubset, generate_shapes
from latentsight.errors import RunStoreError
from latentsight.project import Project
from latentsight.store.files import write_parquet
from latentsight.store.manifest import EXTRAS, MANIFEST
from latentsight.store.run import Run

DEMO_LAYERS = ["features.1.0", "features.2", "classifier.3:input"]
GROUND_TRUTH = f"{EXTRAS}/ground_truth.parquet"
LOG_EVERY_EPOCHS = 5  # outside a terminal: a line for the first epoch, every 5th and the last
LOG_EVERY_SECONDS = 30.0  # ... and whenever this long has passed since the last line


DEMO_NAME = "shapes-demo"  # the name of every demo run: a run of another name is never replaced


def demo_config(*, tiny: bool = False, clean: bool = False, seed: int = 0) -> ShapesConfig:
    """The demo's data configuration: default or tiny size, planted modes on or the clean control."""
    config = ShapesConfig.tiny(seed=seed) if tiny else ShapesConfig(seed=seed)
    return config.clean() if clean else config


def demo_project(subsets: dict[str, ShapesSubset], model: ShapesCNN) -> Project:
    """The Project of the demo: the shapes subsets, their visible metadata, three layers."""
    metadata = pd.concat([subset.metadata for subset in subsets.values()], ignore_index=True)
    return Project(
        name=DEMO_NAME,
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
    replace = _holds_a_demo_run(out)  # before the work: another project's run is refused
    config = demo_config(tiny=tiny, clean=clean, seed=seed)
    planted = "clean control, nothing planted" if clean else "failure modes planted"
    with console.status(f"Generating the shapes data set ({planted})"):
        subsets = generate_shapes(config)
    sizes = ", ".join(f"{name} {len(subset)}" for name, subset in subsets.items())
    console.print(
        f"[bold]Data[/]: {sizes} images of {config.image_size}x{config.image_size} ({planted})"
    )

    started = time.perf_counter()
    with training_progress(console) as on_epoch:
        model, cached = load_or_train_demo_model(
            config, subsets, retrain=retrain, seed=seed, progress=on_epoch
        )
    where = escape(str(demo_model_path(config, seed=seed)))
    console.print(
        "[bold]Model[/]: "
        + (
            f"reused the cached demo CNN from {where}"
            if cached
            else f"trained the demo CNN in {time.perf_counter() - started:.1f} s and cached it "
            f"in {where}"
        ),
        soft_wrap=True,  # a path to copy, whole on one line
    )

    run = analyze(demo_project(subsets, model), out, overwrite=replace)
    write_ground_truth(subsets, out)
    record_project(out, f"{MODULE}:{project_name(tiny=tiny, clean=clean, seed=seed)}")
    return run


def _holds_a_demo_run(out: Path) -> bool:
    """Whether ``out`` holds an earlier demo run, which a new one replaces; a run of another
    project there is refused rather than replaced."""
    try:
        name = json.loads((out / MANIFEST).read_text()).get("name")
    except (OSError, ValueError, AttributeError):  # no run, or not one the demo can read
        return False
    if name != DEMO_NAME:
        raise RunStoreError(
            f"{out} holds the run {name!r}, not a demo run: the demo replaces only a run it "
            "made. Choose another --out, or delete that run first."
        )
    return True


@contextmanager
def training_progress(console: Console) -> Iterator[EpochProgress]:
    """The training's progress: a bar in a terminal (it goes once training ends); elsewhere (a
    log file, a pipe), where a bar shows nothing until the end, a line per few epochs with the
    loss and the time spent (see LOG_EVERY_EPOCHS and LOG_EVERY_SECONDS)."""
    if not console.is_terminal:
        started = time.perf_counter()
        last_line = started

        def log_epoch(epoch: int, epochs: int, loss: float) -> None:
            nonlocal last_line
            now = time.perf_counter()
            if (
                epoch == 1
                or epoch == epochs
                or epoch % LOG_EVERY_EPOCHS == 0
                or now - last_line >= LOG_EVERY_SECONDS
            ):
                last_line = now
                console.print(
                    f"Training the demo CNN: epoch {epoch}/{epochs}, loss {loss:.3f}, "
                    f"{now - started:.1f} s",
                    soft_wrap=True,
                    highlight=False,
                )

        yield log_epoch
        return
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

        yield on_epoch


def write_ground_truth(subsets: dict[str, ShapesSubset], out: Path) -> None:
    """Keep the subsets' hidden ground truth beside the run at ``out`` (``GROUND_TRUTH``), apart
    from the metadata the analysis sees, so recovery can be scored."""
    truth = pd.concat([subset.truth for subset in subsets.values()], ignore_index=True)
    (out / GROUND_TRUTH).parent.mkdir(parents=True, exist_ok=True)
    write_parquet(out / GROUND_TRUTH, pa.Table.from_pandas(truth, preserve_index=False))
