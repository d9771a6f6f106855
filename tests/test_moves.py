"""rlime.hw.moves: the compiled (CPU) selection of the weights an update moves is the tensor-op
one, bit for bit."""

from __future__ import annotations

import pytest
import torch

from rlime.hw.moves import _compiled, _tensor_ops


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
