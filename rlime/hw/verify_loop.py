"""The pulse-by-pulse verify loop of `write-verify` / `gradual`, compiled per cell for CPU.

Each cell is independent: pulse towards its goal, read back, stop when the read is accepted
(`accepts`: within tolerance and, when aiming, no pulse expected to bring it closer) or when its
pulse budget is spent. On a GPU the loop runs as batched tensor rounds (`rlime.hw.tuning`); on a
CPU a round over a shrinking set costs ~25 tensor passes or dispatches, and the slowest cell
sets the number of rounds, so here each cell runs its own loop to the end in compiled code
(numba), with the same physics as `PulseModel.step_once` (noise sigma = additive + relative x
|step|, `PulseModel.noise_sigmas`), `PulseModel.read` and `wear`. Each pulse's coefficients come
from the model's `Law` segments at the cell's state (`_law`, computed in float32
as `PulseModel.pulse_coefficients` computes them), so one loop serves the closed forms (one
segment) and measured laws.

The Gaussian noise (cycle-to-cycle per pulse, read noise per verify read) is drawn in bulk from
the chip's torch generator -- several times faster than drawing inside the compiled loop -- and
consumed in order, so a run is reproducible from its seed and resumable from its checkpoint.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from rlime.hw.device import PULSE_COUNT_MAX

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


# The law's helpers are inlined: a call would pass its arrays with reference counting, which
# costs several times the law itself.
@numba.njit(cache=True, nogil=True, inline="always")
def _bisect(edges, p):  # pragma: no cover - compiled
    """searchsorted(edges, p, side="right"): the `Law` segment holding p."""
    j, top = 0, edges.shape[0]
    while j < top:
        mid = (j + top) >> 1
        if edges[mid] <= p:
            j = mid + 1
        else:
            top = mid
    return j


@numba.njit(cache=True, nogil=True, inline="always")
def _law(u, lo, span, s, scale, d, j, edges, k0, k1, sigma0, sigma1):  # pragma: no cover
    """(c0, c1, additive sigma, segment) of one pulse of `scale` x the step, direction d (0 SET,
    1 RESET), of a cell at u (bounds lo, lo + span, step scale s) on a `Law`: it moves u by
    c0 + c1 u. The segment is found by walking from segment j (a cell moves a few segments a
    pulse). The coefficients in float32, as the cells' are in torch; the sigma in float64."""
    p = (u - lo) / span
    top = edges.shape[0]
    while j < top and edges[j] <= p:
        j += 1
    while j > 0 and edges[j - 1] > p:
        j -= 1
    scale32 = np.float32(scale)
    c1 = k1[d, j] * s
    c0 = (k0[d, j] * s * span - c1 * lo) * scale32
    return c0, c1 * scale32, (sigma0[d, j] + sigma1[d, j] * p) * scale, j


@numba.njit(cache=True, nogil=True)
def _loop(start, noise, totals, u, seen, goal, budget, lo, hi, edges, k0, k1, sigma0, sigma1,
          scale, step_scale, stuck, pulses, noisy, noise_rel, read_add, read_rel, tol, aim,
          endurance):  # pragma: no cover - compiled
    """Cells start.. in order until the noise left cannot cover a cell's whole budget;
    returns (the first cell not done, noise values used). `totals` += [SET pulses, pulses, sum
    of u + u' over SET pulses, over all pulses]."""
    read_noisy = read_add > 0 or read_rel > 0
    per_pulse = noisy + read_noisy
    segmented = edges.shape[0] > 0  # else each cell has one law per direction
    k = 0
    for i in range(start, u.shape[0]):
        if k + per_pulse * budget[i] > noise.shape[0]:
            return i, k
        ui, si, gi = u[i], seen[i], goal[i]
        span, s = hi[i] - lo[i], step_scale[i]
        j = _bisect(edges, (ui - lo[i]) / span)
        # a closed form's coefficients, the same at every state (its law has one segment)
        fixed_up = _law(ui, lo[i], span, s, scale, 0, j, edges, k0, k1, sigma0, sigma1)[:3]
        fixed_down = _law(ui, lo[i], span, s, scale, 1, j, edges, k0, k1, sigma0, sigma1)[:3]
        taken = 0
        while taken < budget[i]:
            up = gi > si
            if segmented:
                c0, c1, additive, j = _law(ui, lo[i], span, s, scale, 0 if up else 1, j, edges,
                                           k0, k1, sigma0, sigma1)
            else:
                c0, c1, additive = fixed_up if up else fixed_down
            step = c0 + c1 * ui
            moved = ui + step
            if noisy:
                moved += (additive + noise_rel * abs(step)) * noise[k]
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
            if pulses[i] < PULSE_COUNT_MAX:  # the counter saturates (rlime.hw.device)
                pulses[i] += 1
            if pulses[i] >= endurance:
                stuck[i] = True
            si = ui
            if read_noisy:
                si += (read_add + read_rel * ui) * noise[k]
                k += 1
            # the controller's expected next step: the cell's coefficients at the read without
            # its own (unknown) step scale
            if segmented:
                c0, c1, additive, j = _law(si, lo[i], span, s, scale, 0 if gi > si else 1, j,
                                           edges, k0, k1, sigma0, sigma1)
            else:
                c0, c1, additive = fixed_up if gi > si else fixed_down
            expected = (c0 + c1 * si) / s
            if accepts(gi - si, expected, additive + noise_rel * abs(expected), tol, aim):
                break
        u[i] = ui
        seen[i] = si
    return u.shape[0], k


def verify_on_cpu(generator: torch.Generator, u: torch.Tensor, seen: torch.Tensor,
                  goal: torch.Tensor, budget: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                  law: tuple, scale: float, relative: float, step_scale: torch.Tensor,
                  stuck: torch.Tensor, pulses: torch.Tensor, read: tuple[float, float],
                  tol: float, aim: bool, endurance: float) -> tuple[float, float, float, float]:
    """Run every cell's verify loop to the end, in place on CPU tensors.

    `u`, `seen` (last read), `stuck`, `pulses` are updated in place; `goal`, `budget` (pulses
    allowed), bounds, the cells' step scales, the model's `Law` with pulses of
    `scale` x the full step (additive sigma x scale, `relative` sigma per unit of step:
    `PulseModel.noise_sigmas`) and the read noise (`PulseModel.read_sigmas`) are read; a read
    ends a cell's loop when `accepts` it (`tol` in u, `aim`).
    Returns (SET pulses, all pulses, sum of u + u' over SET pulses, over all
    pulses); every pulse is followed by one verify read.
    """
    arrays = [t.numpy() for t in (u, seen, goal, budget, lo, hi)]
    cells = [t.numpy() for t in (step_scale, stuck, pulses)]
    limit = endurance if math.isfinite(endurance) else np.inf
    noisy = relative > 0 or bool(law.sigma0.any() or law.sigma1.any())
    read_add, read_rel = (float(x) for x in read)
    per_pulse = noisy + (read_add > 0 or read_rel > 0)
    longest = int(budget.max()) if budget.numel() else 0
    totals = np.zeros(4)
    start, n, rate = 0, u.numel(), float(_EXPECTED_PULSES * per_pulse)
    while start < n:
        # noise for the cells left at the rate seen so far (+25 %), and one whole budget
        size = int(rate * 1.25 * (n - start)) + per_pulse * longest
        draws = torch.randn(size, generator=generator).numpy()
        done, used = _loop(start, draws, totals, *arrays, *law, float(scale), *cells, noisy, float(relative), read_add, read_rel,
                           float(tol), bool(aim), float(limit))
        rate = max(used / max(done - start, 1), 1.0)
        start = done
    return tuple(totals)
