"""Small demo CNN for the shapes data set: seeded CPU training and an on-disk weight cache."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from latentsight.demo.shapes import SHAPES, ShapesConfig, ShapesSubset, generate_shapes

MODEL_VERSION = 1  # bump when the architecture or the training recipe changes (invalidates caches)
DEFAULT_EPOCHS = 15  # for the default 8000-image train set
MAX_EPOCHS = 40  # ceiling for small train sets, which get more epochs (see default_epochs)
BATCH_SIZE = 64
LEARNING_RATE = 2e-3

Progress = Callable[[int, int, float], None]


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Conv-BN-ReLU followed by 2x2 max pooling (halves the resolution)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ShapesCNN(nn.Module):
    """Three conv blocks (8/16/32 channels), global average pool, one hidden layer, logits."""

    def __init__(self, n_classes: int = len(SHAPES), hidden: int = 32) -> None:
        """Build the layers; module names (features.2, classifier.3, ...) are stable."""
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(3, 8),
            _conv_block(8, 16),
            _conv_block(16, 32),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of float images (N x 3 x H x W, values in [0, 1])."""
        return self.classifier(self.features(x))


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 array -> float32 N x 3 x H x W tensor in [0, 1] (the model's input)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


def default_epochs(n_train: int) -> int:
    """Epochs giving a train set of n_train about as many optimiser steps as the default one."""
    steps = DEFAULT_EPOCHS * -(-ShapesConfig.n_train // BATCH_SIZE)
    per_epoch = -(-n_train // BATCH_SIZE)
    return min(MAX_EPOCHS, max(DEFAULT_EPOCHS, -(-steps // per_epoch)))


def train_demo_model(
    train: ShapesSubset,
    *,
    epochs: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> ShapesCNN:
    """Train ShapesCNN on train's carried labels, deterministically for a seed; return it in eval.

    epochs defaults to default_epochs(len(train)).
    """
    epochs = default_epochs(len(train)) if epochs is None else epochs
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ShapesCNN()
    inputs = images_to_tensor(train.images)
    targets = torch.from_numpy(train.targets).long()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    steps_per_epoch = -(-len(targets) // BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=LEARNING_RATE, total_steps=epochs * steps_per_epoch
    )
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(targets), generator=generator)
        flips = torch.rand(len(targets), generator=generator) < 0.5
        total = 0.0
        for start in range(0, len(order), BATCH_SIZE):
            idx = order[start : start + BATCH_SIZE]
            batch = inputs[idx]
            # Horizontal flips keep every shape's class and its background (the planted shortcut).
            batch = torch.where(flips[idx, None, None, None], batch.flip(-1), batch)
            loss = loss_fn(model(batch), targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        if progress is not None:
            progress(epoch + 1, epochs, total / len(order))
    return model.eval()


def default_cache_dir() -> Path:
    """$LATENTSIGHT_CACHE, else $XDG_CACHE_HOME/latentsight, else ~/.cache/latentsight."""
    if env := os.environ.get("LATENTSIGHT_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "latentsight"


def cache_key(config: ShapesConfig, epochs: int, seed: int) -> str:
    """Short sha256 of everything that determines the trained weights."""
    spec = {
        "config": dataclasses.asdict(config),
        "epochs": epochs,
        "seed": seed,
        "model_version": MODEL_VERSION,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def demo_model_path(
    config: ShapesConfig,
    *,
    cache_dir: Path | None = None,
    epochs: int | None = None,
    seed: int = 0,
) -> Path:
    """The cache file of the weights for (config, epochs, seed); epochs as load_or_train_demo_model."""
    epochs = default_epochs(config.n_train) if epochs is None else epochs
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return cache_dir / f"shapes-cnn-{cache_key(config, epochs, seed)}.pt"


def load_or_train_demo_model(
    config: ShapesConfig,
    subsets: dict[str, ShapesSubset] | None = None,
    *,
    cache_dir: Path | None = None,
    retrain: bool = False,
    epochs: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[ShapesCNN, bool]:
    """Load cached weights for (config, epochs, seed) or train and cache them; bool = loaded.

    subsets, when given, must be generate_shapes(config); it saves regenerating them to train.
    epochs defaults to default_epochs(config.n_train).
    """
    epochs = default_epochs(config.n_train) if epochs is None else epochs
    path = demo_model_path(config, cache_dir=cache_dir, epochs=epochs, seed=seed)
    if not retrain and path.exists():
        model = _load_weights(path)
        if model is not None:
            return model, True
    if subsets is None:
        subsets = generate_shapes(config)
    model = train_demo_model(subsets["train"], epochs=epochs, seed=seed, progress=progress)
    _save_weights(model, path)
    return model, False


def _load_weights(path: Path) -> ShapesCNN | None:
    """Model from a cached state dict, or None when the file is unreadable or does not fit."""
    model = ShapesCNN()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception:  # any failure to read the cache means "corrupt": retrain over it
        return None
    return model.eval()


def _save_weights(model: ShapesCNN, path: Path) -> None:
    """Write the state dict atomically (temp file in the same folder, then os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(model.state_dict(), f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
