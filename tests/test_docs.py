"""The complete examples in the docs run as written and say what they claim."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

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
