"""The example of docs/explanations.md runs as written and says what it claims."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

DOCS = Path(__file__).parent.parent / "docs"


def test_explanations_page_example_runs(tmp_path, monkeypatch):
    text = (DOCS / "explanations.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    script = tmp_path / "example.py"
    script.write_text(code)
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(script))
    assert namespace["ex"].maps.shape == (2, 16, 16)
    assert sorted(p.name for p in (tmp_path / "runs/explained/png").iterdir()) == [
        "val_0.gradcam@2.predicted.png",
        "val_1.gradcam@2.predicted.png",
    ]
    assert list(namespace["sweep"]) == ["0", "2"]
    assert namespace["filters"].images.shape == (4, 16, 16, 3)
    assert len(namespace["checks"].randomization) == 3
