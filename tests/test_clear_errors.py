"""Bad input gets one clear message, never a traceback: a run whose analysis files are gone or
corrupt, a port that is busy or out of range, an output path that cannot be written. Real run
directories on disk, the real CLI, a real server on loopback."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

import latentsight as ls
from latentsight.cli import app
from latentsight.errors import ExplanationError, LatentsightError, OutputPathError, RunStoreError
from latentsight.explain.result import Explanation
from latentsight.server import background, create_app, serve
from latentsight.server.runner import bind


def invoke(*arguments: str) -> tuple[int, str]:
    """Exit code and output (stdout and stderr) of the CLI, rich's line wrapping undone."""
    result = CliRunner().invoke(app, list(arguments))
    return result.exit_code, " ".join(result.output.split())


def refused_cleanly(code: int, output: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output and output.count("error:") == 1, output


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch) -> None:
    """Paths as a user types them, relative and short, so that messages print on one line."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def run_copy(dashboard_run) -> Path:
    """A copy of the analysed dashboard run that a test may damage."""
    return Path(shutil.copytree(dashboard_run.path, "run"))


@pytest.fixture
def no_server(monkeypatch) -> None:
    """`latentsight serve` must fail before it serves: reaching the server loop fails the test."""

    def started(*_: object) -> None:
        pytest.fail("the dashboard started serving a run it should have refused")

    monkeypatch.setattr("latentsight.server.runner.serve_app", started)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port that another socket listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def surface(command: str, run: Path) -> tuple[int, str]:
    if command == "report":
        return invoke("report", str(run), "-o", "r.html")
    if command == "serve":
        return invoke("serve", str(run), "--port", "0")
    return invoke("insights", str(run))


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("report", "map.parquet"),
        ("report", "insights.json"),
        ("insights", "insights.json"),
        ("serve", "map.parquet"),
        ("serve", "insights.json"),
        ("serve", "neighbours.parquet"),
        ("serve", "scores.parquet"),
    ],
)
def test_a_deleted_analysis_file_is_named_with_the_command_that_remakes_it(
    command, name, run_copy, no_server
):
    (run_copy / "analysis" / name).unlink()
    code, output = surface(command, run_copy)
    refused_cleanly(code, output)
    assert f"has no analysis/{name}" in output
    assert f"`latentsight insights {run_copy} --recompute`" in output
    assert not Path("r.html").exists()


def test_a_corrupt_analysis_file_is_named_and_the_api_raises_a_run_store_error(run_copy, no_server):
    (run_copy / "analysis" / "scores.parquet").write_bytes(b"not parquet")
    code, output = surface("serve", run_copy)
    refused_cleanly(code, output)
    assert f"{run_copy / 'analysis' / 'scores.parquet'} is corrupt" in output
    assert "--recompute" in output
    (run_copy / "analysis" / "insights.json").write_text('{"insights": [{"rank": 1}]}')
    with pytest.raises(RunStoreError, match=r"insights\.json is corrupt"):
        assert not ls.open_run(run_copy).insights


def test_the_suggested_recompute_restores_the_run(run_copy):
    (run_copy / "analysis" / "neighbours.parquet").unlink()
    (run_copy / "analysis" / "map.parquet").unlink()
    code, output = invoke("insights", str(run_copy), "--recompute")
    assert code == 0, output
    assert (run_copy / "analysis" / "neighbours.parquet").is_file()
    code, output = invoke("report", str(run_copy), "-o", "r.html")
    assert code == 0 and Path("r.html").is_file(), output


def test_a_busy_port_is_named_before_any_address_is_printed(dashboard_run, busy_port, no_server):
    code, output = invoke("serve", str(dashboard_run.path), "--port", str(busy_port))
    refused_cleanly(code, output)
    assert f"Port {busy_port} on 127.0.0.1 is in use" in output and "--port" in output
    assert "http://" not in output


@pytest.mark.parametrize(("port", "bound"), [("70000", "65535"), ("-1", "0")])
def test_a_port_out_of_range_is_a_usage_error(dashboard_run, port, bound, no_server):
    code, output = invoke("serve", str(dashboard_run.path), "--port", port)
    assert code == 2 and "Traceback" not in output
    assert "Invalid value for '--port'" in output and bound in output
    assert "http://" not in output


def test_the_python_api_refuses_a_busy_or_impossible_port(dashboard_run, busy_port):
    with (
        pytest.raises(LatentsightError, match=rf"Port {busy_port} on 127\.0\.0\.1 is in use"),
        background(create_app(dashboard_run), port=busy_port),
    ):
        pytest.fail("served on a busy port")
    with pytest.raises(LatentsightError, match=r"Port 70000 is out of range"):
        serve(dashboard_run, port=70000)
    with pytest.raises(LatentsightError, match=r"Cannot listen on 10\.255\.255\.1:8765"):
        bind("10.255.255.1", 8765)


def test_serve_prints_the_address_it_has_bound(dashboard_run):
    """`--port 0` picks a free port: the printed address can only be right once it is bound."""
    server = subprocess.Popen(
        [sys.executable, "-m", "latentsight", "serve", str(dashboard_run.path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    try:
        address = _printed_address(server)
        response = httpx.get(address + "api/run", timeout=30)
        assert response.status_code == 200
        assert response.json()["n_samples"] == dashboard_run.manifest["n_samples"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def _printed_address(server: subprocess.Popen) -> str:
    deadline = time.monotonic() + 120
    seen = []
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if found:
            assert found.group(1) != "0"
            return found.group(0)
    pytest.fail("no address printed: " + "".join(seen))


@pytest.fixture
def a_file() -> Path:
    path = Path("notes.txt")
    path.write_text("a file, not a directory")
    return path


def test_report_into_proc_says_the_path_takes_no_files(dashboard_run):
    code, output = invoke("report", str(dashboard_run.path), "-o", "/proc/x.html")
    refused_cleanly(code, output)
    assert "Cannot write /proc/x.html: /proc takes no new files" in output


def test_report_under_a_file_names_the_file_in_the_way(dashboard_run, a_file):
    code, output = invoke("report", str(dashboard_run.path), "-o", str(a_file / "deep" / "r.html"))
    refused_cleanly(code, output)
    assert f"Cannot write {a_file / 'deep' / 'r.html'}: {a_file} is a file, not a directory" in (
        output
    )


@pytest.mark.parametrize("where", ["under", "is"])
def test_explain_checks_its_folder_before_loading_the_model(where, run_copy, a_file):
    out = a_file / "png" if where == "under" else a_file
    code, output = invoke("explain", str(run_copy), "--ids", "val/0", "--out", str(out))
    refused_cleanly(code, output)
    expected = f"{a_file} is a file, not a directory" if where == "under" else "it is a file"
    assert f"Cannot write{'' if where == 'under' else ' into'} {out}" in output
    assert expected in output
    assert not (run_copy / "explanations").exists()


def test_the_python_api_raises_an_os_error_that_names_the_path(dashboard_run, a_file, data):
    with pytest.raises(OutputPathError, match=r"is a file, not a directory") as raised:
        dashboard_run.report(a_file / "r.html")
    assert isinstance(raised.value, OSError)
    explanation = Explanation(
        "saliency", None, "predicted", ["val/0"], np.zeros((1, 4, 4)), np.zeros((1, 4, 4)), [0]
    )
    with pytest.raises(OutputPathError, match=re.escape(f"Cannot write {a_file / 'png'}")):
        explanation.save(a_file / "png")
    from conftest import TinyCNN

    project = ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy)
    with pytest.raises(OutputPathError, match=re.escape(f"{a_file} is a file, not a directory")):
        ls.analyze(project, a_file / "runs" / "new", progress=False)
    assert sorted(p.name for p in Path().iterdir()) == ["notes.txt"]


def test_explaining_a_tabular_run_says_that_explanations_are_drawn_over_images(tmp_path):
    import torch
    from torch import nn

    rows = torch.randn(24, 6, generator=torch.Generator().manual_seed(0))
    data = {"train": [(row, int(row[0] > 0)) for row in rows]}
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    project = ls.Project(model=model, data=data, loss=ls.losses.cross_entropy)
    run = ls.analyze(project, tmp_path / "tabular", progress=False, insights=False)
    with pytest.raises(ExplanationError, match=r"no Conv2d layer.*for image inputs"):
        run.explain("train/0", method="gradcam")
    with pytest.raises(ExplanationError, match=r"collate to \(1, 6\).*tabular rows"):
        run.explain("train/0", method="integrated_gradients")
