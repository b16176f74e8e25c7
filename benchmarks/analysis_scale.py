"""Time of the analysis stage (map, clusters, neighbours, every detector) as the run grows, against
plain UMAP + HDBSCAN with default settings on the full latent dimensions, in the same script.

The run: a small MLP, briefly trained, captured over a Gaussian mixture; one recorded layer of
256 dimensions, two subsets, three metadata columns. The baseline runs in a child process with
a time limit, so a baseline that does not finish is reported as such instead of stalling.
Run: ``python benchmarks/analysis_scale.py [--quick] [--sizes 10000 30000 100000]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

import latentsight as ls

DIM = 256


def mixture(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples of a 30-component Gaussian mixture in 16 dimensions, and their components."""
    centres = rng.normal(scale=4.0, size=(30, 16))
    component = rng.integers(0, 30, n)
    return (centres[component] + rng.normal(size=(n, 16))).astype(np.float32), component


def synthetic_run(n: int, out: Path, seed: int = 0) -> ls.Run:
    """Capture a briefly trained MLP over ``n`` samples of a 30-component Gaussian mixture."""
    rng = np.random.default_rng(seed)
    x, component = mixture(n, rng)
    y = (component % 4).astype(np.int64)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, DIM), nn.ReLU(), nn.Linear(DIM, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    inputs, targets = torch.from_numpy(x[:5000]), torch.from_numpy(y[:5000])
    for _ in range(60):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    n_train = int(0.8 * n)
    tensors = torch.from_numpy(x)
    data = {
        "train": torch.utils.data.TensorDataset(tensors[:n_train], torch.from_numpy(y[:n_train])),
        "val": torch.utils.data.TensorDataset(tensors[n_train:], torch.from_numpy(y[n_train:])),
    }
    ids = [f"train/{i}" for i in range(n_train)] + [f"val/{i}" for i in range(n - n_train)]
    metadata = pd.DataFrame(
        {
            "id": ids,
            "site": rng.choice(list("abcde"), n),
            "age": rng.uniform(20, 80, n),
            "component": (component % 7).astype(str),
        }
    )
    project = ls.Project(
        model=model.eval(),
        data=data,
        loss=ls.losses.cross_entropy,
        metadata=metadata,
        layers=["1"],
    )
    return ls.analyze(project, out, batch_size=1024, progress=False, insights=False, overwrite=True)


def _baseline(latents_path: str, queue: mp.Queue) -> None:
    """Plain UMAP and HDBSCAN, default settings, on the full-dimensional latents."""
    import hdbscan
    import umap

    latents = np.load(latents_path, mmap_mode="r")
    started = time.perf_counter()
    umap.UMAP().fit_transform(latents)
    umap_seconds = time.perf_counter() - started
    queue.put(("umap", umap_seconds))
    started = time.perf_counter()
    hdbscan.HDBSCAN().fit(latents)
    queue.put(("hdbscan", time.perf_counter() - started))


def baseline_seconds(latents_path: str, limit: float) -> dict[str, float | None]:
    """Seconds of each baseline step, None for a step that did not finish within ``limit``."""
    queue: mp.Queue = mp.get_context("spawn").Queue()
    process = mp.get_context("spawn").Process(target=_baseline, args=(latents_path, queue))
    process.start()
    process.join(limit)
    if process.is_alive():
        process.kill()
        process.join()
    found: dict[str, float | None] = {"umap": None, "hdbscan": None}
    while not queue.empty():
        step, seconds = queue.get()
        found[step] = seconds
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--baseline-limit", type=float, default=600.0, help="seconds")
    args = parser.parse_args()
    sizes = args.sizes or ([5_000, 10_000] if args.quick else [10_000, 30_000, 100_000])
    console = Console(width=120)
    table = Table(title=f"Analysis stage time, {DIM}-dimensional latents (2 CPU cores)")
    for column in (
        "samples",
        "latentsight s",
        "reduce+kNN s",
        "map s",
        "clusters s",
        "detectors s",
        "UMAP+HDBSCAN s",
        "ratio",
    ):
        table.add_column(column, justify="right")
    root = Path(tempfile.mkdtemp(prefix="latentsight-scale-"))
    for n in sizes:
        run = synthetic_run(n, root / f"run{n}")
        started = time.perf_counter()
        run.analyze(progress=False)
        total = time.perf_counter() - started
        timings = run.analysis_info["timings"]
        steps = timings["layers"][run.analysis_info["layer"]]
        detectors = sum(timings["detectors"].values())
        latents_file = root / f"latents{n}.npy"
        np.save(latents_file, np.asarray(run.latent("1"), dtype=np.float32))
        base = baseline_seconds(str(latents_file), args.baseline_limit)
        if base["umap"] is not None and base["hdbscan"] is not None:
            baseline_text = f"{base['umap'] + base['hdbscan']:.1f}"
            ratio = f"{total / (base['umap'] + base['hdbscan']):.2f}"
        else:
            done = f"UMAP {base['umap']:.0f} s, " if base["umap"] is not None else ""
            baseline_text = f"{done}> {args.baseline_limit:.0f} s"
            ratio = f"< {total / args.baseline_limit:.2f}"
        table.add_row(
            f"{n:,}",
            f"{total:.1f}",
            f"{steps['reduce_s'] + steps['neighbours_s']:.1f}",
            f"{steps['map_s']:.1f}",
            f"{steps['clusters_s']:.1f}",
            f"{detectors:.1f}",
            baseline_text,
            ratio,
        )
        console.print(table)
    console.print("Goal: the analysis stage on 100,000 x 256 within 60 s.")


if __name__ == "__main__":
    main()
