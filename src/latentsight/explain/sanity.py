"""The model-randomisation sanity check (Adebayo et al. 2018): re-initialise the model's layers one
by one from the output down (cascading) and measure how much each sample's map still resembles the
original (Spearman rank correlation of absolute values). A method whose maps survive the
destruction of the weights explains the input, not the model."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata
from torch import nn


def weight_layers(model: nn.Module) -> list[str]:
    """Modules holding a weight matrix or kernel (convolutions, linear layers), input to output."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(getattr(module, "weight", None), torch.Tensor)
        and module.weight.dim() >= 2
        and hasattr(module, "reset_parameters")
    ]


def rank_correlation(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Spearman correlation of the absolute values, row by row (0 where a row is constant)."""
    a = rankdata(np.abs(first.reshape(len(first), -1)), axis=1)
    b = rankdata(np.abs(second.reshape(len(second), -1)), axis=1)
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=1) / denominator, 0.0)


def cascading_randomization(
    model: nn.Module,
    explain: Callable[[nn.Module], np.ndarray],
    original: np.ndarray,
    *,
    seed: int = 0,
) -> pd.DataFrame:
    """Rank correlation with ``original`` after each cumulative re-initialisation, output first.

    ``explain(model)`` returns the maps of the checked samples under a given model; the caller's
    model is left untouched (a copy is randomised).
    """
    randomized = copy.deepcopy(model)
    modules = dict(randomized.named_modules())
    rows = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step, name in enumerate(reversed(weight_layers(randomized)), start=1):
            modules[name].reset_parameters()
            correlation = rank_correlation(original, explain(randomized))
            rows.append(
                {
                    "step": step,
                    "randomized": name,
                    "spearman": float(correlation.mean()),
                    "spearman_std": float(correlation.std()),
                }
            )
    return pd.DataFrame(rows)
