"""Edges of the integration and the store: a socket released on a failed serve, directories that
cannot be entered, resuming a capture recorded before padding masks, a re-analysis's stored
concepts, attention masks that are not B x T, the count of populations tested."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import TinyCNN, image_items
from rich.console import Console
from torch import nn
from typer.testing import CliRunner

import latentsight as ls
import latentsight.store.writer as writer_module
from latentsight._display import _no_insights_view
from latentsight.cli import app
from latentsight.errors import OutputPathError
from latentsight.store.concepts import discovered_file, table_info
from latentsight.store.files import check_writable
from latentsight.store.manifest import MANIFEST


def test_serve_closes_the_socket_it_bound_when_the_run_does_not_open(tmp_path, monkeypatch):
    import latentsight.server.runner as runner

    bound = []
    real_bind = runner.bind

    def recording(host: str, port: int):
        bound.append(real_bind(host, port))
        return bound[-1]

    monkeypatch.setattr(runner, "bind", recording)
    monkeypatch.setattr(runner, "serve_app", lambda *_: pytest.fail("served a missing run"))
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "missing"), "--port", "0"])
    assert result.exit_code == 2, result.output
    assert len(bound) == 1
    assert bound[0].fileno() == -1, "the listening socket was left open"


@pytest.fixture
def locked(tmp_path, monkeypatch) -> Path:
    """A directory that cannot be entered: stat of anything inside fails with EACCES, as for a
    user without execute permission on it (simulated, since the tests may run as root)."""
    folder = tmp_path / "locked"
    (folder / "inner").mkdir(parents=True)
    real_stat = Path.stat

    def stat(self, *args, **kwargs):
        if folder in self.parents:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    return folder


@pytest.mark.parametrize("folder", [False, True])
def test_a_path_inside_a_directory_that_cannot_be_entered_is_an_output_path_error(locked, folder):
    target = locked / "inner" / ("runs" if folder else "report.html")
    with pytest.raises(OutputPathError, match=r"permission denied") as raised:
        check_writable(target, folder=folder)
    assert str(target) in str(raised.value)


def test_analyze_into_a_directory_that_cannot_be_entered_is_an_output_path_error(locked, data):
    with pytest.raises(OutputPathError, match=r"permission denied"):
        ls.analyze(_project(data), locked / "inner" / "run", progress=False, insights=False)


def test_a_report_into_a_directory_that_cannot_be_entered_is_an_output_path_error(locked, conv_run):
    with pytest.raises(OutputPathError, match=r"permission denied"):
        conv_run.report(locked / "inner" / "report.html")


def test_without_findings_the_count_of_populations_tested_matches_the_detectors():
    info = {
        "layer": "fc:input",
        "view": "mean",
        "candidates": 0,  # candidate findings, not populations tested
        "detectors": {
            "performance_aggressor": {"tested": 12},
            "overfitting": {"tested": 3},
            "spurious_feature": {"skipped": "no model attached"},
        },
    }
    console = Console(width=300, record=True)
    console.print(_no_insights_view(info))
    text = " ".join(console.export_text().split())
    assert "among the 15 populations tested" in text, text


def _project(data, **options) -> ls.Project:
    return ls.Project(model=TinyCNN(), data=data, loss=ls.losses.cross_entropy, **options)


def test_a_capture_interrupted_before_padding_masks_existed_resumes(tmp_path, data, monkeypatch):
    """A run interrupted under the version before padding masks has no ``padding_masked`` in
    its capture key; it masked nothing, as this capture (no sequence layer) masks nothing."""
    project = _project(data)
    out, settings = tmp_path / "run", dict(batch_size=8, chunk_size=16, progress=False)
    real = writer_module.write_json

    def stop_before_complete(path, payload):
        if payload.get("status") == "complete":
            raise KeyboardInterrupt
        real(path, payload)

    monkeypatch.setattr(writer_module, "write_json", stop_before_complete)
    with pytest.raises(KeyboardInterrupt):
        ls.analyze(project, out, insights=False, **settings)
    monkeypatch.undo()
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["capture_key_parts"]["padding_masked"]  # as the older version wrote it
    (out / MANIFEST).write_text(json.dumps(manifest))

    resumed = ls.analyze(project, out, resume=True, insights=False, **settings)
    assert len(resumed.samples) == 64


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory) -> ls.Run:
    """A TinyCNN run of its conv features only (no linear head reads them: the analysis's
    concepts have no importance), analysed with its model attached."""
    data = {"train": image_items(120, seed=1), "val": image_items(80, seed=2)}
    project = _project(data, layers=["features"])
    return ls.analyze(
        project,
        tmp_path_factory.mktemp("conv") / "run",
        progress=False,
        analysis=ls.AnalysisSettings(map_method="pca"),
    )


def test_a_reanalysis_stores_the_concepts_its_insights_name(conv_run):
    """A table the user discovered otherwise (k=3, importance through the model) is not what the
    analysis found: a re-analysis must store its own, or its concept insights name concepts
    the report and the dashboard do not show."""
    file = discovered_file(conv_run.path, "features")
    mine = conv_run.discover_concepts("features", k=3)
    assert mine.stored == file and np.isfinite(mine.table["importance"]).all()

    conv_run.analyze(settings=ls.AnalysisSettings(map_method="pca"), progress=False)
    analysed = conv_run.analysis_info["detectors"]["concept_aggressor"]["concepts"]
    assert table_info(file)["k"] == "auto"
    assert pq.read_metadata(file).num_rows == analysed


class PairwiseMask(nn.Module):
    """Token ids with a ``B x T x T`` attention mask (as BERT-style models accept one)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(10, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.fc((self.embed(input_ids) * attention_mask[:, 0, :, None]).mean(dim=1))


def _pairwise(pairs):
    ids = torch.stack([ids for ids, _ in pairs])
    mask = torch.ones(len(ids), ids.shape[1], ids.shape[1])
    return {"input_ids": ids, "attention_mask": mask}, torch.tensor([label for _, label in pairs])


def test_an_attention_mask_that_is_not_b_x_t_does_not_refuse_a_model_it_cannot_mask(tmp_path):
    """Only a ``B x T`` attention_mask says which positions are real; another form is the
    model's business, as it was before padding masks, not a broken contract."""
    generator = torch.Generator().manual_seed(0)
    data = {"train": [(torch.randint(0, 10, (5,), generator=generator), i % 2) for i in range(20)]}
    project = ls.Project(
        model=PairwiseMask(),
        data=data,
        loss=ls.losses.cross_entropy,
        collate=_pairwise,
        layers=["fc:input"],
    )
    ls.check(project)
    run = ls.analyze(project, tmp_path / "run", progress=False, insights=False, batch_size=8)
    assert len(run.samples) == 20
