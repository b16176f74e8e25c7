"""Pooling a layer's activations to fixed-size vectors per sample: the mean view and the grid view.

A convolutional map keeps two views: the spatial mean (C values) and a coarse grid (adaptive
average pooling to ``grid x grid``, flattened, kept as it is up to ``grid_project_above`` values
and reduced to ``grid_dim`` by a fixed seeded random projection above), so features living in a
small part of the input survive.
Sequences keep the mean over positions and a grid over ``grid`` segments of positions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import reduce
from typing import Literal

import torch
from torch import nn

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


GridOperators = tuple[torch.Tensor | None, torch.Tensor | None]


def grid_operators(
    spatial: tuple[int, ...], channels: int, cells: int, projection: torch.Tensor | None
) -> GridOperators:
    """``(pool, project)`` matrices taking a map's positions to its grid view.

    ``pool`` averages each channel's positions into cells, then ``project`` (if any) reduces the
    ``channels * cells`` values. ``pool`` is None when the flattened map is multiplied by
    ``project`` directly (or, without it, is the grid view itself): when the map already has one
    position per cell, and when it has so few positions (late layers, ``classifier`` inputs)
    that pooling and projecting folded into one ``channels * positions x D`` matrix cost fewer
    operations than the two steps.
    """
    if all(length == cells for length in spatial):
        return None, projection
    pool = grid_matrix(spatial, cells)
    if projection is None:
        return pool, None
    positions, cells_total = pool.shape
    dim = projection.shape[1]
    if positions * dim > positions * cells_total + cells_total * dim:
        return pool, projection
    per_channel = projection.reshape(channels, cells_total, dim)
    fused = torch.einsum("pk,ckd->cpd", pool, per_channel)
    return None, fused.reshape(channels * positions, dim)


class LayerPooler:
    """Turns one layer's batch of activations into its views, each ``B x D`` float32."""

    def __init__(
        self, layer: str, kind: Kind, sample_shape: tuple[int, ...], settings: PoolingSettings
    ) -> None:
        self.layer = layer
        self.kind = kind
        self.sample_shape = sample_shape
        self.settings = settings
        self._projections: dict[str, torch.Tensor] = {}
        self._grids: dict[tuple[tuple[int, ...], torch.device], GridOperators] = {}
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

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        """The grid view of ``B x C x *spatial``: per-channel cell averages, projected if set."""
        key = (tuple(x.shape[1:]), x.device)
        if key not in self._grids:
            pool, project = grid_operators(
                key[0][1:], x.shape[1], self.settings.grid, self._projections.get("grid")
            )
            self._grids[key] = (
                None if pool is None else pool.to(x.device),
                None if project is None else project.to(x.device),
            )
        pool, project = self._grids[key]
        batch = x.shape[0]
        if pool is None:
            flat = x.reshape(batch, -1)
            return flat.clone() if project is None else flat @ project
        grid = (x.reshape(*x.shape[:2], -1) @ pool).reshape(batch, -1)
        return grid if project is None else grid @ project

    def __call__(self, activation: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pool a ``B x ...`` activation to ``{view: B x D}`` on the activation's device.

        Views are new tensors, never the activation itself, which the model may change in place
        after the hook (``ReLU(inplace=True)``).
        """
        x = activation.detach().float()
        batch = x.shape[0]
        if self.kind == "vector":
            pooled = {"mean": x.reshape(batch, -1).clone()}
        elif self.kind == "conv":
            pooled = {"mean": x.mean(dim=(2, 3)), "grid": self._grid(x)}
        elif self.kind in ("sequence", "channels_first_sequence"):
            channels_first = x if self.kind == "channels_first_sequence" else x.transpose(1, 2)
            pooled = {"mean": channels_first.mean(dim=2), "grid": self._grid(channels_first)}
        else:
            pooled = {"mean": x.reshape(batch, x.shape[1], -1).mean(dim=2)}
        if "mean" in self._projections:
            matrix = self._projections["mean"]
            if matrix.device != x.device:
                matrix = self._projections["mean"] = matrix.to(x.device)
            pooled["mean"] = pooled["mean"] @ matrix
        return pooled
