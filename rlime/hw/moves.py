"""Which weights an update moves, to which cell levels, and what is left after tuning.

After the update rule has run, every weight of a layer has a pending change
delta = desired - current (+ the residual carried from earlier steps); the weights whose |delta|
reaches the trigger are programmed (`select_moves`), each towards its nearest level as a
canonical pair of cell targets (`plan_targets`), and after tuning the residual and the realised
weights are brought up to date (`settle_moves`). The selection is the one pass of the update over
a whole layer (fc1 of the Nature CNN has 1.6 M weights); the other two touch only the selected
weights, a few per step, where a dozen tensor dispatches each would cost more than the
arithmetic. So on CPU each runs as a compiled loop (numba); elsewhere (CUDA) as tensor ops.
Both give the same result, bit for bit (tests/test_moves.py).
"""

from __future__ import annotations

import numba
import numpy as np
import torch


@numba.njit(cache=True, nogil=True)
def _select(desired, current, residual, threshold, delta):  # pragma: no cover - compiled
    """delta[i] = desired[i] - current[i] (+ residual[i] when given); returns how many
    |delta| >= threshold (a loop that vectorises)."""
    count = 0
    if residual.shape[0] > 0:
        for i in range(desired.shape[0]):
            d = desired[i] - current[i] + residual[i]
            delta[i] = d
            count += abs(d) >= threshold
    else:
        for i in range(desired.shape[0]):
            d = desired[i] - current[i]
            delta[i] = d
            count += abs(d) >= threshold
    return count


@numba.njit(cache=True, nogil=True)
def _positions(delta, threshold, index):  # pragma: no cover - compiled
    """index[:] = the positions where |delta| >= threshold, ascending (a scan)."""
    j = 0
    for i in range(delta.shape[0]):
        if abs(delta[i]) >= threshold:
            index[j] = i
            j += 1


def select_moves(desired: torch.Tensor, current: torch.Tensor, residual: torch.Tensor,
                 threshold: np.float32 | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(delta, sel): the pending change of every weight, desired - current + residual (flat,
    float32; residual may be empty: none kept), and the flat positions (int64, ascending)
    where |delta| >= threshold (a float32 scalar: numpy or a 0-d tensor, in weight units).

    On CPU, with a residual, delta is written into the residual tensor itself.
    """
    if desired.device.type == "cpu":
        return _compiled(desired, current, residual, threshold)
    return _tensor_ops(desired, current, residual, threshold)


def _compiled(desired, current, residual, threshold):
    delta = residual if residual.numel() else torch.empty_like(desired)
    threshold = np.float32(threshold)
    count = _select(desired.numpy(), current.numpy(), residual.numpy(), threshold, delta.numpy())
    index = torch.empty(count, dtype=torch.int64)  # sized to the selection, not the layer
    if count:
        _positions(delta.numpy(), threshold, index.numpy())
    return delta, index


def _tensor_ops(desired, current, residual, threshold):
    delta = torch.sub(desired, current)
    if residual.numel():
        delta.add_(residual)
    return delta, (delta.abs() >= threshold).nonzero().squeeze(1)


@numba.njit(cache=True, nogil=True)
def _plan(sel, delta, current, level, max_level, u_min, u_max, belief,
          want):  # pragma: no cover - compiled
    """`plan_targets` over the m selected weights: want (m,) in place; returns (index, target)
    sized to the cells that need pulses (the pair targets and decisions in one pass, then
    the chosen cells gathered in order)."""
    m, n = sel.shape[0], current.shape[0]
    top = np.float32(max_level)
    goal = np.empty(2 * m, np.float32)  # G+ targets, then G- targets
    far = np.empty(2 * m, np.bool_)     # believed half a level or more from the target
    count = 0
    for j in range(m):
        i = sel[j]
        w = current[i] + delta[i]
        want[j] = w
        k = min(max(np.rint(w / level), -top), top)
        up, down = max(k, np.float32(0.0)) / top, max(-k, np.float32(0.0)) / top
        goal[j] = min(max(up, u_min[i]), u_max[i])
        goal[m + j] = min(max(down, u_min[i + n]), u_max[i + n])
        far[j] = abs(goal[j] - belief[i]) * top >= 0.5
        far[m + j] = abs(goal[m + j] - belief[i + n]) * top >= 0.5
        count += far[j] + far[m + j]
    index, target = np.empty(count, np.int64), np.empty(count, np.float32)
    c = 0
    for p in range(2 * m):
        if far[p]:
            index[c] = sel[p] if p < m else sel[p - m] + n
            target[c] = goal[p]
            c += 1
    return index, target


def plan_targets(sel: torch.Tensor, delta: torch.Tensor, current: torch.Tensor,
                 level: np.float32 | torch.Tensor, max_level: int, u_min: torch.Tensor,
                 u_max: torch.Tensor, belief: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(want, index, target) for the selected weights `sel` (m,) of a layer of n weights:
    want = current + delta (m,, weight units); each weight's nearest level k (in steps of
    `level`, a float32 scalar, clamped to +-`max_level`) as the canonical pair G+ at max(k, 0),
    G- at max(-k, 0), normalised and clamped into each cell's [u_min, u_max]; of those 2m cells
    (the G+ cells in the order of sel, then the G- cells; flat cell i + n is the G- twin of i)
    the ones whose `belief` is half a level or more from their target: `index` (int64, of the
    2n) and `target` (normalised conductance)."""
    plan = _plan_compiled if sel.device.type == "cpu" else _plan_tensor_ops
    return plan(sel, delta, current, level, max_level, u_min, u_max, belief)


def _plan_compiled(sel, delta, current, level, max_level, u_min, u_max, belief):
    want = current.new_empty(sel.numel())
    if sel.numel() == 0:  # most updates of most layers: nothing to plan
        return want, sel.new_empty(0), current.new_empty(0)
    index, target = _plan(sel.numpy(), delta.numpy(), current.numpy(), np.float32(level),
                          max_level, u_min.numpy(), u_max.numpy(), belief.numpy(), want.numpy())
    return want, torch.from_numpy(index), torch.from_numpy(target)


def _plan_tensor_ops(sel, delta, current, level, max_level, u_min, u_max, belief):
    want = current.index_select(0, sel) + delta.index_select(0, sel)
    k = torch.round(want / level).clamp_(-max_level, max_level)
    index = torch.cat([sel, sel + current.numel()])
    target = torch.cat([k.clamp(min=0), (-k).clamp(min=0)]) / max_level
    target = torch.minimum(torch.maximum(target, u_min.index_select(0, index)),
                           u_max.index_select(0, index))
    now = belief.index_select(0, index)
    tune = ((target - now).abs() * max_level >= 0.5).nonzero().squeeze(1)
    return want, index.index_select(0, tune), target.index_select(0, tune)


@numba.njit(cache=True, nogil=True)
def _settle(sel, want, scale, belief, u, delta, current):  # pragma: no cover - compiled
    """`settle_moves` over the m selected weights."""
    n = current.shape[0]
    for j in range(sel.shape[0]):
        i = sel[j]
        if delta.shape[0] > 0:
            reachable = min(max(want[j], -scale), scale)
            delta[i] = reachable - scale * (belief[i] - belief[i + n])
        current[i] = scale * (u[i] - u[i + n])


def settle_moves(sel: torch.Tensor, want: torch.Tensor, scale: torch.Tensor,
                 belief: torch.Tensor, u: torch.Tensor, delta: torch.Tensor,
                 current: torch.Tensor) -> None:
    """After tuning the selected weights `sel` towards `want`, in place: `delta` (n,, the
    pending changes of `select_moves`, which the caller keeps as the residual; or empty, none
    kept) at sel becomes what the controller believes is still missing -- want clamped to the
    range +-`scale` (a 0-d tensor: what the range cannot hold is dropped, no windup at the
    bounds) minus the weight the cells' beliefs (2n,) encode; `current` (n,) at sel becomes the
    realised weight of the cells u (2n,)."""
    settle = _settle_compiled if sel.device.type == "cpu" else _settle_tensor_ops
    settle(sel, want, scale, belief, u, delta, current)


def _settle_compiled(sel, want, scale, belief, u, delta, current):
    if sel.numel() == 0:
        return
    _settle(sel.numpy(), want.numpy(), np.float32(scale.item()), belief.numpy(), u.numpy(),
            delta.numpy(), current.numpy())


def _settle_tensor_ops(sel, want, scale, belief, u, delta, current):
    n = current.numel()
    if delta.numel():
        known = belief.index_select(0, sel) - belief.index_select(0, sel + n)
        reachable = torch.minimum(torch.maximum(want, -scale), scale)
        delta.index_copy_(0, sel, reachable - scale * known)
    current.index_copy_(0, sel, scale * (u.index_select(0, sel) - u.index_select(0, sel + n)))
