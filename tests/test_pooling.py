"""Pooling turns conv maps, sequences and vectors into the right vectors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from latentsight import PoolingSettings
from latentsight.capture.pooling import LayerPooler, _projection, layer_kind


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


def test_mean_view_is_the_spatial_mean_whichever_way_the_grid_is_made():
    """Even cells (the mean read from the cells), uneven overlapping cells, one position per
    cell, and a projection folded into the pooling each take their own path to the mean view."""
    folded = PoolingSettings(grid=4, grid_dim=64, grid_project_above=128)
    for height, width in ((8, 8), (7, 5), (4, 4), (3, 3), (12, 12)):
        for settings in (PoolingSettings(), folded):
            x = torch.randn(6, 24, height, width)
            expected = x.mean(dim=(2, 3))
            views = LayerPooler("layer", "conv", (24, height, width), settings)(x)
            x.relu_()  # the model goes on changing the activation in place after the hook
            torch.testing.assert_close(views["mean"], expected)


def test_grid_above_the_limit_is_projected_with_a_fixed_seeded_matrix():
    x = torch.randn(4, 64, 8, 8)
    settings = PoolingSettings(grid=4, grid_dim=100)
    first = LayerPooler("layer4", "conv", (64, 8, 8), settings)
    second = LayerPooler("layer4", "conv", (64, 8, 8), settings)
    other_seed = LayerPooler("layer4", "conv", (64, 8, 8), PoolingSettings(grid_dim=100, seed=1))
    assert first.dims == {"mean": 64, "grid": 100}
    torch.testing.assert_close(first(x)["grid"], second(x)["grid"])
    assert not torch.allclose(first(x)["grid"], other_seed(x)["grid"])
    raw = F.adaptive_avg_pool2d(x, 4).reshape(4, -1)
    # a Gaussian projection scaled by 1/sqrt(k) roughly preserves norms (Johnson-Lindenstrauss)
    ratio = first(x)["grid"].norm(dim=1) / raw.norm(dim=1)
    assert torch.all((ratio > 0.6) & (ratio < 1.4))


def test_grid_of_a_few_hundred_values_is_kept_as_it_is():
    x = torch.randn(5, 32, 4, 4)
    pooler = LayerPooler("features.2", "conv", (32, 4, 4), PoolingSettings())
    views = pooler(x)
    assert pooler.dims == {"mean": 32, "grid": 512}
    torch.testing.assert_close(views["grid"], x.reshape(5, -1))
    x.relu_()  # the model goes on changing the activation in place: the view must not follow
    assert views["grid"].min() < 0


def test_folded_pool_and_projection_equals_pooling_then_projecting():
    settings = PoolingSettings(grid=4, grid_dim=64, grid_project_above=128)
    for height, width in ((2, 2), (3, 3), (2, 4), (4, 4)):
        x = torch.randn(6, 24, height, width)
        pooler = LayerPooler("layer4", "conv", (24, height, width), settings)
        projection = _projection(24 * 16, 64, "layer4", "grid", settings.seed)
        plain = F.adaptive_avg_pool2d(x, 4).reshape(6, -1) @ projection
        assert pooler.dims["grid"] == 64
        torch.testing.assert_close(pooler(x)["grid"], plain, rtol=1e-4, atol=1e-5)


def test_vector_view_is_not_changed_by_in_place_ops_after_the_layer():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True))
    pooler = LayerPooler("0", "vector", (8,), PoolingSettings())
    seen = {}
    model[0].register_forward_hook(lambda _m, _i, out: seen.update(pooler(out)))
    x = torch.randn(16, 4)
    with torch.inference_mode():
        model(x)
        torch.testing.assert_close(seen["mean"], model[0](x))
    assert seen["mean"].min() < 0


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


def test_globally_pooled_map_is_a_vector_without_a_grid():
    x = torch.randn(5, 32, 1, 1)
    kind = layer_kind(x, nn.AdaptiveAvgPool2d(1), "output")
    pooler = LayerPooler("pool", kind, (32, 1, 1), PoolingSettings())
    assert kind == "vector" and pooler.views == ["mean"]
    torch.testing.assert_close(pooler(x)["mean"], x.reshape(5, 32))


def test_volume_is_averaged_over_all_positions():
    x = torch.randn(2, 4, 3, 5, 5)
    pooler = LayerPooler(
        "conv3d", layer_kind(x, nn.Conv3d(1, 4, 3), "output"), (4, 3, 5, 5), PoolingSettings()
    )
    torch.testing.assert_close(pooler(x)["mean"], x.mean(dim=(2, 3, 4)))
