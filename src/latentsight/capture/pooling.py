"""Pooling a layer's activations to fixed-size vectors per sample: the mean view and the grid view.

A convolutional map keeps two views: the spatial mean (C values) and a coarse grid (adaptive
average pooling to ``grid x grid``, flattened, kept as it is up to ``grid_project_above`` values
and reduced to ``grid_dim`` by a fixed seeded random projection above), so features living in a
small part of the input survive.
Sequences keep the mean over positions and a grid over ``grid`` segments of positions; a padded
sequence layer (``masked``) pools each sample's real positions only.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import reduce
from typing import Literal

import torch
from torch import nn

from latentsight.capture.padding import masked_mean_weights, masked_windows
from latentsight.errors import ProjectError

Kind = Literal["conv", "sequence", "channels_first_sequence", "volume", "vector"]
CHANNELS_FIRST_1D = (
    nn.Conv1d,
    nn.ConvTranspose1d,
    nn.BatchNorm1d,
    nn.InstanceNorm1d,
    nn.MaxPool1d,
    nn.AvgPool1d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveMaxPool1d,
)


@dataclass(frozen=True)
class PoolingSettings:
    """How activations become vectors; part of a run's settings (same settings, same vectors).

    A grid view of up to ``grid_project_above`` values is already a few hundred dimensions and is
    stored as it is; a larger one is projected to ``grid_dim``.
    """

    grid: int = 4
    grid_dim: int = 256
    grid_project_above: int = 512
    project_above: int | None = None
    seed: int = 0


def layer_kind(activation: torch.Tensor, module: nn.Module, point: str) -> Kind:
    """What an activation is, from its rank and (for 3-D tensors) the module that made it.

    A map with a single position (after global pooling) is a vector: its grid would repeat it.
    """
    rank = activation.dim()
    if rank <= 2 or (rank >= 4 and activation.shape[2:].numel() == 1):
        return "vector"
    if rank == 3:
        channels_first = point == "output" and isinstance(module, CHANNELS_FIRST_1D)
        return "channels_first_sequence" if channels_first else "sequence"
    if rank == 4:
        return "conv"
    return "volume"


def _projection(in_dim: int, out_dim: int, layer: str, view: str, seed: int) -> torch.Tensor:
    """A fixed Gaussian random projection, the same for the same layer, view and seed."""
    digest = hashlib.sha256(f"{seed}:{layer}:{view}:{in_dim}:{out_dim}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    return torch.randn(in_dim, out_dim, generator=generator) / out_dim**0.5


def _window_matrix(length: int, cells: int) -> torch.Tensor:
    """``length x cells``: column i averages the positions that adaptive pooling puts in cell i."""
    matrix = torch.zeros(length, cells)
    for cell in range(cells):
        start, stop = cell * length // cells, -(-(cell + 1) * length // cells)
        matrix[start:stop, cell] = 1.0 / (stop - start)
    return matrix


def grid_matrix(spatial: tuple[int, ...], cells: int) -> torch.Tensor:
    """``prod(spatial) x cells**len(spatial)``: flattened positions to flattened grid cells.

    Adaptive average pooling is separable, so the matrix is the Kronecker product of one window
    matrix per axis; one matrix product then pools a whole batch, much faster than
    ``adaptive_avg_pool`` on CPU and the same up to float rounding.
    """
    return reduce(torch.kron, [_window_matrix(length, cells) for length in spatial])


@dataclass(frozen=True)
class SpatialOperators:
    """The matrices taking a ``B x C x positions`` map to its mean and grid views.

    ``pool`` averages each channel's positions into cells (None when the map is multiplied by
    ``project`` directly, or without it already is the grid view); ``project`` reduces the grid.
    ``average`` is the ``positions`` vector of the spatial mean, and ``cell_average`` the cells
    vector giving the same mean from the pooled cells when they split the positions evenly: the
    mean is then read from the cells, which are already in cache, instead of the whole map again.
    Matrix products are used throughout because, in the middle of a forward pass, they cost far
    less on CPU than ``mean`` and ``adaptive_avg_pool`` reductions.
    """

    pool: torch.Tensor | None
    project: torch.Tensor | None
    average: torch.Tensor
    cell_average: torch.Tensor | None

    def to(self, device: torch.device) -> SpatialOperators:
        """The same operators on ``device``."""
        matrices = (self.pool, self.project, self.average, self.cell_average)
        return SpatialOperators(*(None if m is None else m.to(device) for m in matrices))


def spatial_operators(
    spatial: tuple[int, ...], channels: int, cells: int, projection: torch.Tensor | None
) -> SpatialOperators:
    """The operators for a map of ``channels x *spatial`` with ``cells`` per axis.

    ``pool`` is None when the map already has one position per cell, and when it has so few
    positions (late layers, ``classifier`` inputs) that pooling and projecting folded into one
    ``channels * positions x D`` matrix cost fewer operations than the two steps.
    """
    positions = math.prod(spatial)
    average = torch.full((positions,), 1.0 / positions)
    if all(length == cells for length in spatial):
        return SpatialOperators(None, projection, average, None)
    pool = grid_matrix(spatial, cells)
    cells_total = pool.shape[1]
    even = all(length % cells == 0 for length in spatial)
    cell_average = torch.full((cells_total,), 1.0 / cells_total) if even else None
    if projection is None:
        return SpatialOperators(pool, None, average, cell_average)
    dim = projection.shape[1]
    if positions * dim > positions * cells_total + cells_total * dim:
        return SpatialOperators(pool, projection, average, cell_average)
    per_channel = projection.reshape(channels, cells_total, dim)
    fused = torch.einsum("pk,ckd->cpd", pool, per_channel)
    return SpatialOperators(None, fused.reshape(channels * positions, dim), average, None)


class LayerPooler:
    """Turns one layer's batch of activations into its views, each ``B x D`` float32.

    ``masked`` (sequence layers only) pools over the real positions of the padding mask each
    batch brings, so that a sample's views do not depend on the padding it was batched with.
    """

    def __init__(
        self,
        layer: str,
        kind: Kind,
        sample_shape: tuple[int, ...],
        settings: PoolingSettings,
        masked: bool = False,
    ) -> None:
        self.layer = layer
        self.kind = kind
        self.sample_shape = sample_shape
        self.settings = settings
        self.masked = masked
        self._projections: dict[str, torch.Tensor] = {}
        self._operators: dict[tuple[tuple[int, ...], torch.device], SpatialOperators] = {}
        self.dims: dict[str, int] = {}
        raw = self._raw_dims()
        for view, dim in raw.items():
            if view == "grid":
                above, target = settings.grid_project_above, settings.grid_dim
            else:
                above = target = settings.project_above
            if above is not None and dim > above:
                self._projections[view] = _projection(dim, target, layer, view, settings.seed)
                self.dims[view] = target
            else:
                self.dims[view] = dim

    def _raw_dims(self) -> dict[str, int]:
        shape, grid = self.sample_shape, self.settings.grid
        if self.kind == "vector":
            return {"mean": int(torch.tensor(shape).prod()) if shape else 1}
        if self.kind == "conv":
            return {"mean": shape[0], "grid": shape[0] * grid * grid}
        if self.kind == "sequence":
            return {"mean": shape[1], "grid": shape[1] * grid}
        if self.kind == "channels_first_sequence":
            return {"mean": shape[0], "grid": shape[0] * grid}
        return {"mean": shape[0]}

    @property
    def views(self) -> list[str]:
        """The views this layer keeps, the mean view first."""
        return list(self.dims)

    def _spatial(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The mean and grid views of ``B x C x *spatial``: the grid projected if set."""
        key = (tuple(x.shape[1:]), x.device)
        if key not in self._operators:
            operators = spatial_operators(
                key[0][1:], x.shape[1], self.settings.grid, self._projections.get("grid")
            )
            self._operators[key] = operators.to(x.device)
        operators = self._operators[key]
        batch, channels = x.shape[:2]
        flat = x.reshape(batch, channels, -1)
        if operators.pool is not None:
            cells = flat @ operators.pool
            if operators.cell_average is None:
                mean = flat @ operators.average
            else:
                mean = cells @ operators.cell_average
            grid = cells.reshape(batch, -1)
            return {
                "mean": mean,
                "grid": grid if operators.project is None else grid @ operators.project,
            }
        if operators.project is None:
            grid = flat.reshape(batch, -1).clone()
            return {"mean": grid.view(batch, channels, -1) @ operators.average, "grid": grid}
        return {
            "mean": flat @ operators.average,
            "grid": flat.reshape(batch, -1) @ operators.project,
        }

    def _masked_sequence(
        self, x: torch.Tensor, mask: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """The mean and grid views of ``B x C x T`` over each sample's real positions."""
        if mask is None or mask.shape != (x.shape[0], x.shape[2]):
            found = "no padding mask" if mask is None else f"a padding mask of {tuple(mask.shape)}"
            raise ProjectError(
                f"Layer {self.layer!r} has {x.shape[2]} positions in a batch with {found}, "
                "where the first batch had one of the layer's length: give every batch its "
                "'attention_mask' (or a Project.padding_mask) covering the layer's positions."
            )
        mask = mask.to(x.device)
        cells = torch.bmm(x, masked_windows(mask, self.settings.grid)).reshape(x.shape[0], -1)
        mean = torch.bmm(x, masked_mean_weights(mask)).squeeze(2)
        projection = self._projections.get("grid")
        if projection is not None:
            if projection.device != x.device:
                projection = self._projections["grid"] = projection.to(x.device)
            cells = cells @ projection
        return {"mean": mean, "grid": cells}

    def __call__(
        self, activation: torch.Tensor, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Pool a ``B x ...`` activation to ``{view: B x D}`` on the activation's device.

        ``mask`` is the batch's ``B x T`` real positions, read by a ``masked`` layer only.
        Views are new tensors, never the activation itself, which the model may change in place
        after the hook (``ReLU(inplace=True)``).
        """
        x = activation.detach().float()
        batch = x.shape[0]
        if self.kind == "vector":
            pooled = {"mean": x.reshape(batch, -1).clone()}
        elif self.kind == "conv":
            pooled = self._spatial(x)
        elif self.kind in ("sequence", "channels_first_sequence"):
            channels_first = x if self.kind == "channels_first_sequence" else x.transpose(1, 2)
            if self.masked:
                pooled = self._masked_sequence(channels_first, mask)
            else:
                pooled = self._spatial(channels_first)
        else:
            pooled = {"mean": x.reshape(batch, x.shape[1], -1).mean(dim=2)}
        if "mean" in self._projections:
            matrix = self._projections["mean"]
            if matrix.device != x.device:
                matrix = self._projections["mean"] = matrix.to(x.device)
            pooled["mean"] = pooled["mean"] @ matrix
        return pooled
