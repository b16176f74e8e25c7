"""Finding the user's Project from a ``module:attribute`` or ``path/to/file.py:attribute`` string."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import sysconfig
import traceback
from pathlib import Path

from torch import nn

from latentsight.errors import LatentsightError, ProjectError
from latentsight.project import Project, call_without_arguments

PROJECT_SPEC = "project_spec"
_PACKAGE = Path(__file__).resolve().parent
_LIBRARIES = {
    Path(path).resolve()
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
    if (path := sysconfig.get_paths().get(key))
}
_MAIN_GUARD = "'if __name__ == \"__main__\":'."


def load_project(target: str) -> Project:
    """Import ``module:name`` (or ``file.py:name``); ``name`` is a Project or returns one."""
    module_name, _, attribute = target.rpartition(":")
    if not module_name or not attribute:
        raise ProjectError(
            f"{target!r} does not name a project: write 'my_module:project' or "
            "'path/to/file.py:project' (the module defines project = latentsight.Project(...))."
        )
    if ":" in module_name and not module_name.endswith(".py"):
        raise ProjectError(
            f"{target!r} has more than one ':': write 'my_module:project' or "
            "'path/to/file.py:project', one module and the name of its project."
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
        try:
            spec.loader.exec_module(module)
        except LatentsightError:  # the module's own Project refused its arguments: say so as is
            raise
        except (Exception, SystemExit) as error:
            raise _import_failed(str(path), error) from error
    else:
        if "" not in sys.path:
            sys.path.insert(0, "")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name.split(".")[0] and error.name != module_name:
                raise _import_failed(_module_file(module_name), error) from error
            raise ProjectError(
                f"No module named {module_name!r}: run from the directory that holds it, or pass "
                "the file's path, e.g. 'path/to/my_module.py:project'."
            ) from None
        except LatentsightError:
            raise
        except (Exception, SystemExit) as error:
            raise _import_failed(_module_file(module_name), error) from error
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
    built = callable(value) and not isinstance(value, Project)
    if built:
        try:
            value = call_without_arguments(value, f"{target} (a function building the project)")
        except LatentsightError:
            raise
        except (Exception, SystemExit) as error:
            where = _where(error, "called from")
            raise ProjectError(
                f"{target}() raised {error!r}{f' ({where})' if where else ''}: fix it so that it "
                "returns a latentsight.Project."
            ) from error
    if not isinstance(value, Project):
        kind = type(value).__name__
        found = f"{'an' if kind[0].lower() in 'aeiou' else 'a'} {kind}"
        raise ProjectError(
            f"{target}() returned {found}, not a latentsight.Project: make it return the project."
            if built
            else f"{target} is {found}, not a latentsight.Project (or a function returning one)."
        )
    return value


def _import_failed(what: str, error: BaseException) -> ProjectError:
    """The ProjectError to raise when importing the user's module raised ``error``: it names
    the exception, the file and line it came from, and what to do."""
    where = _where(error, "imported from")
    where = f" ({where})" if where else ""
    if isinstance(error, SyntaxError):
        code = f" at {error.text.strip()!r}" if error.text and error.text.strip() else ""
        return ProjectError(
            f"Importing {what} failed: {type(error).__name__}: {error.msg}{where}{code}: fix the "
            "syntax there."
        )
    if isinstance(error, SystemExit):
        return ProjectError(
            f"Importing {what} failed: it exits when imported, SystemExit({error.code!r})"
            f"{where}: put the code that runs it as a script under {_MAIN_GUARD}"
        )
    if isinstance(error, ModuleNotFoundError):
        advice = "install it or fix the import."
    elif isinstance(error, ImportError):
        advice = "fix the import."
    else:
        advice = f"fix it, or put code that should not run on import under {_MAIN_GUARD}"
    return ProjectError(
        f"Importing {what} failed: {type(error).__name__}: {error}{where}: {advice}"
    )


def _module_file(module_name: str) -> str:
    """The file of a module whose import failed (``broken.py``), or ``module 'a.b'`` when it
    cannot be found without importing its package again."""
    if "." not in module_name:
        try:
            spec = importlib.util.find_spec(module_name)
        except (Exception, SystemExit):
            spec = None
        if spec is not None and spec.origin and Path(spec.origin).is_file():
            return _shown(spec.origin)
    return f"module {module_name!r}"


def _where(error: BaseException, reached: str) -> str:
    """Where in the user's code ``error`` came from: ``toy.py, line 4``, and the first frame of
    the user's code when that is another file (``helper.py, line 2, imported from toy.py, line
    1``); frames of latentsight, of importlib, of the standard library and of installed packages
    are skipped (kept only when no other frame is left). Empty when no frame is known."""
    frames = [
        (frame.filename, frame.lineno)
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith("<") and not _inside(frame.filename, {_PACKAGE})
    ]
    users = [frame for frame in frames if not _inside(frame[0], _LIBRARIES)]
    if isinstance(error, SyntaxError) and error.filename and error.lineno:
        users.append((error.filename, error.lineno))
    users = users or frames
    if not users:
        return ""
    (first, first_line), (last, last_line) = users[0], users[-1]
    text = f"{_shown(last)}, line {last_line}"
    if Path(first) != Path(last):
        text += f", {reached} {_shown(first)}, line {first_line}"
    return text


def _inside(filename: str, folders: set[Path]) -> bool:
    try:
        path = Path(filename).resolve()
    except (OSError, RuntimeError):
        return False
    return any(path.is_relative_to(folder) for folder in folders)


def _shown(filename: str) -> str:
    """A file as the user knows it: relative to the working directory when it is under it."""
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return filename


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
    try:
        return load_project(spec["target"])
    except ProjectError as error:
        where = f" from {directory}" if directory else ""
        raise ProjectError(
            f"The Project this run recorded, {spec['target']!r} (analysed{where}), no longer "
            f"loads: {error} Pass --project module:project to say where it is now (in Python: "
            "run.attach(project))."
        ) from error


def project_for_run(manifest: dict, target: str | None) -> Project:
    """The Project named by ``target`` (``module:project``), else the one the run recorded."""
    return load_project(target) if target else load_recorded_project(manifest)
