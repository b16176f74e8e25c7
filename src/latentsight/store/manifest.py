"""The manifest: a run's schema version, status, provenance, settings and layout, in one JSON file."""

from __future__ import annotations

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
    if version != SCHEMA_VERSION:
        raise RunStoreError(
            f"{run_dir} uses run schema version {version}, and this latentsight reads version "
            f"{SCHEMA_VERSION}: open it with the latentsight version that wrote it "
            f"({manifest.get('provenance', {}).get('latentsight_version', 'unknown')}) or "
            "re-create it."
        )
    return manifest


def layer_entry(manifest: dict[str, Any], layer: str) -> dict[str, Any]:
    """The manifest entry of one recorded layer, or an error listing the recorded ones."""
    for entry in manifest["layers"]:
        if entry["name"] == layer:
            return entry
    names = [entry["name"] for entry in manifest["layers"]]
    raise NotRecordedError(
        f"Layer {layer!r} was not recorded in this run; recorded layers: {names}."
    )
