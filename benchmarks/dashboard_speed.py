"""How fast is the dashboard on a run of 100,000 samples?

Run ``python benchmarks/dashboard_speed.py [--quick]``. It writes a synthetic analysed run (the
store's files written directly: samples, renders, one latent layer, map, clusters, neighbour
graph, insights),
starts ``latentsight serve`` on it in its own process, and prints:

* map drawn: the time from navigation start to the map drawn (every point, coloured by loss) in
  headless Chromium (median of 3 page loads); goal 2 s;
* latency: p50 and p95 of the map, selection-statistics and sample endpoints under 20 concurrent
  clients on loopback (goal p95 < 50 ms), beside a baseline answering the same query with pandas
  reading the Parquet file (and, for a sample's neighbours, the latent array) each time, under the
  same 20 concurrent clients (threads calling pandas directly, no HTTP), and the ratio baseline
  / server. The 20 clients run in a process of their own, so that they do not share the
  benchmark's interpreter; each keeps one HTTP/1.1 connection open and sends its next request
  when the last is answered;
* the server's startup time (process start to the first answer) and its resident memory.

Latency on a shared machine depends on what else runs: the load average is printed beside the
figures; compare runs made at a similar load.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import astuple
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from latentsight import __version__
from latentsight.insights.base import Evidence, Insight
from latentsight.insights.describe import enriched_metadata
from latentsight.latent.neighbors import neighbor_graph
from latentsight.store.analysis import MAP, write_analysis
from latentsight.store.files import write_json
from latentsight.store.manifest import ANALYSIS, RENDERS, SCHEMA_VERSION
from latentsight.store.writer import QUARANTINE_SCHEMA, RENDER_GROUP_ROWS

CLIENTS = 20
MAP_GOAL_S = 2.0
P95_GOAL_MS = 50.0
DIM = 32
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
METADATA = ["size", "colour", "background", "clutter", "occlusion"]
SHAPE = {"height": 32, "width": 32, "channels": 3}  # of the synthetic renders
PART_ROWS = 4096  # renders per Parquet part, as a capture with the default chunk size writes them


def write_synthetic_run(path: Path, n: int, seed: int = 0) -> None:
    """An analysed run of ``n`` samples in 12 latent blobs, one blob with a planted high loss."""
    rng = np.random.default_rng(seed)
    (path / "latents").mkdir(parents=True)
    blob = rng.integers(0, 12, n)
    centres = rng.normal(0, 4, (12, DIM))
    latents = (centres[blob] + rng.normal(0, 1, (n, DIM))).astype(np.float32)
    np.save(path / "latents" / "fc.mean.npy", latents)
    n_train = int(n * 0.8)
    subset = np.where(np.arange(n) < n_train, "train", "val")
    index = np.where(np.arange(n) < n_train, np.arange(n), np.arange(n) - n_train)
    ids = [f"{s}/{i}" for s, i in zip(subset, index, strict=True)]
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), blob % 4] += 3
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    target = blob % 4
    loss = -np.log(probabilities[np.arange(n), target])
    loss[blob == 3] *= 4
    samples = pd.DataFrame(
        {
            "row": np.arange(n),
            "id": ids,
            "subset": subset,
            "index": index,
            "target": target,
            "prediction": probabilities.argmax(axis=1),
            "confidence": probabilities.max(axis=1).astype(np.float32),
            "probabilities": list(probabilities.astype(np.float32)),
            "loss": loss.astype(np.float32),
            "correct": probabilities.argmax(axis=1) == target,
            "size": rng.uniform(3, 12, n) - (blob == 3) * 2,
            "colour": rng.choice(["red", "blue", "green", "white", "cyan"], n),
            "background": np.where(blob == 5, "blue", rng.choice(["green", "brown", "grey"], n)),
            "clutter": rng.integers(0, 8, n),
            "occlusion": rng.uniform(0, 0.5, n),
        }
    )
    pq.write_table(pa.Table.from_pandas(samples, preserve_index=False), path / "samples.parquet")
    pq.write_table(QUARANTINE_SCHEMA.empty_table(), path / "quarantine.parquet")
    pictures = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8).tobytes() for _ in range(64)]
    renders = pa.table(
        {
            "id": ids,
            "kind": ["image"] * n,
            "pixels": [pictures[i % 64] for i in range(n)],
            **{name: pa.array(np.full(n, size), pa.int32()) for name, size in SHAPE.items()},
            "text": pa.nulls(n, pa.string()),
        }
    )
    (path / RENDERS).mkdir()
    for part, start in enumerate(range(0, n, PART_ROWS)):
        pq.write_table(
            renders.slice(start, PART_ROWS),
            path / RENDERS / f"part-{part:06d}.parquet",
            row_group_size=RENDER_GROUP_ROWS,
        )
    coords = latents[:, :2] + rng.normal(0, 0.3, (n, 2)).astype(np.float32)
    map_frame = pd.DataFrame(
        {"id": ids, "x": coords[:, 0], "y": coords[:, 1], "cluster": blob, "noise": False}
    )
    clusters = (
        samples.assign(cluster=blob)
        .groupby("cluster")
        .agg(size=("id", "size"), mean_loss=("loss", "mean"))
    )
    insights = [
        Insight(
            kind="performance_aggressor",
            title=f"cluster {c}: loss {clusters.loc[c, 'mean_loss']:.2f}",
            population=[ids[i] for i in np.flatnonzero(blob == c)],
            evidence=[
                Evidence(
                    "performance_aggressor", 4.0, "loss ratio", 1e-9, 1e-8, int((blob == c).sum())
                )
            ],
            description="synthetic",
            action="none",
            score=float(12 - c),
        )
        for c in range(12)
    ]
    write_analysis(
        path,
        info={"latentsight_version": __version__, "layer": "fc", "view": "mean", "settings": {}},
        map_frame=map_frame,
        clusters=clusters.reset_index(),
        insights=insights,
        scores=pd.DataFrame({"id": ids, "outlier_score": rng.random(n)}),
        neighbours=astuple(neighbor_graph(latents, 15)),
    )
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "status": "complete",
        "name": "synthetic-benchmark",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "provenance": {
            "latentsight_version": __version__,
            "torch_version": "-",
            "python_version": sys.version.split()[0],
            "model_class": "synthetic",
            "model_parameters": 0,
            "model_fingerprint": "0" * 64,
            "data_fingerprint": "0" * 64,
        },
        "settings": {},
        "task": "classification",
        "n_classes": 4,
        "subsets": [
            {"name": "train", "size": n_train, "labeled": True, "offset": 0},
            {"name": "val", "size": n - n_train, "labeled": True, "offset": n_train},
        ],
        "layers": [
            {
                "name": "fc",
                "module": "fc",
                "point": "output",
                "kind": "vector",
                "sample_shape": [DIM],
                "defaulted": False,
                "views": {"mean": {"dim": DIM, "file": "latents/fc.mean.npy"}},
            }
        ],
        "loss_components": [],
        "metrics": {},
        "metadata_columns": METADATA,
        "n_samples": n,
        "n_quarantined": 0,
    }
    write_json(path / "manifest.json", manifest)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path) -> tuple[subprocess.Popen, str, float]:
    """``latentsight serve`` in its own process; returns it, its URL and the seconds it took to
    answer."""
    port = _free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "latentsight", "serve", str(run), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/run", timeout=2).status_code == 200:
                return process, url, time.perf_counter() - started
        except httpx.HTTPError:
            time.sleep(0.1)
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode())
    raise RuntimeError("the server did not start")


def time_map_drawn(url: str, loads: int) -> list[float]:
    """Seconds from navigation start to the map drawn, for several fresh page loads."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        for _ in range(loads):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.goto(url)
            page.wait_for_function("window.latentsight.ready", timeout=60_000)
            times.append(page.evaluate("window.latentsight.mapDrawnAt") / 1000)
            assert page.evaluate("window.latentsight.drawnPoints") > 0
            context.close()
        browser.close()
    return times


def under_load(call: Callable[[int], None], requests: int) -> list[float]:
    """Latencies (ms) of ``requests`` calls made by ``CLIENTS`` concurrent threads."""

    def timed(i: int) -> float:
        started = time.perf_counter()
        call(i)
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(timed, range(CLIENTS)))  # warm-up
        return list(pool.map(timed, range(requests)))


Request = tuple[str, str, dict[str, str], bytes | None]  # method, path, query, binary body
CONTENT_LENGTH = re.compile(rb"(?im)^content-length: *(\d+)")


def _encode(request: Request, host: str) -> bytes:
    method, path, params, body = request
    target = f"{path}?{urlencode(params)}" if params else path
    head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"
    if body is not None:
        head += f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + (body or b"")


def http_load(url: str, requests: list[Request]) -> list[float]:
    """Latencies (ms) of ``requests`` sent by ``CLIENTS`` concurrent keep-alive connections, each
    sending its next request when the last is answered (run in a process of its own).

    The clients speak HTTP/1.1 over asyncio streams: a general client such as httpx spends a few
    milliseconds of CPU per request, more than the server, and the benchmark would time itself.
    """
    address = urlsplit(url)
    host = address.netloc
    encoded = [_encode(request, host) for request in requests]

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes):
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(int(CONTENT_LENGTH.search(head)[1]))
        if head[9:12] != b"200":
            raise RuntimeError(f"{raw.split(b' ')[1].decode()} answered {head[9:12].decode()}")

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        for raw in encoded[:2]:  # warm-up
            await exchange(reader, writer, raw)
        return reader, writer

    async def main() -> list[float]:
        connections = await asyncio.gather(*(connect() for _ in range(CLIENTS)))
        pending = iter(encoded)
        latencies: list[float] = []

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for raw in pending:
                started = time.perf_counter()
                await exchange(reader, writer, raw)
                latencies.append((time.perf_counter() - started) * 1000)
            writer.close()

        await asyncio.gather(*(client(*connection) for connection in connections))
        return latencies

    return asyncio.run(main())


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 samples, fewer requests")
    args = parser.parse_args()
    n = 5_000 if args.quick else 100_000
    requests = 200 if args.quick else 2_000
    baseline_requests = 40 if args.quick else 100
    console = Console(width=130)
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        started = time.perf_counter()
        write_synthetic_run(run, n)
        console.print(
            f"synthetic run of {n:,} samples written in {time.perf_counter() - started:.1f} s"
        )
        server, url, startup = start_server(run)
        try:
            drawn = time_map_drawn(url, 3)
            samples = pd.read_parquet(run / "samples.parquet")
            ids = samples["id"].tolist()
            blob = pd.read_parquet(run / ANALYSIS / MAP)["cluster"].to_numpy()
            selections = [np.flatnonzero(blob == c).tolist() for c in range(12)]
            payloads = [np.asarray(rows, "<u4").tobytes() for rows in selections]
            picks = np.random.default_rng(1).integers(0, n, requests)
            server_requests: dict[str, list[Request]] = {
                "map": [("GET", "/api/map", {}, None)] * requests,
                "selection": [
                    ("POST", "/api/selection", {}, payloads[i % 12]) for i in range(requests)
                ],
                "sample": [("GET", "/api/sample", {"id": ids[p]}, None) for p in picks],
            }

            def baseline_map(i: int) -> None:
                frame = pd.read_parquet(run / ANALYSIS / MAP, columns=["x", "y"])
                np.concatenate([frame["x"], frame["y"]]).astype("<f4").tobytes()

            def baseline_selection(i: int) -> None:
                frame = pd.read_parquet(run / "samples.parquet")
                mask = np.zeros(len(frame), bool)
                mask[np.frombuffer(payloads[i % 12], "<u4")] = True
                (frame["loss"][mask].mean(), frame["loss"][~mask].mean())
                frame["subset"][mask].value_counts()
                enriched_metadata(frame, METADATA, mask)

            def baseline_sample(i: int) -> None:
                frame = pd.read_parquet(run / "samples.parquet")
                row = int(np.flatnonzero(frame["id"].to_numpy() == ids[picks[i]])[0])
                frame.iloc[row].to_dict()
                latents = np.load(run / "latents" / "fc.mean.npy", mmap_mode="r")
                distances = ((latents - latents[row]) ** 2).sum(axis=1)
                np.argpartition(distances, 9)[:9]

            baselines = {
                "map": baseline_map,
                "selection": baseline_selection,
                "sample": baseline_sample,
            }
            results = {}
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=spawn) as clients:
                for name, calls in server_requests.items():
                    load = os.getloadavg()[0]
                    served = clients.submit(http_load, url, calls).result()
                    base = under_load(baselines[name], baseline_requests)
                    results[name] = (served, base, load)
            memory = psutil.Process(server.pid).memory_info().rss / 2**20
        finally:
            server.terminate()
            server.wait(timeout=30)

    table = Table(title=f"Dashboard on {n:,} samples, {CLIENTS} concurrent clients on loopback")
    for column in (
        "endpoint",
        "server p50 ms",
        "server p95 ms",
        "pandas p50 ms",
        "pandas p95 ms",
        "p95 ratio pandas/server",
        f"goal p95 < {P95_GOAL_MS:.0f} ms",
        "load avg (1 min)",
    ):
        table.add_column(column, justify="right")
    for name, (served, base, load) in results.items():
        p95 = percentile(served, 95)
        table.add_row(
            name,
            f"{percentile(served, 50):.1f}",
            f"{p95:.1f}",
            f"{percentile(base, 50):.1f}",
            f"{percentile(base, 95):.1f}",
            f"{percentile(base, 95) / p95:.1f}x",
            "met" if p95 < P95_GOAL_MS else "missed",
            f"{load:.2f}",
        )
    console.print(table)
    median = statistics.median(drawn)
    console.print(
        f"map drawn in headless Chromium: median {median:.2f} s over {len(drawn)} loads "
        f"({', '.join(f'{t:.2f}' for t in drawn)}); goal {MAP_GOAL_S:.0f} s: "
        + ("met" if median < MAP_GOAL_S else "missed")
    )
    console.print(
        f"server: answered {startup:.1f} s after its process started; resident memory "
        f"{memory:.0f} MiB after the load; cpu count {os.cpu_count()}, "
        f"load average now {', '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
