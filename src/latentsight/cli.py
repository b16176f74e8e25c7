"""The `latentsight` command line: thin commands over the Python API."""

from __future__ import annotations

import difflib
import re
import shlex
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from latentsight import __version__
from latentsight._display import check_view, insight_view, insights_view, run_view
from latentsight.errors import LatentsightError, NotRecordedError

if TYPE_CHECKING:
    from latentsight.store.run import Run

_VALUE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH"}


class _PlainArgument(TyperArgument):
    """An argument shown in help by its name alone (``RUN``), not as ``{RUN}`` of type ``<path>``."""

    def display_type_rich(self, ctx: typer.Context) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"


class _PlainOption(TyperOption):
    """An option shown as classic command lines show it: ``--top INTEGER``, ``--view
    [mean|grid]``, a flag by its names alone (``--save/--no-save``), never ``<bool>``."""

    def display_type_rich(self, ctx: typer.Context) -> str | None:
        if self.is_flag or self.count:
            return None
        if self.metavar is not None:
            return self.metavar
        label = self.display_type(ctx).strip("<>").removesuffix(" range").removeprefix("list[")
        if self.type_descriptor.is_choice:
            return f"[{label}]"
        return _VALUE_NAMES.get(label.rstrip("]"), label.upper())


def _plain(param: object) -> None:
    """Show ``param`` in help as the plain classes do; they add display methods only, so an
    instance switched to one keeps its state."""
    if isinstance(param, TyperArgument):
        param.__class__ = _PlainArgument
    elif isinstance(param, TyperOption):
        param.__class__ = _PlainOption


class _PlainHelp:
    """Help that names values as classic command lines do, for a command or a group: every
    parameter it shows, including those typer and click add late (--help, completion)."""

    def get_params(self, ctx: typer.Context) -> list:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            _plain(param)
        return params


class _Command(_PlainHelp, TyperCommand):
    """A command with plain help."""


class _Group(_PlainHelp, TyperGroup):
    """A group of commands with plain help."""


class _Typer(typer.Typer):
    """A Typer whose commands are :class:`_Command` unless told otherwise."""

    def command(self, *args: Any, cls: type[TyperCommand] = _Command, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls, **kwargs)


app = _Typer(
    cls=_Group,
    help="latentsight: see your dataset the way your model sees it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
console = Console()
error_console = Console(stderr=True)


class View(str, Enum):
    """A latent view of a recorded layer."""

    mean = "mean"
    grid = "grid"


class Grouping(str, Enum):
    """What places a sample in a class when concepts are discovered per class."""

    prediction = "prediction"
    target = "target"


def _version(shown: bool) -> None:
    if shown:
        console.print(f"latentsight {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """latentsight: see your dataset the way your model sees it."""


ProjectArg = Annotated[
    str,
    typer.Argument(
        help="Where the Project is: 'my_module:project' or 'path/to/file.py:project' (a Project "
        "or a function returning one).",
        metavar="PROJECT",
        show_default=False,
    ),
]
RunArg = Annotated[Path, typer.Argument(help="A run directory.", metavar="RUN", show_default=False)]
AnalysedRunArg = Annotated[
    Path, typer.Argument(help="An analysed run directory.", metavar="RUN", show_default=False)
]
DeviceOpt = Annotated[
    Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
    typer.Option(help="Torch device: cpu, cuda, cuda:1..., or auto (default: CUDA when present)."),
]


def _open(run: Path) -> Run:
    """The run at ``run``; the store loads when a command runs, so that --help answers at once."""
    from latentsight.api import open_run

    return open_run(run)


def _attach_model(opened: Run, project: str | None, without: str) -> None:
    """Attach ``project`` (``module:project``), else the Project the run recorded; a recorded
    one that does not load is noted (``without``: what is left out), a named one must load."""
    from latentsight._loading import project_for_run

    try:
        opened.attach(project_for_run(opened.manifest, project))
    except LatentsightError as error:
        if project:
            raise
        error_console.print(f"[yellow]{without}:[/] {escape(_shell_advice(error))}")


_PYTHON_ONLY = {  # Python advice in the library's messages -> what a shell user does instead
    "run.samples['id']": "the report or the dashboard (latentsight serve RUN)",
    " (or analyze(project, out=..., resume=True))": "",
    "call run.analyze() or run ": "run ",
    " (or run.analyze())": "",
    " (in Python: run.attach(project))": "",
    "run.attach(project); on the command line, ": "",
    "run.attach(project), or ": "",
    "; in Python, latentsight.open_run)": ")",
    "with latentsight.analyze": "with latentsight analyze",
    ", or pass annotations= to run.concepts()": " and capture the run again (latentsight "
    "analyze PROJECT --out RUN --overwrite)",
}
_KEYWORD = re.compile(
    r"(?<![\w.])([a-z_]+)=('[^']*'|\"[^\"]*\"|True|False|\.\.\.|-?\d[\d.]*)?(?![\w(])"
)
_OPTION = r"--[\w-]+(?: [^\s(),;]+)?"  # an option, with its value
# An option that a message gave twice, as Python and as the option: "--x (--x)", "(--x, --x)".
_REPEATED = re.compile(
    rf"({_OPTION}) \((?:on the command line, )?\1\)|(?<=\()({_OPTION}), \2(?=\))"
)


def _fail(error: LatentsightError) -> None:
    error_console.print(f"[bold red]error:[/] {escape(_shell_advice(error))}")
    raise typer.Exit(code=2)


def _shell_advice(said: BaseException | str) -> str:
    """A message with its Python advice written as a shell user types it: keyword arguments
    that are options here become those options (``by='target'`` -> ``--by target``,
    ``per_class=False`` -> ``--global``), so the library keeps one message for both. The words
    of the user's own errors that an error quotes (its causes) are kept as they are."""
    message, kept = str(said), _quoted_errors(said)
    for number, quoted in enumerate(kept):
        message = message.replace(quoted, f"\0{number}\0")
    for python, shell in _PYTHON_ONLY.items():
        message = message.replace(python, shell)
    options = _options_by_name()
    shell = _KEYWORD.sub(lambda match: _as_option(match, options), message)
    shell = _REPEATED.sub(lambda match: match[1] or match[2], shell)
    for number, quoted in enumerate(kept):
        shell = shell.replace(f"\0{number}\0", quoted)
    return shell


def _quoted_errors(said: BaseException | str) -> list[str]:
    """The texts (as repr and str) of the errors other than latentsight's behind ``said``,
    longest first so that a text inside another is kept with it."""
    texts, error = set(), said if isinstance(said, BaseException) else None
    while error is not None:
        if not isinstance(error, LatentsightError):
            texts.update(text for text in (repr(error), str(error)) if text)
        error = error.__cause__
    return sorted(texts, key=len, reverse=True)


def _options_by_name() -> dict[str, TyperOption]:
    """Every option of the command line, by the Python name of its parameter."""
    found: dict[str, TyperOption] = {}

    def collect(command: Any) -> None:
        for param in command.params:
            if isinstance(param, TyperOption):
                found.setdefault(param.name, param)
        for subcommand in getattr(command, "commands", {}).values():
            collect(subcommand)

    collect(typer.main.get_command(app))
    return found


def _as_option(match: re.Match[str], options: dict[str, TyperOption]) -> str:
    """The option that a ``name=value`` match stands for, or the match where there is none."""
    name, value = match[1], match[2]
    option = options.get(name)
    if option is None:
        return match[0]
    if option.is_flag:
        names = option.secondary_opts if value == "False" else option.opts
        return names[0] if names and value in (None, "True", "False") else match[0]
    flag = max(option.opts, key=len)
    if value is None:
        return flag
    value = value.strip("'\"")
    return f"{flag} {name.upper() if value == '...' else shlex.quote(value)}"


@app.command()
def check(
    project: ProjectArg,
    device: DeviceOpt = None,
    n: Annotated[
        int,
        typer.Option(
            "--samples",
            "-n",
            min=1,
            help="How many samples of each subset to try (the first ones): each is loaded, run "
            "through the model and scored, and its metadata and render checked.",
        ),
    ] = 8,
) -> None:
    """Validate an integration on a few samples of each subset, in seconds, and say what was found."""
    from latentsight._loading import load_project
    from latentsight.api import check as check_project

    try:
        plan = check_project(load_project(project), device=device, n=n)
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
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default=False,
            help="Samples per forward pass [default: 64; with --resume, the run's own].",
        ),
    ] = None,
    chunk_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default=False,
            help="Samples per shard: the unit of work kept if the capture is interrupted "
            "[default: 4096; with --resume, the run's own].",
        ),
    ] = None,
    device: DeviceOpt = None,
    num_workers: Annotated[int, typer.Option(min=0, help="DataLoader worker processes.")] = 0,
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
    from latentsight._loading import load_project, record_project
    from latentsight.api import analyze as analyze_project
    from latentsight.api import capture_settings
    from latentsight.store.writer import complete_capture

    capture = capture_settings(out, resume, batch_size, chunk_size)
    try:
        complete = resume and not overwrite and complete_capture(out, capture)  # sizes agree
        run = analyze_project(
            load_project(project),
            out,
            resume=resume,
            overwrite=overwrite,
            batch_size=capture.batch_size,
            chunk_size=capture.chunk_size,
            device=device,
            num_workers=num_workers,
            fail_fast=fail_fast,
            renders=renders,
            insights=False,
        )
        if complete and (run.analysed or not insights):
            console.print(
                f"The run at {escape(str(out))} is already complete: nothing was captured or "
                f"analysed again. Inspect it with `latentsight info {escape(str(out))}`, or "
                "pass --overwrite to capture it again."
            )
            return
        record_project(run.path, project)  # before the analysis, which may be stopped too
        if insights and not run.analysed:
            run.analyze()
    except LatentsightError as error:
        _fail(error)
    except KeyboardInterrupt:
        typed = (("--batch-size", batch_size), ("--chunk-size", chunk_size))
        sizes = "".join(f" {option} {size}" for option, size in typed if size is not None)
        error_console.print(
            f"[yellow]Interrupted.[/] The completed work is kept: finish it with "
            f"`latentsight analyze {escape(project)} --out {escape(str(out))}{sizes} --resume`.",
            soft_wrap=True,
        )
        raise typer.Exit(code=130) from None
    console.print(run_view(run))
    if insights:
        console.print(insights_view(run, top=10))
    console.print(f"[bold green]Run written to[/] {run.path}")


@app.command()
def info(run: RunArg) -> None:
    """Show what a run holds: provenance, subsets and their loss, latents, quarantined samples."""
    try:
        opened = _open(run)
    except LatentsightError as error:
        _fail(error)
    console.print(run_view(opened))


@app.command()
def insights(
    run: RunArg,
    layer: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(
            help="Layer to analyse again, replacing the stored analysis (default: the stored "
            "analysis, or the last recorded layer when there is none)."
        ),
    ] = None,
    view: Annotated[
        Optional[View],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(
            help="Latent view to analyse: mean, or grid for conv maps [default: mean; with "
            "neither --layer nor --view, the stored analysis's layer and view].",
            show_default=False,
        ),
    ] = None,
    recompute: Annotated[
        bool, typer.Option(help="Analyse again even if the run already has an analysis.")
    ] = False,
    top: Annotated[int, typer.Option(min=1, help="How many insights to list.")] = 20,
    show: Annotated[
        Optional[int],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(
            help="Print the insight of this rank in full: description, action, every piece of "
            "evidence, members.",
            show_default=False,
        ),
    ] = None,
    project: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(
            help="'module:project' whose model made the run, for the analyses that need it "
            "(shortcut audit, concept importance): analyses again with it. Default, when the "
            "run is analysed: the recorded one, if it loads.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Analyse a stored run and print its ranked insights. The analysis needs no model; with
    one, it also audits shortcuts and ties discovered concepts to the loss."""
    try:
        opened = _open(run)
        stale = recompute or layer is not None or view is not None or project is not None
        if stale or not opened.analysed:
            before = opened.analysis_info if opened.analysed else None
            if layer is None and view is None and before is not None:  # the stored ones
                layer, view = before["layer"], View(before["view"])
            view = view or View.mean
            _check_layer_view(opened, layer, view.value)
            _attach_model(opened, project, "analysed without the model")
            opened.analyze(layer=layer, view=view.value)
            if before is not None:
                error_console.print(
                    f"[yellow]note:[/] the stored analysis (layer {escape(before['layer'])}, "
                    f"{before['view']} view) was replaced; report and serve show the new one."
                )
        count = len(opened.insights)
        if show is not None and not 1 <= show <= count:
            raise NotRecordedError(
                f"There is no insight of rank {show}: the run has {count}; "
                f"--show takes a rank from 1 to {count}."
            )
        console.print(insights_view(opened, top) if show is None else insight_view(opened, show))
    except LatentsightError as error:
        _fail(error)


def _check_layer_view(run: Run, layer: str | None, view: str) -> None:
    """Refuse, before the analysis, a view that the layer to analyse lacks, naming the layers
    that have it."""
    from latentsight.insights.engine import default_layer

    name = layer or default_layer(run)
    if view in run.views(name):
        return
    having = [other for other in run.layers if view in run.views(other)]
    chosen = "" if layer else " (the last recorded, analysed when --layer is not given)"
    fix = (
        f"layers with one: {', '.join(having)}; pass --layer {shlex.quote(having[-1])}"
        if having
        else "no recorded layer has one (spatial and sequence layers do): use --view mean"
    )
    raise NotRecordedError(f"Layer {name!r}{chosen} has no {view} view; {fix}.")


@app.command()
def explain(
    run: RunArg,
    ids: Annotated[
        str, typer.Option(help="Sample ids, comma-separated, e.g. val/0,val/7.", show_default=False)
    ],
    method: Annotated[
        str,
        typer.Option(
            help="gradcam, layercam, saliency, input_x_gradient, integrated_gradients (ig), "
            "smoothgrad, gradient_shap or occlusion."
        ),
    ] = "gradcam",
    layer: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(
            help="Layer of gradcam/layercam (default: the last convolution); 'all' for every one."
        ),
    ] = None,
    target: Annotated[
        str,
        typer.Option(
            help="What to explain: predicted, label, or a class (index or name; class:NAME for "
            "a class named like a keyword)."
        ),
    ] = "predicted",
    out: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option("--out", "-o", help="Folder of the PNGs (default: RUN/explanations/png)."),
    ] = None,
    project: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(
            help="Where the model is, 'module:project' (default: the one `latentsight analyze` "
            "recorded in the run)."
        ),
    ] = None,
    device: DeviceOpt = None,
) -> None:
    """Explain samples of a run with an attribution method and write overlays as PNGs."""
    from latentsight._display import Column, FitTable
    from latentsight._loading import project_for_run
    from latentsight.attribution_methods import method_name
    from latentsight.classes import explained_target
    from latentsight.explain.session import sample_rows
    from latentsight.store.files import check_writable

    wanted = [part.strip() for part in ids.split(",") if part.strip()]
    try:
        method_name(method)
        opened = _open(run)
        sample_rows(opened, wanted)  # unknown ids are named before the model loads
        folder = check_writable(out or opened.path / "explanations" / "png", folder=True)
        opened.attach(project_for_run(opened.manifest, project))
        found = opened.explain(
            wanted,
            method=method,
            layer=layer,
            target=int(target) if target.isdigit() else target,
            device=device,
        )
        written = found.save(folder)
    except LatentsightError as error:
        _fail(error)
    shown = explained_target(found.target, opened.class_names)  # "class-1" -> "circle"
    table = FitTable(
        f"{method_name(method)} explanations ({shown})",
        [Column("sample"), Column("target"), Column("file")],
        optional=["target"],  # the title names it too
    )
    for sample_id, path in zip(found.ids, written, strict=True):
        table.add_row(sample_id, shown, str(path))
    console.print(table)


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
    console.print(insights_view(run, top=5))
    console.print(
        f"[bold green]Demo run written to[/] {run.path}. Open it in Python with "
        f"latentsight.open_run({str(run.path)!r}) or inspect it with `latentsight info {run.path}`."
    )
    console.print(
        f"Explore it in the browser: [bold]latentsight serve {run.path}[/]  "
        f"(or write a report: latentsight report {run.path} -o report.html)"
    )


@app.command()
def report(
    run: AnalysedRunArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path(
        "report.html"
    ),
) -> None:
    """Write the run's self-contained HTML report (one file that opens without network)."""
    try:
        written = _open(run).report(out)
    except LatentsightError as error:
        _fail(error)
    console.print(f"[bold green]Report written to[/] {written}")


@app.command()
def serve(
    run: AnalysedRunArg,
    host: Annotated[
        str, typer.Option(help="Address to listen on; beyond loopback, --token is required.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on (0: a free one).")
    ] = 8765,
    token: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(
            envvar="LATENTSIGHT_TOKEN",
            help="Access token every request must carry (?token=... or X-Latentsight-Token).",
        ),
    ] = None,
    project: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(
            help="'module:project' whose model made the run, to compute explanations on demand "
            "(default: the one `latentsight analyze` recorded, when it loads)."
        ),
    ] = None,
) -> None:
    """Start the local web dashboard of an analysed run and print its address. It reads the run
    and writes only the explanations it computes with the model, into the run's cache."""
    from latentsight.server import create_app
    from latentsight.server.runner import bind, serve_app, url
    from latentsight.server.security import check_binding

    try:
        check_binding(host, token)
        listening = bind(host, port)
    except LatentsightError as error:
        _fail(error)
    with listening:  # closed however loading the run ends
        try:
            opened = _open(run)
            _serve_project(opened, project)
            app_ = create_app(opened, token=token)
        except LatentsightError as error:
            _fail(error)
        address = url(host, listening) + "/" + (f"?token={token}" if token else "")
        console.print(f"[bold green]Dashboard of {run}[/] at {address}  (Ctrl-C to stop)")
        serve_app(app_, listening)


def _serve_project(run: Run, target: str | None) -> None:
    """Attach the Project for the dashboard's explanations: the one named (errors are fatal),
    else the recorded one when it loads and matches the run (else none, with a note saying why)."""
    from latentsight._loading import load_project, load_recorded_project

    if target is not None:
        run.attach(load_project(target))
        return
    try:
        run.attach(load_recorded_project(run.manifest))
    except Exception as error:  # whatever stops the recorded Project, the dashboard runs without
        said = _shell_advice(error)
        hint = "" if "--project" in said else " (to compute more, pass --project module:project)"
        console.print(
            f"[yellow]The dashboard shows cached explanations only[/]: {escape(said)}{hint}"
        )
        return
    console.print(
        f"Explanations are computed on demand with {run.manifest['project_spec']['target']}."
    )


class _LabelByDefault(_Group):
    """``latentsight concepts RUN ...`` means ``latentsight concepts label RUN ...``; named
    subcommands (``audit``, later ``discover``) keep their names."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            runs_after = [a for a in args[1:] if not a.startswith("-") and Path(a).is_dir()]
            if not Path(args[0]).exists() and runs_after:  # a misspelt command before the run
                near = difflib.get_close_matches(args[0], list(self.commands), n=1)
                meant = f" (did you mean {near[0]!r}?)" if near else ""
                error_console.print(
                    f"[bold red]error:[/] No command {escape(repr(args[0]))}{escape(meant)}: the "
                    f"commands are {', '.join(self.commands)}, or give the run first to label "
                    "its neurons."
                )
                raise typer.Exit(code=2)
            args = ["label", *args]
        return super().parse_args(ctx, args)


concepts_app = _Typer(
    cls=_LabelByDefault,
    no_args_is_help=True,
    help="Concepts: `latentsight concepts RUN` labels every neuron with the concept it detects "
    "(INVERT); `latentsight concepts audit RUN` checks which concepts drive each class; "
    "`latentsight concepts discover RUN --layer L` finds the concepts it learned without labels.",
)
app.add_typer(concepts_app, name="concepts")
LayersOpt = Annotated[
    Optional[list[str]],  # noqa: UP045 - typer needs Optional on Python 3.10
    typer.Option("--layer", help="Layer to label (repeat for several; default: all recorded)."),
]


@concepts_app.command("label")
def concepts_label(
    run: RunArg,
    layer: LayersOpt = None,
    concept: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(help="Also list the neurons that detect this concept, e.g. 'label == 0'."),
    ] = None,
    beam: Annotated[int, typer.Option(min=1, help="Beam size B of the formula search.")] = 5,
    length: Annotated[int, typer.Option(min=1, help="Longest formula, in concepts (L).")] = 3,
    min_fraction: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Smallest share of samples an explanation may cover."),
    ] = 0.01,
    max_fraction: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Largest share of samples an explanation may cover."),
    ] = 0.5,
    subset: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(help="Label on this subset's samples only (default: all)."),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Neurons shown per layer.")] = 30,
    show_all: Annotated[
        bool, typer.Option("--all", help="Show neurons without a significant label too.")
    ] = False,
    save: Annotated[
        bool,
        typer.Option(help="Store the tables in RUN/concepts/ for the report and the dashboard."),
    ] = True,
) -> None:
    """Label every neuron of the run's layers with the concept formula it detects best (INVERT:
    AUC and Mann-Whitney p over metadata, labels and their AND / OR / NOT), from stored latents."""
    from latentsight.concepts import ConceptSettings
    from latentsight.concepts.display import labels_view, neurons_view

    settings = ConceptSettings(
        beam=beam, length=length, min_fraction=min_fraction, max_fraction=max_fraction
    )
    try:
        opened = _open(run)
        if concept:  # a misspelt concept is told before the labelling, not after it
            from latentsight.concepts.label import concept_vocabulary

            known = concept_vocabulary(opened, settings=settings, subset=subset)[2]
            known.index(concept.removeprefix("NOT "))
        found = opened.concepts(layer, settings=settings, subset=subset, progress=True, save=save)
        console.print(labels_view(found, top=top, show_all=show_all))
        if concept:
            console.print(neurons_view(found, concept, top=top))
        if save:
            console.print(f"Stored in {opened.path / 'concepts'} (shown by report and serve).")
    except LatentsightError as error:
        _fail(error)


@concepts_app.command("audit")
def concepts_audit(
    run: RunArg,
    layer: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(help="The layer the linear head reads (default: the last recorded)."),
    ] = None,
    project: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(help="'module:project' whose model made the run (default: the recorded one)."),
    ] = None,
    drivers: Annotated[int, typer.Option(min=1, help="Driving neurons shown per class.")] = 5,
    head: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(
            help="The model's linear layer that reads --layer (default: the one --layer names "
            "the input of, as 'fc:input')."
        ),
    ] = None,
) -> None:
    """Per class, the neurons that drive its logit and the concepts they detect; flags classes
    that lean on a concept other than themselves (a likely shortcut). Needs the model."""
    from latentsight._loading import project_for_run
    from latentsight.concepts.display import audit_view
    from latentsight.store.concepts import audit_file

    try:
        opened = _open(run)
        opened.attach(project_for_run(opened.manifest, project))
        name = layer or opened.layers[-1]
        audit = opened.concepts(name, progress=True).audit(drivers=drivers, head=head)
        console.print(audit_view(audit))
        for insight in audit.insights:
            console.print(f"[bold red]{insight.title}[/]: {insight.description}")
        if not audit.insights:
            console.print(
                f"No class leans on a concept other than itself in {escape(audit.layer)}'s "
                "driving neurons. Shortcuts found from the metadata are among the insights: "
                f"`latentsight insights {escape(str(opened.path))}`."
            )
        console.print(f"Stored in {audit_file(opened.path)} (shown by report and serve).")
    except LatentsightError as error:
        _fail(error)


@concepts_app.command("discover")
def concepts_discover(
    run: RunArg,
    layer: Annotated[str, typer.Option(help="The recorded layer whose latents are factorised.")],
    k: Annotated[
        str, typer.Option(help="Concepts per dictionary, or 'auto' (a k sweep).")
    ] = "auto",
    per_class: Annotated[
        Optional[bool],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(
            "--per-class/--global",
            show_default=False,
            help="One dictionary per class, or one [default: per class for a classification "
            "or binary run, else one].",
        ),
    ] = None,
    by: Annotated[
        Grouping, typer.Option(help="Group classes by the model's prediction or the target.")
    ] = Grouping.prediction,
    project: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(
            help="'module:project' whose model made the run, for importance (default: the "
            "recorded one, when it loads)."
        ),
    ] = None,
    grids: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option(help="Write each concept's top-sample grid as PNG into this folder."),
    ] = None,
    save: Annotated[
        bool,
        typer.Option(
            help="Store the table in RUN/concepts/ for the report and the dashboard; --no-save "
            "only prints it and writes nothing into the run."
        ),
    ] = True,
) -> None:
    """Discover the concepts the model learned in a layer (dictionary learning on the stored
    latents), with importance through the linear head, prevalence, reliability and names.

    The table replaces `RUN/concepts/discovered.LAYER.parquet`, which the report and serve
    show, except that a table without importance (no model: pass --project module:project)
    never replaces a stored one that has it, such as the one `latentsight analyze` made with
    the model: that one is kept, and a note says so. --no-save prints only."""
    from latentsight.discovery import DiscoverySettings
    from latentsight.discovery.display import bank_view
    from latentsight.store.files import check_writable

    chosen = k if k == "auto" else int(k) if k.isdigit() else None
    if chosen is None:
        raise typer.BadParameter(f"--k {k!r}: give a number of concepts or 'auto'.")
    try:
        opened = _open(run)
        opened.views(layer)  # a layer the run did not record is named before the model loads
        if grids is not None:
            check_writable(grids, folder=True)
        _attach_model(opened, project, "no model, no importance")
        bank = opened.discover_concepts(
            layer,
            per_class=per_class,
            k=chosen,
            settings=DiscoverySettings(by=by.value),
            progress=True,
            save=save,
        )
        console.print(bank_view(bank))
        for note in bank.notes:
            console.print(f"[yellow]note:[/] {escape(_shell_advice(note))}")
        if bank.stored is not None:
            console.print(f"Stored in {bank.stored} (shown by report and serve).")
        if grids is not None:
            grids.mkdir(parents=True, exist_ok=True)
            for concept in bank.table["concept"]:
                bank.top_samples(int(concept)).grid().save(grids / f"concept_{concept}.png")
            console.print(f"Top-sample grids written to {grids}")
    except LatentsightError as error:
        _fail(error)
