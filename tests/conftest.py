"""Small real models and data sets shared by the tests."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn


class TinyCNN(nn.Module):
    """Two conv blocks, global pooling and a linear classifier."""

    def __init__(self, n_classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def image_items(
    n: int, seed: int, n_classes: int = 3, size: int = 12
) -> list[tuple[torch.Tensor, int]]:
    """``n`` random images in [0, 1] with integer labels."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, size, size, generator=generator)
    labels = torch.randint(0, n_classes, (n,), generator=generator)
    return [(images[i], int(labels[i])) for i in range(n)]


@pytest.fixture
def data() -> dict[str, list[tuple[torch.Tensor, int]]]:
    return {"train": image_items(40, seed=1), "val": image_items(24, seed=2)}


@pytest.fixture
def metadata(data: dict[str, list]) -> pd.DataFrame:
    rows = [
        {"id": f"{subset}/{i}", "brightness": float(x.mean()), "source": f"cam{i % 3}"}
        for subset, items in data.items()
        for i, (x, _) in enumerate(items)
    ]
    return pd.DataFrame(rows)
