"""How much does capture cost on top of plain inference, and does its memory stay flat with N?

Run ``python benchmarks/capture_overhead.py [--quick]``. For two models (the demo ShapesCNN on
32x32 images, a ResNet-18-sized network on 64x64 images) it prints:

* time: ``latentsight.analyze`` recording 3 layers, divided by plain inference (the same model
  under ``torch.inference_mode()``, the same in-memory data set, the same DataLoader loop and
  batch size); both are timed in this run, warm-up first, then several rounds in which the runs
  take turns; the ratio is the median of the rounds' ratios (each round's capture over the same
  round's plain inference, so that a change in the machine's speed cancels), with its range;
  11 rounds by default: on the 2-vCPU development machine one round's ratio ranges over 1.0-1.7
  for the same code, and 5 rounds left the median 0.03-0.05 apart between runs;
* memory: the peak RSS of a fresh process capturing N samples and of one capturing 4N samples of a
  data set that makes its samples on the fly (so only capture's own memory can grow), and their
  ratio; these captures store renders, as ``analyze`` does by default.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch
from _models import N_CLASSES, resnet18, shapes_cnn
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader, Dataset

import latentsight
from latentsight.losses import cross_entropy

BATCH_SIZE = 64
TIME_GOAL = 1.10
MEMORY_GOAL = 1.2


@dataclass(frozen=True)
class Case:
    """One model to benchmark: how to build it, its input size, layers and sample counts."""

    name: str
    build: Callable[[], nn.Module]
    image_size: int
    layers: tuple[str, ...]
    n_time: int
    n_memory: int


CASES = (
    Case(
        "ShapesCNN", shapes_cnn, 32, ("features.0", "features.2", "classifier:input"), 32768, 4096
    ),
    Case("ResNet-18", resnet18, 64, ("layer1", "layer4", "fc:input"), 2048, 256),
)


class InMemoryImages(Dataset):
    """Seeded random images held in memory: the timing data set."""

    def __init__(self, n: int, size: int) -> None:
        generator = torch.Generator().manual_seed(1)
        self.images = torch.rand(n, 3, size, size, generator=generator)
        self.labels = torch.randint(0, N_CLASSES, (n,), generator=generator).tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], self.labels[index]


class GeneratedImages(Dataset):
    """Images made from their index when asked for, none kept: the memory data set."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        generator = torch.Generator().manual_seed(index)
        image = torch.rand(3, self.size, self.size, generator=generator)
        return image, index % N_CLASSES


def plain_inference(model: nn.Module, dataset: Dataset) -> None:
    """The baseline: the model over every batch of the data set, nothing recorded."""
    with torch.inference_mode():
        for inputs, _ in DataLoader(dataset, batch_size=BATCH_SIZE):
            model(inputs)


def capture(model: nn.Module, dataset: Dataset, case: Case, out: Path, renders: bool) -> None:
    """A full ``latentsight.analyze`` capture of the case's layers into ``out``.

    The analysis stage that ``analyze`` runs afterwards by default is left out: it is not capture.
    """
    project = latentsight.Project(
        model=model, data={"train": dataset}, loss=cross_entropy, layers=list(case.layers)
    )
    latentsight.analyze(
        project,
        out=out,
        batch_size=BATCH_SIZE,
        overwrite=True,
        progress=False,
        renders=renders,
        insights=False,
    )


def round_seconds(
    runs: dict[str, Callable[[], None]],
    repeats: int,
    before: dict[str, Callable[[], None]] | None = None,
) -> dict[str, list[float]]:
    """Wall time of each run in each of ``repeats`` rounds, after one warm-up round.

    The runs take turns within each round so that a change in the machine's load during the
    benchmark weighs on all of them alike; ``before[name]``, when given, runs untimed first.
    """
    prepare = {name: (before or {}).get(name, lambda: None) for name in runs}
    for name, run in runs.items():
        prepare[name]()
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            prepare[name]()
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return times


def time_case(case: Case, n: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of plain inference and of capture with and without renders, per round.

    Each capture writes its run where the previous capture's run was removed (untimed), so that
    its files reuse memory the machine has already given the page cache. On a virtual machine
    whose memory the host backs lazily, a write into memory the guest has never touched costs
    far more than the write itself (on the 2-core development machine: about 11 s per GiB the
    first time, 0.3 s afterwards), and keeping every round's run would charge that to capture.
    """
    model = case.build().eval()
    dataset = InMemoryImages(n, case.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"

        def remove_previous_run() -> None:
            shutil.rmtree(out, ignore_errors=True)

        runs = {
            "plain": lambda: plain_inference(model, dataset),
            "capture": lambda: capture(model, dataset, case, out, False),
            "renders": lambda: capture(model, dataset, case, out, True),
        }
        return round_seconds(
            runs, repeats, before={"capture": remove_previous_run, "renders": remove_previous_run}
        )


def peak_rss_now() -> int:
    """This process's peak resident memory in bytes so far.

    Linux's VmHWM belongs to the current address space; ``ru_maxrss`` is the fallback elsewhere,
    though a child started by fork can inherit its parent's peak in it.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def memory_child(case_name: str, n: int) -> None:
    """In a fresh process: capture ``n`` generated samples, print RSS figures as JSON."""
    case = next(case for case in CASES if case.name == case_name)
    model = case.build().eval()
    dataset = GeneratedImages(n, case.image_size)
    before = psutil.Process().memory_info().rss
    with tempfile.TemporaryDirectory() as tmp:
        capture(model, dataset, case, Path(tmp) / "run", True)
    print(json.dumps({"before": before, "peak": peak_rss_now()}))


def peak_rss(case: Case, n: int) -> dict[str, int]:
    """Peak RSS (and RSS before capture) of a fresh process capturing ``n`` samples."""
    command = [sys.executable, __file__, "--memory-child", case.name, str(n)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def mib(size: float) -> str:
    """Bytes as MiB."""
    return f"{size / 2**20:.0f} MiB"


def verdict(ratio: float, goal: float) -> str:
    """The ratio against its goal, coloured."""
    return "[green]meets[/]" if ratio <= goal else "[red]misses[/]"


def report(case: Case, n_time: int, n_memory: int, repeats: int, console: Console) -> None:
    """Measure one case and print its table."""
    console.print(
        f"[bold]{case.name}[/] ({case.image_size}x{case.image_size} inputs, layers "
        f"{', '.join(case.layers)}), load average {os.getloadavg()[0]:.1f} ..."
    )
    seconds = time_case(case, n_time, repeats)
    small, large = peak_rss(case, n_memory), peak_rss(case, 4 * n_memory)
    table = Table(title=f"{case.name}: capture against its baseline, measured in this run")
    for column in ("figure", "capture", "baseline", "ratio", "goal", ""):
        table.add_column(column, justify="left" if column == "figure" else "right")
    plain = seconds["plain"]
    for key, label in (("capture", "renders=False"), ("renders", "renders=True")):
        ratios = [spent / base for spent, base in zip(seconds[key], plain, strict=True)]
        ratio = statistics.median(ratios)
        table.add_row(
            f"time, {n_time} samples, {label}",
            f"{statistics.median(seconds[key]):.2f} s",
            f"plain {statistics.median(plain):.2f} s",
            f"{ratio:.3f} ({min(ratios):.2f}-{max(ratios):.2f})",
            f"<= {TIME_GOAL:.2f}",
            verdict(ratio, TIME_GOAL),
        )
    ratio = large["peak"] / small["peak"]
    table.add_row(
        f"peak RSS, {4 * n_memory} samples, renders=True",
        mib(large["peak"]),
        f"{n_memory}: {mib(small['peak'])}",
        f"{ratio:.3f}",
        f"<= {MEMORY_GOAL:.2f}",
        verdict(ratio, MEMORY_GOAL),
    )
    table.add_row(
        "  of which added by capture",
        mib(large["peak"] - large["before"]),
        f"{n_memory}: {mib(small['peak'] - small['before'])}",
        "",
        "",
        "",
    )
    console.print(table)
    console.print(f"load average after: {os.getloadavg()[0]:.1f}\n")


def main() -> None:
    """Parse the command line and run the benchmark (or one memory child)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few samples, for a smoke test")
    parser.add_argument("--repeats", type=int, default=11, help="timed rounds after a warm-up")
    parser.add_argument("--model", choices=[case.name for case in CASES], help="only this one")
    parser.add_argument("--memory-child", nargs=2, metavar=("MODEL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return
    console = Console(width=110)
    console.print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch size "
        f"{BATCH_SIZE}, {args.repeats} rounds after a warm-up"
    )
    for case in CASES:
        if args.model in (None, case.name):
            scale = 8 if args.quick else 1
            report(case, case.n_time // scale, case.n_memory // scale, args.repeats, console)


if __name__ == "__main__":
    main()
