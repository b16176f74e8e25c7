"""Loading the user's project (``module:project``, ``file.py:project``), run as a user runs it: a
module that fails at import, or a project function that raises, is an error message naming what
failed and where in the user's file (exit code 2), not a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

FILES = {
    "broken.py": "import nonexistent_pkg_xyz\n",
    "syntaxerr.py": "x = 1\ndef f(:\n    pass\n",
    "raises.py": 'import os\n\nraise RuntimeError("boom at import")\n',
    "helper.py": 'x = 1\nraise KeyError("deep")\n',
    "uses_helper.py": "import os\nimport helper\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "refuses.py": (
        "from latentsight.errors import ProjectError\n"
        'raise ProjectError("the data is not what I expected")\n'
    ),
    "toy.py": textwrap.dedent(
        """
        import math


        def make():
            raise ValueError("no data in data_dir")


        def scaled():
            return math.sqrt(-1)


        def five():
            return 5


        settings = {"epochs": 3}
        """
    ),
}


def latentsight(*arguments: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "latentsight", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "400", "PATH": ""},
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loading")
    for name, text in FILES.items():
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "broken:project",
            "Importing broken.py failed: ModuleNotFoundError: No module named "
            "'nonexistent_pkg_xyz' (broken.py, line 1): install it or fix the import.",
        ),
        (
            "broken.py:project",
            "Importing broken.py failed: ModuleNotFoundError: No module named "
            "'nonexistent_pkg_xyz' (broken.py, line 1): install it or fix the import.",
        ),
        (
            "syntaxerr:project",
            "Importing syntaxerr.py failed: SyntaxError: invalid syntax (syntaxerr.py, line 2) at "
            "'def f(:': fix the syntax there.",
        ),
        (
            "syntaxerr.py:project",
            "Importing syntaxerr.py failed: SyntaxError: invalid syntax (syntaxerr.py, line 2)",
        ),
        (
            "raises:project",
            "Importing raises.py failed: RuntimeError: boom at import (raises.py, line 3): fix it,",
        ),
        (
            "uses_helper:project",
            "Importing uses_helper.py failed: KeyError: 'deep' (helper.py, line 2, imported from "
            "uses_helper.py, line 2)",
        ),
        (
            "exits:project",
            "Importing exits.py failed: it exits when imported, SystemExit(3) (exits.py, line 2): "
            "put the code that runs it as a script under 'if __name__ == \"__main__\":'.",
        ),
        (
            "toy:make",
            "toy:make() raised ValueError('no data in data_dir') (toy.py, line 6): fix it so "
            "that it returns a latentsight.Project.",
        ),
        (
            "toy.py:scaled",
            "toy.py:scaled() raised ValueError('math domain error') (toy.py, line 10)",
        ),
        # a latentsight error raised by the module itself is shown as it is
        ("refuses:project", "error: the data is not what I expected"),
        # as before: a module that is not there, an attribute that is not there
        ("no_such_module:project", "No module named 'no_such_module': run from the directory"),
        ("toy:project", "Module 'toy' has no attribute 'project'"),
        ("toy:five", "toy:five() returned an int, not a latentsight.Project: make it return"),
        ("toy:settings", "toy:settings is a dict, not a latentsight.Project (or a function"),
        ("toy:project:x", "'toy:project:x' has more than one ':': write 'my_module:project'"),
    ],
)
def test_a_project_that_fails_to_load_says_what_and_where(workdir, target, message):
    result = latentsight("check", target, cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert message in " ".join(result.stderr.split())
