"""The `latentsight` command line: thin commands over the Python API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from latentsight import api
from latentsight._display import check_view, insights_view, run_view
from latentsight._loading import load_project
from latentsight.errors import LatentsightError

app = typer.Typer(
    help="latentsight: see your dataset the way your model sees it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()
error_console = Console(stderr=True)

ProjectArg = Annotated[
    str,
    typer.Argument(
        help="Where the Project is: 'my_module:project' or 'path/to/file.py:project' (a Project "
        "or a function returning one).",
        show_default=False,
    ),
]
DeviceOpt = Annotated[
    Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
    typer.Option(help="Torch device: cpu, cuda, cuda:1... (default: CUDA when present)."),
]


def _fail(error: LatentsightError) -> None:
    error_console.print(f"[bold red]error:[/] {error}")
    raise typer.Exit(code=2)


@app.command()
def check(
    project: ProjectArg,
    device: DeviceOpt = None,
    n: Annotated[int, typer.Option("-n", help="Samples per subset to try.")] = 8,
) -> None:
    """Validate an integration on a few samples of each subset, in seconds, and say what was found."""
    try:
        plan = api.check(load_project(project), device=device, n=n)
    except LatentsightError as error:
        _fail(error)
    console.print(check_view(plan))
    console.print(
        "[bold green]The project is ready:[/] run `latentsight analyze "
        + project
        + " --out runs/NAME`."
    )


@app.command()
def analyze(
    project: ProjectArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="The run directory to write.")],
    resume: Annotated[
        bool, typer.Option(help="Finish an interrupted capture where it stopped.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run at --out.")] = False,
    batch_size: Annotated[int, typer.Option(help="Samples per forward pass.")] = 64,
    chunk_size: Annotated[
        int,
        typer.Option(
            help="Samples per shard: the unit of work kept if the capture is interrupted."
        ),
    ] = 4096,
    device: DeviceOpt = None,
    num_workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 0,
    fail_fast: Annotated[
        bool, typer.Option(help="Stop at the first failing sample instead of quarantining it.")
    ] = False,
    renders: Annotated[
        bool, typer.Option(help="Store a thumbnail or text of each sample for reports.")
    ] = True,
    insights: Annotated[
        bool, typer.Option(help="Run the analysis stage (map, clusters, insights) after capture.")
    ] = True,
) -> None:
    """Run the model over every sample and write a run directory (latents, outputs, loss, metadata)."""
    try:
        run = api.analyze(
            load_project(project),
            out,
            resume=resume,
            overwrite=overwrite,
            batch_size=batch_size,
            chunk_size=chunk_size,
            device=device,
            num_workers=num_workers,
            fail_fast=fail_fast,
            renders=renders,
            insights=insights,
        )
    except LatentsightError as error:
        _fail(error)
    console.print(run_view(run))
    if insights:
        console.print(insights_view(run, top=10))
    console.print(f"[bold green]Run written to[/] {run.path}")


@app.command()
def info(run: Annotated[Path, typer.Argument(help="A run directory.", show_default=False)]) -> None:
    """Show what a run holds: provenance, subsets and their loss, latents, quarantined samples."""
    try:
        opened = api.open_run(run)
    except LatentsightError as error:
        _fail(error)
    console.print(run_view(opened))


@app.command()
def insights(
    run: Annotated[Path, typer.Argument(help="A run directory.", show_default=False)],
    layer: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(help="Layer to analyse (default: the last recorded)."),
    ] = None,
    view: Annotated[str, typer.Option(help="Latent view: mean or grid.")] = "mean",
    recompute: Annotated[
        bool, typer.Option(help="Analyse again even if the run already has an analysis.")
    ] = False,
    top: Annotated[int, typer.Option(help="How many insights to print.")] = 20,
) -> None:
    """Analyse a stored run (no model needed) and print its ranked insights."""
    try:
        opened = api.open_run(run)
        stale = recompute or layer is not None or view != "mean"
        if stale or not (opened.path / "analysis" / "analysis.json").is_file():
            opened.analyze(layer=layer, view=view)
        console.print(insights_view(opened, top))
    except LatentsightError as error:
        _fail(error)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="The run directory to write.")] = Path(
        "runs/demo"
    ),
    tiny: Annotated[
        bool, typer.Option(help="A small data set and short training (seconds).")
    ] = False,
    clean: Annotated[
        bool, typer.Option(help="The clean control: no failure mode planted.")
    ] = False,
    retrain: Annotated[
        bool, typer.Option(help="Train the demo model again, ignoring the cache.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the data generator and the training.")] = 0,
) -> None:
    """Generate the synthetic shapes data set, train (or reuse) its small CNN, and capture a run."""
    from latentsight.demo.run import run_demo

    try:
        run = run_demo(out, tiny=tiny, clean=clean, retrain=retrain, seed=seed, console=console)
    except LatentsightError as error:
        _fail(error)
    console.print(run_view(run))
    console.print(
        f"[bold green]Demo run written to[/] {run.path}. Open it in Python with "
        f"latentsight.open_run({str(run.path)!r}) or inspect it with `latentsight info {run.path}`."
    )
