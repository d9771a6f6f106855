"""The pulse-by-pulse verify loop of `write-verify` / `gradual`, compiled per cell for CPU.

Each cell is independent: pulse towards its goal, read back, stop when the read is accepted
(`accepts`: within tolerance and, when aiming, no pulse expected to bring it closer) or when its
pulse budget is spent. On a GPU the loop runs as batched tensor rounds (`rlime.hw.tuning`); on a
CPU a round over a shrinking set costs ~25 tensor passes or dispatches, and the slowest cell
sets the number of rounds, so here each cell runs its own loop to the end in compiled code
(numba), with the same physics as `PulseModel.step_once` (noise sigma = additive + relative x
|step|, `PulseModel.noise_sigmas`), `PulseModel.read` and `wear`.

The Gaussian noise (cycle-to-cycle per pulse, read noise per verify read) is drawn in bulk from
the chip's torch generator -- several times faster than drawing inside the compiled loop -- and
consumed in order, so a run is reproducible from its seed and resumable from its checkpoint.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

_EXPECTED_PULSES = 4  # per cell, for sizing a noise buffer; a short buffer is refilled


@numba.njit(cache=True, nogil=True)
def accepts(error, step, sigma, tol, aim):  # pragma: no cover - compiled
    """Whether a verify read `error` (goal - read, in u) away from its goal ends the loop: within
    `tol`, and, when `aim`, no further pulse expected to bring the cell closer -- the next
    pulse's expected step `step` (signed, the controller's nominal model) with its noise sigma
    would leave a mean squared error (error - step)^2 + sigma^2 no smaller than error^2.
    Stopping at the first in-window read instead parks cells at the window's edge they came
    from (a bias of about tol - step / 2); aiming leaves them within about half a step of the
    goal on either side when the pulse noise is small, and accepts the whole window when it is
    large (sigma^2 >= 2 tol step - step^2)."""
    if abs(error) > tol:
        return False
    return not aim or error * error <= (error - step) ** 2 + sigma * sigma


@numba.njit(cache=True, nogil=True)
def _loop(start, noise, totals, u, seen, goal, budget, lo, hi, c0_up, c1_up, c0_down, c1_down,
          step_scale, stuck, pulses, noise_add, noise_rel, read_add, read_rel, tol, aim,
          endurance):  # pragma: no cover - compiled
    """Cells start.. in order until the noise left cannot cover a cell's whole budget;
    returns (the first cell not done, noise values used). `totals` += [SET pulses, pulses, sum
    of u + u' over SET pulses, over all pulses]."""
    noisy = noise_add > 0 or noise_rel > 0
    read_noisy = read_add > 0 or read_rel > 0
    per_pulse = noisy + read_noisy
    k = 0
    for i in range(start, u.shape[0]):
        if k + per_pulse * budget[i] > noise.shape[0]:
            return i, k
        ui, si, gi = u[i], seen[i], goal[i]
        taken = 0
        while taken < budget[i]:
            up = gi > si
            if up:
                step = c0_up[i] + c1_up[i] * ui
            else:
                step = c0_down[i] + c1_down[i] * ui
            moved = ui + step
            if noisy:
                moved += (noise_add + noise_rel * abs(step)) * noise[k]
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
            if read_noisy:
                si += (read_add + read_rel * ui) * noise[k]
                k += 1
            # the controller's expected next step: the cell's coefficients without its own
            # (unknown) step scale
            if gi > si:
                expected = (c0_up[i] + c1_up[i] * si) / step_scale[i]
            else:
                expected = (c0_down[i] + c1_down[i] * si) / step_scale[i]
            if accepts(gi - si, expected, noise_add + noise_rel * abs(expected), tol, aim):
                break
        u[i] = ui
        seen[i] = si
    return u.shape[0], k


def verify_on_cpu(generator: torch.Generator, u: torch.Tensor, seen: torch.Tensor,
                  goal: torch.Tensor, budget: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                  coefficients: tuple[torch.Tensor, ...], step_scale: torch.Tensor,
                  stuck: torch.Tensor, pulses: torch.Tensor, noise: tuple[float, float],
                  read: tuple[float, float], tol: float, aim: bool, endurance: float
                  ) -> tuple[float, float, float, float]:
    """Run every cell's verify loop to the end, in place on CPU tensors.

    `u`, `seen` (last read), `stuck`, `pulses` are updated in place; `goal`, `budget` (pulses
    allowed), bounds and the per-cell single-pulse coefficients (c0_up, c1_up, c0_down,
    c1_down), the cells' step scales, the pulse noise (additive, relative:
    `PulseModel.noise_sigmas`) and the read noise (`PulseModel.read_sigmas`) are read; a read
    ends a cell's loop when `accepts` it (`tol` in u, `aim`).
    Returns (SET pulses, all pulses, sum of u + u' over SET pulses, over all
    pulses); every pulse is followed by one verify read.
    """
    arrays = [t.numpy() for t in (u, seen, goal, budget, lo, hi, *coefficients, step_scale,
                                  stuck, pulses)]
    limit = endurance if math.isfinite(endurance) else np.inf
    noise_add, noise_rel = (float(x) for x in noise)
    read_add, read_rel = (float(x) for x in read)
    per_pulse = (noise_add > 0 or noise_rel > 0) + (read_add > 0 or read_rel > 0)
    longest = int(budget.max()) if budget.numel() else 0
    totals = np.zeros(4)
    start, n, rate = 0, u.numel(), float(_EXPECTED_PULSES * per_pulse)
    while start < n:
        # noise for the cells left at the rate seen so far (+25 %), and one whole budget
        size = int(rate * 1.25 * (n - start)) + per_pulse * longest
        draws = torch.randn(size, generator=generator).numpy()
        done, used = _loop(start, draws, totals, *arrays, noise_add, noise_rel, read_add,
                           read_rel, float(tol), bool(aim), float(limit))
        rate = max(used / max(done - start, 1), 1.0)
        start = done
    return tuple(totals)
