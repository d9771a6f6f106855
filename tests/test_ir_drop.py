"""IR drop: the first-order model against the exact solution of the resistive crossbar circuit,
and its use in the MVMs (off by default: weights unchanged)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from rlime.hw.chip import Chip
from rlime.hw.config import preset
from rlime.hw.crossbar import ir_drop_attenuation
from rlime.hw.layers import to_rram


def _exact_currents(v: np.ndarray, g: np.ndarray, r: float) -> np.ndarray:
    """Sensed column currents (amperes) of an R x C crossbar by nodal analysis: word line i
    driven at v[i] (volts) on column 0's side, bit line j sensed at 0 V past row R-1, a
    wire segment r (ohms) between neighbouring cells and to the periphery, cell (i, j) of
    conductance g[i, j] (siemens) between the two lines."""
    rows, cols = g.shape
    wl = lambda i, j: i * cols + j                      # noqa: E731  word-line node
    bl = lambda i, j: rows * cols + i * cols + j        # noqa: E731  bit-line node
    n, gw = 2 * rows * cols, 1.0 / r
    a, b = np.zeros((n, n)), np.zeros(n)

    def join(p: int, q: int, conductance: float) -> None:
        a[p, p] += conductance
        a[q, q] += conductance
        a[p, q] -= conductance
        a[q, p] -= conductance

    for i in range(rows):
        a[wl(i, 0), wl(i, 0)] += gw                     # driver -> first cell
        b[wl(i, 0)] += gw * v[i]
        for j in range(cols):
            join(wl(i, j), bl(i, j), g[i, j])
            if j + 1 < cols:
                join(wl(i, j), wl(i, j + 1), gw)
            if i + 1 < rows:
                join(bl(i, j), bl(i + 1, j), gw)
    for j in range(cols):
        a[bl(rows - 1, j), bl(rows - 1, j)] += gw       # last cell -> sense amplifier at 0 V
    volts = np.linalg.solve(a, b)
    return np.array([volts[bl(rows - 1, j)] * gw for j in range(cols)])


@pytest.mark.parametrize("r", [0.35, 2.0])
def test_first_order_ir_drop_matches_the_exact_circuit(r):
    rng = np.random.default_rng(0)
    rows, cols = 12, 10
    g = rng.uniform(1e-6, 1e-5, size=(rows, cols))     # the default device's range, siemens
    v = rng.uniform(0.0, 0.5, size=rows)                # read voltages
    exact = _exact_currents(v, g, r)
    ideal = v @ g
    a = ir_drop_attenuation(torch.tensor(r * g.T), rows, cols, rows).numpy().T  # W is out x in
    model = v @ (g * (1 - a))
    drop = ideal - exact
    assert np.all(drop > 0)                              # wires only ever lose current
    # the model captures the drop up to second-order terms in r G
    assert np.abs(model - exact).max() < 0.02 * drop.max()


def test_farther_cells_lose_more_and_tiles_restart_the_count():
    rg = torch.full((4, 6), 1e-4)                        # 4 outputs x 6 inputs, tiles of 3 x 2
    a = ir_drop_attenuation(rg, 3, 2, 3)
    first_tile = a[:2, :3]
    assert torch.all(first_tile[:, 0] > first_tile[:, 1]) and torch.all(first_tile[:, 1] > first_tile[:, 2])
    assert torch.equal(a[:, 3:], a[:, :3]) and torch.equal(a[2:], a[:2])  # same in every tile


def test_ir_drop_is_off_by_default_and_enters_the_mvm_through_both_cells_of_each_pair():
    torch.manual_seed(0)
    net = nn.Linear(64, 32)
    x = torch.rand(8, 64)
    ideal = preset("ideal").with_overrides({"tile.rows": 32})
    layer = to_rram(nn.Sequential(net), Chip(ideal, seed=0))[0]
    torch.testing.assert_close(layer(x).detach(), net(x).detach())     # off: ideal = float
    r = 50.0
    chip = Chip(ideal.with_overrides({"tile.wire_resistance_ohm": r}), seed=0)
    wired = to_rram(nn.Sequential(net), chip)[0]
    dev, arr = chip.cfg.device, wired.array
    g = (arr.cell_u + dev.g_min_siemens / dev.range_siemens).view(2, 32, 64)  # G / range
    loss = [ir_drop_attenuation(r * dev.range_siemens * half, 32, 128, 32) * half for half in g]
    effective = (wired.weight - arr.weight_scale * (loss[0] - loss[1])).detach()
    torch.testing.assert_close(wired(x).detach(), x @ effective.T + net.bias.detach())
    xg = x.clone().requires_grad_(True)               # the transposed MVM sees the same wires
    wired(xg).sum().backward()
    torch.testing.assert_close(xg.grad, torch.ones(8, 32) @ effective)
    assert torch.equal(wired.weight, layer.weight)     # the cells hold the same weights
    assert (wired(x) - layer(x)).abs().max() > 1e-3     # the wires deliver less
