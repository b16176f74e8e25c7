"""The complete examples in the docs run as written and say what they claim."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import torch
from torch import nn

import latentsight as ls

DOCS = Path(__file__).parent.parent / "docs"


def test_integration_guide_first_example_runs(tmp_path, monkeypatch):
    text = (DOCS / "integration.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    script = tmp_path / "example.py"
    script.write_text(code)
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(script))
    run = namespace["run"]
    assert run.layers == ["4", "7:input"], "the guide names these default layers"
    assert len(run.samples) == 100 and set(run.samples["camera"]) == {"north", "south"}


def test_the_guides_padding_collate_serves_an_unlabeled_subset(tmp_path):
    text = (DOCS / "integration.md").read_text()
    snippet = next(
        code for code in re.findall(r"```python\n(.*?)```", text, re.S) if "def pad" in code
    )
    namespace: dict = {"torch": torch}
    exec(snippet.split("project = ")[0], namespace)  # the guide's collate, as written
    torch.manual_seed(0)

    class Text(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.head = nn.Embedding(10, 4), nn.Linear(4, 2)

        def forward(self, ids):
            return self.head(self.embed(ids).mean(dim=1))

    generator = torch.Generator().manual_seed(0)
    sequences = [torch.randint(1, 10, (int(n),), generator=generator) for n in range(2, 12)]
    project = ls.Project(
        model=Text(),
        data={
            "train": [(ids, i % 2) for i, ids in enumerate(sequences)],
            "production": [(ids,) for ids in sequences],
        },
        loss=ls.losses.cross_entropy,
        collate=namespace["pad"],
        padding_mask=lambda ids: ids != 0,
    )
    run = ls.analyze(project, tmp_path / "run", insights=False, progress=False)
    production = run.samples[run.samples["subset"] == "production"]
    assert len(production) == 10 and production["loss"].isna().all()
