"""Which weights an update moves: the pending change of every weight and the ones to program.

After the update rule has run, every weight of a layer has a pending change
delta = desired - current (+ the residual carried from earlier steps); the weights whose |delta|
reaches the trigger are programmed. This is the one pass of the update over a whole layer (fc1 of
the Nature CNN has 1.6 M weights), so on CPU it runs as a single compiled loop (numba): torch
would make five passes (subtract, add, abs, compare, nonzero) over freshly allocated temporaries.
Elsewhere (CUDA) it is those tensor ops. Both give the same result, bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np
import torch


@numba.njit(cache=True, nogil=True)
def _select(desired, current, residual, threshold, delta, index):  # pragma: no cover - compiled
    """delta[i] = desired[i] - current[i] (+ residual[i] when given); the positions with
    |delta| >= threshold go to index[:count]; returns count."""
    count = 0
    with_residual = residual.shape[0] > 0
    for i in range(desired.shape[0]):
        d = desired[i] - current[i]
        if with_residual:
            d = d + residual[i]
        delta[i] = d
        index[count] = i
        count += abs(d) >= threshold  # branch-free: moves are sparse but scattered
    return count


def select_moves(desired: torch.Tensor, current: torch.Tensor, residual: torch.Tensor,
                 threshold: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(delta, sel): the pending change of every weight, desired - current + residual (flat,
    float32; residual may be empty: none kept), and the flat positions (int64, ascending)
    where |delta| >= threshold (a 0-d tensor, in weight units).

    On CPU, with a residual, delta is written into the residual tensor itself.
    """
    if desired.device.type == "cpu":
        return _compiled(desired, current, residual, threshold)
    return _tensor_ops(desired, current, residual, threshold)


def _compiled(desired, current, residual, threshold):
    delta = residual if residual.numel() else torch.empty_like(desired)
    index = torch.empty(desired.numel(), dtype=torch.int64)  # index[count] <= i: in range
    count = _select(desired.numpy(), current.numpy(), residual.numpy(),
                    np.float32(threshold.item()), delta.numpy(), index.numpy())
    return delta, index[:count]


def _tensor_ops(desired, current, residual, threshold):
    delta = torch.sub(desired, current)
    if residual.numel():
        delta.add_(residual)
    return delta, (delta.abs() >= threshold).nonzero().squeeze(1)
