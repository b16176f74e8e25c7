"""A TopK sparse autoencoder (Makhzani and Frey, 2013; Gao et al., 2024) as a concept dictionary.

The encoder keeps, per sample, the ``active`` largest of ``ReLU(A E + b)`` and zeroes the rest;
the decoder is the dictionary W (k x D) with unit rows, so A ~ U W with non-negative sparse codes
U, as the other dictionaries. For non-negative (post-ReLU) latents the decoder is kept
non-negative too, as NMF's: a linear autoencoder is only defined up to a rotation, and the sign
constraint pins the directions to the cone the latents live in. Training is minibatched Adam on
the squared reconstruction error (torch, CUDA when present) from a seeded k-means++ choice of data
rows, with the decoder's rows put back on the unit sphere after every step; a few times in the
first half of training, a concept starved on a held subsample (its mean squared code under 5 % of
the median concept's: dead, or crowded out by a neighbour) restarts at the residual of the
worst-reconstructed sample there (as dead neurons are resampled in Bricken et al., 2023). The
latents are
scaled by their mean row norm for training, so one learning rate suits any layer; float32
throughout, so a large layer is never copied to float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from latentsight.capture.plan import resolve_device

BATCH_SIZE = 1024
MIN_STEPS = 1000  # optimiser steps at least, however few the samples
EPOCHS = 10  # passes over the data at least, however many the samples
LEARNING_RATE = 0.08  # Adam's step, divided by sqrt(D): a coordinate of a unit row is ~1/sqrt(D)
_INIT_ROWS = 4096  # the subsample the initial directions and the scale come from
_CHUNK = 16384  # rows per block when encoding
_RESTARTS = 4  # checks for starved concepts, spread over the first half of training
_STARVED = 0.05  # a concept whose mean squared code is under this share of the median's


def default_active(k: int) -> int:
    """How many concepts a sample may use by default: half the dictionary, at least one."""
    return max(1, math.ceil(k / 2))


@dataclass(frozen=True)
class TopKEncoder:
    """The trained encoder: codes = TopK(ReLU(A @ weight + bias)) with ``active`` kept."""

    weight: np.ndarray  # D x k
    bias: np.ndarray  # k
    active: int

    def __call__(self, latents: np.ndarray, device: str | torch.device | None = None) -> np.ndarray:
        """Codes (N x k, float32, at most ``active`` non-zero per row), in blocks of rows."""
        where = resolve_device(device)
        weight = torch.from_numpy(self.weight).to(where)
        bias = torch.from_numpy(self.bias).to(where)
        codes = np.empty((latents.shape[0], self.bias.size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, latents.shape[0], _CHUNK):
                block = _rows(latents, slice(start, start + _CHUNK), where)
                codes[start : start + _CHUNK] = _top_k(block @ weight + bias, self.active).cpu()
        return codes


def _rows(latents: np.ndarray, rows: slice | np.ndarray, device: torch.device) -> torch.Tensor:
    """Some rows of the latents as a float32 tensor on the device."""
    return torch.from_numpy(np.asarray(latents[rows], dtype=np.float32)).to(device)


def _top_k(pre: torch.Tensor, active: int) -> torch.Tensor:
    """ReLU of the ``active`` largest values of each row, zero elsewhere."""
    values, indices = pre.topk(active, dim=1)
    return torch.zeros_like(pre).scatter(1, indices, torch.relu(values))


def _k_means_plus_plus(rows: torch.Tensor, k: int, rng: np.random.Generator) -> torch.Tensor:
    """k rows drawn one by one with probability ``|x|^2 (1 - max cosine to those drawn)``, on
    the unit sphere: spread-out, strong directions (k-means++ on the sphere), seeded."""
    norms = rows.norm(dim=1).double()
    units = rows / norms.clamp(min=1e-12).float()[:, None]
    weight = norms.square()
    chosen: list[int] = []
    for _ in range(k):
        if chosen:
            nearest = (units @ units[chosen].T).amax(dim=1).double()
            weight = norms.square() * (1.0 - nearest).clamp(min=0.0)
        if chosen:
            chosen.append(int(weight.argmax()))
        else:
            p = (weight / weight.sum()).numpy()
            chosen.append(int(rng.choice(len(rows), p=p / p.sum())))
    return units[chosen].clone()


def _restart_starved(
    sample: torch.Tensor,
    parameters: tuple[torch.nn.Parameter, torch.nn.Parameter, torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    active: int,
    non_negative: bool,
) -> None:
    """Point each starved concept at the residual of a badly reconstructed sample, and forget
    its optimiser moments."""
    decoder, weight, bias = parameters
    with torch.no_grad():
        codes = _top_k(sample @ weight + bias, active)
        energy = codes.square().mean(dim=0)
        dead = torch.nonzero(energy <= _STARVED * energy.median()).flatten()
        if dead.numel() == 0:
            return
        residual = sample - codes @ decoder
        if non_negative:
            residual = residual.clamp(min=0.0)
        worst = residual.norm(dim=1).argsort(descending=True)[: dead.numel()]
        directions = residual[worst] / residual[worst].norm(dim=1, keepdim=True).clamp(min=1e-12)
        decoder[dead] = directions
        weight[:, dead] = directions.T
        bias[dead] = 0.0
        for parameter, index in (
            (decoder, (dead,)),
            (weight, (slice(None), dead)),
            (bias, (dead,)),
        ):
            for moment in ("exp_avg", "exp_avg_sq"):
                if moment in optimizer.state[parameter]:
                    optimizer.state[parameter][moment][index] = 0.0


def fit_sae(
    latents: np.ndarray,
    k: int,
    *,
    active: int | None = None,
    non_negative: bool = False,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray, TopKEncoder]:
    """Train a TopK autoencoder with k concepts on ``N x D`` latents; returns the codes U
    (N x k), the decoder W (k x D, unit rows, non-negative if asked) and the encoder."""
    active = min(k, default_active(k) if active is None else int(active))
    where = resolve_device(device)
    n = latents.shape[0]
    rng = np.random.default_rng(seed)
    sample = _rows(latents, np.sort(rng.choice(n, min(n, _INIT_ROWS), replace=False)), where)
    scale = float(sample.norm(dim=1).mean()) or 1.0
    sample = sample / scale
    decoder = torch.nn.Parameter(_k_means_plus_plus(sample.cpu(), k, rng).to(where))
    weight = torch.nn.Parameter(decoder.detach().T.clone())
    bias = torch.nn.Parameter(torch.zeros(k, device=where))
    batch = min(BATCH_SIZE, n)
    per_epoch = n // batch
    steps = max(MIN_STEPS, EPOCHS * per_epoch)
    optimizer = torch.optim.Adam(
        [decoder, weight, bias], lr=LEARNING_RATE / math.sqrt(latents.shape[1])
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    checks = {steps * (i + 1) // (2 * _RESTARTS) for i in range(_RESTARTS)}
    with torch.enable_grad():
        for step in range(steps):
            if step % per_epoch == 0:
                order = rng.permutation(n)
            part = step % per_epoch
            x = _rows(latents, np.sort(order[part * batch : (part + 1) * batch]), where) / scale
            codes = _top_k(x @ weight + bias, active)
            # ||U W - X||^2 less the constant ||X||^2, without an N x D residual
            gram = decoder @ decoder.T
            loss = (codes * (codes @ gram - 2.0 * (x @ decoder.T))).sum(dim=1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                if non_negative:
                    decoder.clamp_(min=0.0)
                decoder /= decoder.norm(dim=1, keepdim=True).clamp(min=1e-12)
            if step + 1 in checks:
                _restart_starved(sample, (decoder, weight, bias), optimizer, active, non_negative)
    encoder = TopKEncoder(
        weight.detach().cpu().numpy(), (bias.detach() * scale).cpu().numpy(), active
    )
    return encoder(latents, where), decoder.detach().cpu().numpy(), encoder
