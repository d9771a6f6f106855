"""The pulse-by-pulse verify loop of `write-verify` / `gradual`, compiled per cell for CPU.

Each cell is independent: pulse towards its goal, read back, stop within tolerance or when its
pulse budget is spent. On a GPU the loop runs as batched tensor rounds (`rlime.tuning`); on a
CPU a round over a shrinking set costs ~25 tensor passes or dispatches, and the slowest cell
sets the number of rounds, so here each cell runs its own loop to the end in compiled code
(numba), with the same physics as `PulseModel.step_once`, `PulseModel.read` and `wear`. It
takes an array's cells and the positions to tune: their state is gathered in one tight compiled
pass (the loads overlap there; inside the loop each cell's would stall it) and written back the
same way, with no tensor gathers or merged copies.

The Gaussian noise (cycle-to-cycle per pulse, read noise per verify read) is drawn in bulk from
the chip's torch generator -- several times faster than drawing inside the compiled loop -- and
consumed in order, so a run is reproducible from its seed and resumable from its checkpoint.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from .device import CellSet

_EXPECTED_PULSES = 4  # per cell, for sizing a noise buffer; a short buffer is refilled


@numba.njit(cache=True, nogil=True)
def _gather(at, u, lo, hi, scale, stuck, pulses):  # pragma: no cover - compiled
    """The state of cells `at`, gathered in one tight pass (the loads overlap; inside the
    verify loop each cell's would stall it)."""
    n = at.shape[0]
    out = (np.empty(n, u.dtype), np.empty(n, lo.dtype), np.empty(n, hi.dtype),
           np.empty(n, scale.dtype), np.empty(n, stuck.dtype), np.empty(n, pulses.dtype))
    for j in range(n):
        i = at[j]
        out[0][j], out[1][j], out[2][j] = u[i], lo[i], hi[i]
        out[3][j], out[4][j], out[5][j] = scale[i], stuck[i], pulses[i]
    return out


@numba.njit(cache=True, nogil=True)
def _scatter(at, u, stuck, pulses, u_at, stuck_at, pulses_at):  # pragma: no cover - compiled
    for j in range(at.shape[0]):
        i = at[j]
        u[i], stuck[i], pulses[i] = u_at[j], stuck_at[j], pulses_at[j]


@numba.njit(cache=True, nogil=True)
def _loop(start, noise, totals, seen, goal, budget, u, lo, hi, scale, stuck, pulses, k_up,
          k_down, c2c_sigma, read_sigma, tol, endurance):  # pragma: no cover - compiled
    """Cells start.. in order until the noise left cannot cover a cell's whole budget;
    returns (the first cell not done, noise values used). `totals` += [SET pulses, pulses,
    sum of u + u' over SET pulses, over all pulses]."""
    per_pulse = (c2c_sigma > 0) + (read_sigma > 0)
    k = 0
    for i in range(start, u.shape[0]):
        if k + per_pulse * budget[i] > noise.shape[0]:
            return i, k
        # one pulse moves u by c0 + c1 u (PulseModel.single_pulse_coefficients)
        span = hi[i] - lo[i]
        c1_up, c1_down = k_up[1] * scale[i], k_down[1] * scale[i]
        c0_up = k_up[0] * scale[i] * span - c1_up * lo[i]
        c0_down = k_down[0] * scale[i] * span - c1_down * lo[i]
        ui, si, gi = u[i], seen[i], goal[i]
        taken = 0
        while taken < budget[i]:
            up = gi > si
            if up:
                moved = ui + c0_up + c1_up * ui
            else:
                moved = ui + c0_down + c1_down * ui
            if c2c_sigma > 0:
                moved += c2c_sigma * noise[k]
                k += 1
            moved = min(max(moved, lo[i]), hi[i])
            if stuck[i]:
                moved = ui
            both = ui + moved
            totals[1] += 1
            totals[3] += both
            if up:
                totals[0] += 1
                totals[2] += both
            ui = moved
            taken += 1
            pulses[i] += 1
            if pulses[i] >= endurance:
                stuck[i] = True
            si = ui
            if read_sigma > 0:
                si += read_sigma * noise[k]
                k += 1
            if abs(gi - si) <= tol:
                break
        u[i] = ui
        seen[i] = si
    return u.shape[0], k


def verify_on_cpu(generator: torch.Generator, cells: CellSet, at: torch.Tensor, seen: torch.Tensor,
                  goal: torch.Tensor, budget: torch.Tensor,
                  coefficients: tuple[float, float, float, float], c2c_sigma: float,
                  read_sigma: float, tol: float, endurance: float
                  ) -> tuple[float, float, float, float]:
    """Run the verify loops of the cells `at` (int64 positions in `cells`, a CPU `CellSet`) to
    the end, in place: no gather of the cells.

    Per programmed cell (aligned with `at`): `seen` (last read, updated in place), `goal`,
    `budget` (pulses allowed). The cells' u, stuck and pulses are updated in place; their
    bounds and step scale give each cell's single-pulse response from the pulse model's
    (k0_up, k1_up, k0_down, k1_down). Returns (SET pulses, all pulses, sum of u + u' over SET
    pulses, over all pulses); every pulse is followed by one verify read.
    """
    state = [t.numpy() for t in (cells.u, cells.u_min, cells.u_max, cells.step_scale,
                                 cells.stuck, cells.pulses)]
    at_np = at.numpy()
    local = _gather(at_np, *state)
    arrays = [seen.numpy(), goal.numpy(), budget.numpy(), *local]
    k_up, k_down = np.array(coefficients[:2]), np.array(coefficients[2:])
    limit = endurance if math.isfinite(endurance) else np.inf
    per_pulse = (c2c_sigma > 0) + (read_sigma > 0)
    longest = int(budget.max()) if budget.numel() else 0
    totals = np.zeros(4)
    start, n, rate = 0, at.numel(), float(_EXPECTED_PULSES * per_pulse)
    while start < n:
        # noise for the cells left at the rate seen so far (+25 %), and one whole budget
        size = int(rate * 1.25 * (n - start)) + per_pulse * longest
        noise = torch.randn(size, generator=generator).numpy()
        done, used = _loop(start, noise, totals, *arrays, k_up, k_down, float(c2c_sigma),
                           float(read_sigma), float(tol), float(limit))
        rate = max(used / max(done - start, 1), 1.0)
        start = done
    _scatter(at_np, state[0], state[4], state[5], local[0], local[4], local[5])
    return tuple(totals)
