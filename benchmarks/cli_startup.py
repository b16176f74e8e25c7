"""How long does a command-line call wait before it does anything?

Run ``python benchmarks/cli_startup.py [--repeats N]``. It writes a tiny demo run, then times
fresh processes of ``latentsight --help``, ``latentsight info RUN``, ``latentsight insights RUN``
(which reads the stored analysis) and ``latentsight report RUN``, and prints each one's median
wall time beside the baseline measured in the same run: a fresh Python process that only imports
PyTorch, the floor that every command paid when the package loaded its model libraries up front.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def seconds(command: list[str], repeats: int) -> float:
    """Median wall time of ``repeats`` fresh processes running ``command`` (after one warm-up)."""
    subprocess.run(command, check=True, capture_output=True)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    """Write the run, time the baseline and then each command, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed processes per command")
    args = parser.parse_args()
    console = Console(width=100)
    cli = [sys.executable, "-m", "latentsight"]
    with tempfile.TemporaryDirectory() as tmp:
        run = str(Path(tmp) / "run")
        console.print("writing a tiny demo run ...")
        subprocess.run([*cli, "demo", "--tiny", "--out", run], check=True, capture_output=True)
        baseline = seconds([sys.executable, "-c", "import torch"], args.repeats)
        table = Table(title="command-line start: fresh processes, median wall time")
        for column in ("command", "seconds", "baseline: import torch", "ratio"):
            table.add_column(column, justify="left" if column == "command" else "right")
        page = str(Path(tmp) / "report.html")
        commands = (
            ["--help"],
            ["info", run],
            ["insights", run, "--top", "5"],
            ["report", run, "-o", page],
        )
        for arguments in commands:
            spent = seconds([*cli, *arguments], args.repeats)
            shown = " ".join({run: "RUN", page: "PAGE"}.get(part, part) for part in arguments)
            table.add_row(
                f"latentsight {shown}", f"{spent:.2f}", f"{baseline:.2f}", f"{spent / baseline:.2f}"
            )
        console.print(table)


if __name__ == "__main__":
    main()
