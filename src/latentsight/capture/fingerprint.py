"""Fingerprints that identify a model's weights and a data set's content, for provenance and resume."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from latentsight.capture.items import load_item
from latentsight.errors import ProjectError

ITEMS_HASHED_PER_SUBSET = 16


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of the model's state dict."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(
            tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()


def check_run_model(model: nn.Module, manifest: Mapping[str, Any], run_path: Path) -> None:
    """Refuse a model whose weights differ from those the run at ``run_path`` was captured with:
    what is read from the run (latents, head weights) would be paired with another model."""
    recorded = manifest.get("provenance", {}).get("model_fingerprint")
    found = model_fingerprint(model)
    if recorded is not None and found != recorded:
        raise ProjectError(
            f"The model of this Project is not the one {run_path} was captured with (weights "
            f"fingerprint {found[:12]} vs {recorded[:12]} recorded): attach the model that made "
            "the run, or capture a new run of this model with latentsight.analyze."
        )


def _update(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        digest.update(f"{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(
            value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    elif isinstance(value, np.ndarray):
        digest.update(f"{value.dtype}:{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, Mapping):
        for key in sorted(value, key=str):
            digest.update(str(key).encode())
            _update(digest, value[key])
    elif isinstance(value, (list, tuple)):
        for inner in value:
            _update(digest, inner)
    else:
        digest.update(repr(value).encode())


def data_fingerprint(data: Mapping[str, Any]) -> str:
    """SHA-256 over subset names and sizes and the content of evenly spaced items of each subset.

    Hashing every item would cost a pass over the data; spaced items catch a changed data set in
    practice while staying instant.
    """
    digest = hashlib.sha256()
    for subset, dataset in data.items():
        size = len(dataset)
        digest.update(f"{subset}:{size}".encode())
        positions = np.unique(
            np.linspace(0, size - 1, min(size, ITEMS_HASHED_PER_SUBSET)).astype(int)
        )
        for index in positions:
            try:
                item = load_item(dataset, subset, int(index))
            except ProjectError as error:  # a malformed item: capture quarantines it, not here
                digest.update(str(error).encode())
                continue
            digest.update(item.id.encode())
            _update(digest, getattr(item, "input", None))
            _update(digest, getattr(item, "target", None))
    return digest.hexdigest()
