"""rlime.hw.moves: the compiled (CPU) selection, planning and settling of the weights an update
moves are the tensor-op ones, bit for bit."""

from __future__ import annotations

import pytest
import torch

from rlime.hw.moves import (_compiled, _plan_compiled, _plan_tensor_ops, _settle_compiled,
                            _settle_tensor_ops, _tensor_ops)


@pytest.mark.parametrize("with_residual", [True, False])
def test_compiled_selection_equals_the_tensor_ops(with_residual):
    g = torch.Generator().manual_seed(3)
    n = 100_000
    current = torch.randn(n, generator=g) * 0.02
    desired = current + torch.randn(n, generator=g) * 1e-4
    residual = torch.randn(n, generator=g) * 3e-4 if with_residual else torch.zeros(0)
    threshold = torch.tensor(5e-4)
    # some changes exactly at the threshold, either sign: they are selected (>=)
    current[:20] = 0.0
    desired[:10], desired[10:20] = threshold, -threshold
    if with_residual:
        residual[:20] = 0.0
    expected_delta, expected_sel = _tensor_ops(desired, current, residual, threshold)
    delta, sel = _compiled(desired, current, residual.clone(), threshold)
    assert torch.equal(delta, expected_delta)
    assert torch.equal(sel, expected_sel)
    assert 0 < sel.numel() < n and set(range(20)) <= set(sel.tolist())


def _layer_state(n: int, levels: int, g: torch.Generator):
    """A layer's selection after an update: 2n cells with their bounds and beliefs, and the
    pending changes of n weights of full scale 0.05, some of them far out of range."""
    scale = torch.tensor(0.05)
    u = torch.rand(2 * n, generator=g)
    u_min = torch.rand(2 * n, generator=g) * 0.05
    u_max = 1 - torch.rand(2 * n, generator=g) * 0.05
    belief = u + torch.randn(2 * n, generator=g) * 0.01
    current = scale * (u[:n] - u[n:])
    desired = current + torch.randn(n, generator=g) * 0.01
    desired[:5] = 0.2  # beyond the range
    desired[5:10] = -0.2
    level = scale / (levels - 1)
    delta, sel = _tensor_ops(desired, current, torch.zeros(0), 1.5 * level)
    return scale, u, u_min, u_max, belief, current, delta, sel, level


@pytest.mark.parametrize("levels", [64, 9])
def test_compiled_plan_and_settle_equal_the_tensor_ops(levels):
    g = torch.Generator().manual_seed(4)
    n = 20_000
    scale, u, u_min, u_max, belief, current, delta, sel, level = _layer_state(n, levels, g)
    assert 100 < sel.numel() < n
    plans = [plan(sel, delta, current, level, levels - 1, u_min, u_max, belief)
             for plan in (_plan_compiled, _plan_tensor_ops)]
    for got, want in zip(*plans):
        assert got.dtype == want.dtype and torch.equal(got, want)
    want_w, index, target = plans[0]
    # by hand: each selected weight's nearest level as a canonical pair in its cells' bounds;
    # the cells believed half a level or more away, G+ cells in the order of sel, then G- cells
    k = torch.round((current[sel] + delta[sel]) / level).clamp(-(levels - 1), levels - 1)
    cells = torch.cat([sel, sel + n])
    goal = torch.cat([k.clamp(min=0), (-k).clamp(min=0)]) / (levels - 1)
    goal = torch.minimum(torch.maximum(goal, u_min[cells]), u_max[cells])
    far = (goal - belief[cells]).abs() * (levels - 1) >= 0.5
    assert 0 < far.sum() < cells.numel()
    assert torch.equal(index, cells[far]) and torch.allclose(target, goal[far])
    assert ((target >= u_min[index]) & (target <= u_max[index])).all()
    for with_residual in (True, False):
        results = []
        for settle in (_settle_compiled, _settle_tensor_ops):
            kept = delta.clone() if with_residual else torch.zeros(0)
            now = current.clone()
            settle(sel, want_w, scale, belief, u, kept, now)
            results.append((kept, now))
        (kept, now), (want_kept, want_now) = results
        assert torch.equal(kept, want_kept) and torch.equal(now, want_now)
        assert torch.equal(now, scale * (u[:n] - u[n:]))  # settled to what the cells encode
        if with_residual:  # the bounds drop what the range cannot hold: no windup
            assert kept.abs().max() < 2.5 * scale
