"""Which positions of a padded sequence batch are real, so that padding is not pooled into latents.

A sample's latents must not depend on the samples it was batched with; averaging over the padding
a collate function adds would make them do so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from latentsight.errors import ProjectError

PaddingMask = Callable[[Any], Any]
MASK_KEY = "attention_mask"


def padding_positions(inputs: Any, padding_mask: PaddingMask | None) -> torch.Tensor | None:
    """``B x T`` booleans, True at real positions: from ``padding_mask(inputs)`` when given,
    else from the ``attention_mask`` entry of mapping inputs when it is ``B x T`` (another form,
    such as ``B x T x T``, is the model's alone), else None (nothing is padding)."""
    if padding_mask is None:
        mask = inputs.get(MASK_KEY) if isinstance(inputs, Mapping) else None
        is_b_by_t = isinstance(mask, torch.Tensor) and mask.dim() == 2
        return mask.bool() if is_b_by_t else None
    mask = padding_mask(inputs)
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        described = (
            f"a tensor of shape {tuple(mask.shape)}"
            if isinstance(mask, torch.Tensor)
            else type(mask).__name__
        )
        raise ProjectError(
            f"Project.padding_mask gave {described}: it must be a B x T tensor, 1 or True at the "
            "real positions of each sequence and 0 or False at padding, e.g. "
            "padding_mask=lambda ids: ids != PAD_ID."
        )
    return mask.bool()


def masked_windows(mask: torch.Tensor, cells: int) -> torch.Tensor:
    """``B x T x cells``: for each sample, the weights adaptive average pooling gives its real
    positions (in order, padding skipped) in each of ``cells`` windows; a column sums to 1.

    Window k of a sample with L real positions covers ranks ``floor(k L / cells)`` to
    ``ceil((k + 1) L / cells)``, as ``adaptive_avg_pool1d`` over the unpadded sequence does.
    A sample with no real position gets zero weights.
    """
    real = mask.long()
    rank = real.cumsum(dim=1) - 1
    length = real.sum(dim=1, keepdim=True)
    cell = torch.arange(cells, device=mask.device)
    start = (cell * length) // cells
    stop = -((-(cell + 1) * length) // cells)
    inside = (rank.unsqueeze(2) >= start.unsqueeze(1)) & (rank.unsqueeze(2) < stop.unsqueeze(1))
    weights = (inside & mask.unsqueeze(2)).float()
    return weights / (stop - start).clamp(min=1).unsqueeze(1).float()


def masked_mean_weights(mask: torch.Tensor) -> torch.Tensor:
    """``B x T x 1``: each sample's mean over its real positions (zeros when it has none)."""
    weights = mask.float()
    return (weights / weights.sum(dim=1, keepdim=True).clamp(min=1)).unsqueeze(2)
