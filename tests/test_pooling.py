"""Pooling turns conv maps, sequences and vectors into the right vectors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from latentsight import PoolingSettings
from latentsight.capture.pooling import LayerPooler, layer_kind


def test_conv_map_keeps_the_spatial_mean_and_a_grid():
    x = torch.randn(5, 6, 8, 8)
    pooler = LayerPooler(
        "conv", layer_kind(x, nn.Conv2d(3, 6, 3), "output"), (6, 8, 8), PoolingSettings()
    )
    views = pooler(x)
    assert pooler.kind == "conv"
    torch.testing.assert_close(views["mean"], x.mean(dim=(2, 3)))
    expected_grid = x.reshape(5, 6, 4, 2, 4, 2).mean(dim=(3, 5)).reshape(5, -1)
    torch.testing.assert_close(views["grid"], expected_grid)
    assert pooler.dims == {"mean": 6, "grid": 96}


def test_grid_above_the_limit_is_projected_with_a_fixed_seeded_matrix():
    x = torch.randn(4, 64, 8, 8)
    settings = PoolingSettings(grid=4, grid_max_dim=100)
    first = LayerPooler("layer4", "conv", (64, 8, 8), settings)
    second = LayerPooler("layer4", "conv", (64, 8, 8), settings)
    other_seed = LayerPooler(
        "layer4", "conv", (64, 8, 8), PoolingSettings(grid_max_dim=100, seed=1)
    )
    assert first.dims == {"mean": 64, "grid": 100}
    torch.testing.assert_close(first(x)["grid"], second(x)["grid"])
    assert not torch.allclose(first(x)["grid"], other_seed(x)["grid"])
    raw = F.adaptive_avg_pool2d(x, 4).reshape(4, -1)
    # a Gaussian projection scaled by 1/sqrt(k) roughly preserves norms (Johnson-Lindenstrauss)
    ratio = first(x)["grid"].norm(dim=1) / raw.norm(dim=1)
    assert torch.all((ratio > 0.6) & (ratio < 1.4))


def test_sequence_is_averaged_over_positions():
    x = torch.randn(3, 10, 16)  # batch, tokens, features
    pooler = LayerPooler(
        "encoder",
        layer_kind(x, nn.TransformerEncoderLayer(16, 2), "output"),
        (10, 16),
        PoolingSettings(),
    )
    views = pooler(x)
    assert pooler.kind == "sequence"
    torch.testing.assert_close(views["mean"], x.mean(dim=1))
    assert views["grid"].shape == (3, 64)
    torch.testing.assert_close(views["grid"].reshape(3, 16, 4)[:, :, 0], x[:, :3].mean(dim=1))


def test_conv1d_output_is_channels_first():
    x = torch.randn(3, 8, 20)  # batch, channels, length
    kind = layer_kind(x, nn.Conv1d(4, 8, 3), "output")
    pooler = LayerPooler("conv1d", kind, (8, 20), PoolingSettings())
    assert kind == "channels_first_sequence"
    torch.testing.assert_close(pooler(x)["mean"], x.mean(dim=2))


def test_vector_is_kept_and_optionally_projected():
    x = torch.randn(6, 300)
    kept = LayerPooler(
        "fc", layer_kind(x, nn.Linear(300, 300), "output"), (300,), PoolingSettings()
    )
    projected = LayerPooler("fc", "vector", (300,), PoolingSettings(project_above=128))
    torch.testing.assert_close(kept(x)["mean"], x)
    assert kept.views == ["mean"]
    assert projected(x)["mean"].shape == (6, 128)


def test_volume_is_averaged_over_all_positions():
    x = torch.randn(2, 4, 3, 5, 5)
    pooler = LayerPooler(
        "conv3d", layer_kind(x, nn.Conv3d(1, 4, 3), "output"), (4, 3, 5, 5), PoolingSettings()
    )
    torch.testing.assert_close(pooler(x)["mean"], x.mean(dim=(2, 3, 4)))
