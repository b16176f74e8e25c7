"""The manifest: a run's schema version, status, provenance, settings and layout, in one JSON file."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from latentsight.errors import NotRecordedError, RunStoreError

SCHEMA_VERSION = 3  # 2: renders stored as raw pixels; 3: renders as ordered Parquet parts
MANIFEST = "manifest.json"
SAMPLES = "samples.parquet"
QUARANTINE = "quarantine.parquet"
RENDERS = "renders"  # a directory of Parquet parts, in samples order
LATENTS = "latents"
CAPTURE_SHARDS = "_capture"
ANALYSIS = "analysis"
EXTRAS = "extras"  # files kept beside a run by whoever made it (the demo's ground truth)
CAPTURE_KEY = "capture_key"  # what was captured, how: equal keys, interchangeable latents
ROWS_DIGEST = "rows_digest"  # of a latent file's view: see files.rows_digest
STATUS_CAPTURING = "capturing"
STATUS_COMPLETE = "complete"


def render_parts(run_dir: Path) -> list[Path]:
    """The Parquet parts of a run's renders in samples order; none when it stored no renders."""
    directory = run_dir / RENDERS
    return sorted(directory.glob("part-*.parquet")) if directory.is_dir() else []


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """Read and check a run's manifest, refusing a missing, corrupt or too-new one."""
    if not run_dir.exists():
        raise RunStoreError(
            f"There is no run at {run_dir}: check the path, or create one with "
            "`latentsight analyze module:project --out " + str(run_dir) + "`."
        )
    path = run_dir / MANIFEST
    if not path.is_file():
        raise RunStoreError(
            f"{run_dir} is not a latentsight run: it has no {MANIFEST}. Point to the directory "
            "given as --out to `latentsight analyze`."
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunStoreError(
            f"The manifest of {run_dir} is corrupt ({error}); re-create the run with "
            "`latentsight analyze ... --overwrite`."
        ) from None
    if not isinstance(manifest, dict) or "schema_version" not in manifest:
        raise RunStoreError(
            f"The manifest of {run_dir} has no schema_version: it was not written by latentsight."
        )
    version = manifest["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise RunStoreError(
            f"{MANIFEST} of {run_dir} is damaged: {_wrong(version, int, 'schema_version')}: the "
            "run cannot be read; capture it again (`latentsight analyze ... --overwrite`)."
        )
    if version != SCHEMA_VERSION:
        raise RunStoreError(
            f"{run_dir} uses run schema version {version}, and this latentsight reads version "
            f"{SCHEMA_VERSION}: open it with the latentsight version that wrote it "
            f"({manifest.get('provenance', {}).get('latentsight_version', 'unknown')}) or "
            "re-create it."
        )
    check_fields(manifest, run_dir)
    return manifest


# What the readers of a run need from its manifest, and of what JSON type. A type (or a tuple of
# them, None for null) is a value; a dict is an object with these fields, a name ending in "?" may
# be absent (older or newer writers); {str: spec} is an object of any names, [spec] a list of them.
# Fields not named here (e.g. capture_key, layers[].module) are not needed to read a run.
FIELDS: dict[str, Any] = {
    "status?": str,  # absent, the run is taken for incomplete
    "name": str,
    "created_at": str,
    "task": str,
    "n_classes": (int, None),
    "classes?": ([str], None),
    "provenance": {
        "latentsight_version": str,
        "torch_version": str,
        "python_version": str,
        "model_class": str,
        "model_parameters": int,
        "model_fingerprint": str,
        "data_fingerprint": str,
        "command?": str,
        "platform?": str,
    },
    "settings?": {"renders?": bool},
    "subsets": [{"name": str, "size": int}],
    "layers": [
        {
            "name": str,
            "kind": str,
            "sample_shape": [int],
            "views": {str: {"dim": int, "file": str, f"{ROWS_DIGEST}?": str}},
        }
    ],
    "loss_components": [str],
    "metrics": {str: str},
    "metadata_columns": [str],
    "check_warnings?": [str],
    "timings?": {str: (int, float)},
    "n_quarantined?": int,
    "project_spec?": {"target": str},
}
COMPLETE_FIELDS: dict[str, Any] = {"n_samples": int}  # written when the capture completes

_TYPE_NAMES = {  # the JSON names of the types a manifest holds
    bool: "boolean",
    int: "int",
    float: "number",
    str: "string",
    list: "list",
    dict: "object",
}


def check_fields(manifest: dict[str, Any], run_dir: Path) -> None:
    """Refuse a manifest that lacks a field the readers need or holds one of the wrong type."""
    fields = dict(FIELDS)
    if manifest.get("status") == STATUS_COMPLETE:
        fields.update(COMPLETE_FIELDS)
    problem = _problem(manifest, fields, "")
    if problem is not None:
        raise RunStoreError(
            f"{MANIFEST} of {run_dir} is damaged: {problem}: the run cannot be read; capture it "
            "again (`latentsight analyze ... --overwrite`)."
        )


def _problem(value: Any, spec: Any, path: str) -> str | None:
    """What is wrong with ``value`` at ``path`` against ``spec``, or None when nothing is."""
    if isinstance(spec, tuple):  # one of several forms: the one of the value's type
        option = next((option for option in spec if _matches(value, option)), spec)
        return _wrong(value, spec, path) if option is spec else _problem(value, option, path)
    if not _matches(value, spec):
        return _wrong(value, spec, path)
    if isinstance(spec, list):
        return next(
            (p for i, item in enumerate(value) if (p := _problem(item, spec[0], f"{path}[{i}]"))),
            None,
        )
    if isinstance(spec, dict) and str in spec:
        return next(
            (p for k, item in value.items() if (p := _problem(item, spec[str], f"{path}.{k}"))),
            None,
        )
    if isinstance(spec, dict):
        for key, inner in spec.items():
            name = key.removesuffix("?")
            where = f"{path}.{name}" if path else name
            if name not in value:
                if key.endswith("?"):
                    continue
                return f"field {where!r} is missing ({_expected(inner)} was expected)"
            found = _problem(value[name], inner, where)
            if found is not None:
                return found
    return None


def _matches(value: Any, spec: Any) -> bool:
    """Whether ``value`` has the outer JSON type of ``spec`` (true and false are not numbers)."""
    if spec is None:
        return value is None
    if isinstance(spec, list):
        return isinstance(value, list)
    if isinstance(spec, dict):
        return isinstance(value, dict)
    if isinstance(value, bool):
        return spec is bool
    return isinstance(value, spec) or (spec is float and isinstance(value, int))


def _expected(spec: Any) -> str:
    """What ``spec`` asks for, in words: "an int", "a list or null"."""
    if isinstance(spec, tuple):
        return " or ".join(_expected(option) for option in spec)
    if spec is None:
        return "null"
    name = _TYPE_NAMES[list if isinstance(spec, list) else dict if isinstance(spec, dict) else spec]
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _wrong(value: Any, spec: Any, path: str) -> str:
    """The problem of a value of the wrong type: "field 'n_samples' is the string '520' (...)"."""
    if value is None:
        found = "null"
    else:
        shown = json.dumps(value, default=str)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        found = f"the {_TYPE_NAMES.get(type(value), type(value).__name__)} {shown}"
    return f"field {path!r} is {found} ({_expected(spec)} was expected)"


def layer_entry(manifest: dict[str, Any], layer: str) -> dict[str, Any]:
    """The manifest entry of one recorded layer, or an error listing the recorded ones."""
    for entry in manifest["layers"]:
        if entry["name"] == layer:
            return entry
    names = [entry["name"] for entry in manifest["layers"]]
    near = near_layers(str(layer), names)
    hint = f" (did you mean {' or '.join(map(repr, near))}?)" if near else ""
    raise NotRecordedError(
        f"Layer {layer!r} was not recorded in this run{hint}; recorded layers: {names}."
    )


def near_layers(layer: str, names: list[str]) -> list[str]:
    """The recorded names a wrong layer name may mean: the same module at another point
    (``fc:input`` for ``fc``), then close spellings."""
    module = layer.split(":")[0]
    same_module = [name for name in names if name.split(":")[0] == module]
    return list(dict.fromkeys([*same_module, *difflib.get_close_matches(layer, names, n=3)]))
