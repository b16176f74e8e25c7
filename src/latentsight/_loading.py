"""Finding the user's Project from a ``module:attribute`` or ``path/to/file.py:attribute`` string."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from torch import nn

from latentsight.errors import ProjectError
from latentsight.project import Project, call_without_arguments

PROJECT_SPEC = "project_spec"


def load_project(target: str) -> Project:
    """Import ``module:name`` (or ``file.py:name``); ``name`` is a Project or returns one."""
    module_name, _, attribute = target.rpartition(":")
    if not module_name or not attribute:
        raise ProjectError(
            f"{target!r} does not name a project: write 'my_module:project' or "
            "'path/to/file.py:project' (the module defines project = latentsight.Project(...))."
        )
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise ProjectError(f"No file {path}: check the path before ':{attribute}'.")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ProjectError(f"Cannot import {path} as a Python module.")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.parent.resolve()))
        spec.loader.exec_module(module)
    else:
        if "" not in sys.path:
            sys.path.insert(0, "")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name.split(".")[0] and error.name != module_name:
                raise
            raise ProjectError(
                f"No module named {module_name!r}: run from the directory that holds it, or pass "
                "the file's path, e.g. 'path/to/my_module.py:project'."
            ) from None
    if not hasattr(module, attribute):
        raise ProjectError(
            f"Module {module_name!r} has no attribute {attribute!r}: define "
            f"{attribute} = latentsight.Project(...) in it."
        )
    value = getattr(module, attribute)
    if isinstance(value, nn.Module):
        raise ProjectError(
            f"{target} is a model ({type(value).__name__}), not a latentsight.Project: wrap it, "
            f"e.g. project = latentsight.Project(model={attribute}, data=..., loss=...), and "
            "name that."
        )
    if callable(value) and not isinstance(value, Project):
        value = call_without_arguments(value, f"{target} (a function building the project)")
    if not isinstance(value, Project):
        raise ProjectError(
            f"{target} is a {type(value).__name__}, not a latentsight.Project (or a function "
            "returning one)."
        )
    return value


def record_project(run_path: Path, target: str) -> None:
    """Write the ``module:attribute`` that made a run into its manifest, so that commands needing
    the model (``latentsight explain``) can load it again; file paths are made absolute."""
    from latentsight.store.files import write_json
    from latentsight.store.manifest import MANIFEST, read_manifest

    module_name, _, attribute = target.rpartition(":")
    if module_name.endswith(".py"):
        target = f"{Path(module_name).resolve()}:{attribute}"
    manifest = read_manifest(Path(run_path))
    manifest[PROJECT_SPEC] = {"target": target, "working_directory": str(Path.cwd())}
    write_json(Path(run_path) / MANIFEST, manifest)


def load_recorded_project(manifest: dict) -> Project:
    """Load the Project recorded in a run's manifest by ``latentsight analyze``."""
    spec = manifest.get(PROJECT_SPEC)
    if not spec:
        raise ProjectError(
            "This run does not record where its Project is (it was not made by `latentsight "
            "analyze module:project`): pass --project module:project."
        )
    directory = spec.get("working_directory")
    if directory and directory not in sys.path:
        sys.path.insert(0, directory)
    return load_project(spec["target"])


def project_for_run(manifest: dict, target: str | None) -> Project:
    """The Project named by ``target`` (``module:project``), else the one the run recorded."""
    return load_project(target) if target else load_recorded_project(manifest)
