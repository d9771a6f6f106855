"""RRAM cell physics: conductance state of a weight array and the response to programming pulses.

State is kept as a normalised conductance u = (G - g_min_siemens) / (g_max_siemens - g_min_siemens): u = 0 is the
nominal Gmin, u = 1 the nominal Gmax, and one nominal pulse moves a cell by 1 / (levels - 1).
Each cell also has its own bounds [u_min, u_max] and step scale (device-to-device spread), a
stuck flag and a pulse counter (wear).

Pulse response of a cell on its own curve p = (u - u_min) / (u_max - u_min): every model is
"one pulse moves p by s * (k0 + k1 * p)" with per-direction constants (k0, k1) and the cell's
step scale s, so n pulses have a closed form (p_n = p + n s k0 for k1 = 0, else
p* - (p* - p) (1 + s k1)^n with p* = -k0 / k1). With d = 1 / (levels - 1):

* ``linear``:      SET k0 = d, k1 = 0; RESET k0 = -d.
* ``soft-bounds``: SET step d (1 - p) (shrinks towards Gmax); RESET step d p.
* ``nonlinear``:   NeuroSim's exponential curve G(P) = B (1 - exp(-nu P / N)) + Gmin over
  N = levels - 1 pulses: SET k1 = -(1 - exp(-nu / N)), p* = 1 / (1 - exp(-nu)); RESET mirrors
  it on q = 1 - p with nu_down. nu = 0 is linear; nu > 0 gives steps that shrink as the cell
  fills, nu < 0 steps that grow (nu is the number of e-foldings across the range, rlime's
  parametrisation of NeuroSim's curve).

RESET steps are additionally scaled by `down_up_ratio`. Every pulse adds cycle-to-cycle noise of
sigma = c2c_sigma (fraction of the range), so n pulses spread by c2c_sigma * sqrt(n). Cells stay in
[u_min, u_max]; stuck cells never move; a cell whose pulse count reaches `endurance_pulses` sticks
where it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rlime.hw.config import DeviceConfig

_LINEAR_NU = 1e-3  # |nu| below this is treated as linear (the exponential form loses precision)


@dataclass
class CellSet:
    """M gathered cells (all 1-D tensors of length M); the unit the pulse model works on."""

    u: torch.Tensor          # normalised conductance, float32
    u_min: torch.Tensor      # this cell's lower bound
    u_max: torch.Tensor      # this cell's upper bound
    step_scale: torch.Tensor  # this cell's step size relative to nominal
    stuck: torch.Tensor      # bool
    pulses: torch.Tensor     # int64, pulses taken over the cell's life

    def __len__(self) -> int:
        return self.u.numel()

    @staticmethod
    def cat(sets: list["CellSet"]) -> "CellSet":
        return CellSet(*(torch.cat([getattr(s, f) for s in sets]) for f in CELL_FIELDS))

    def split(self, sizes: list[int]) -> list["CellSet"]:
        parts = [torch.split(getattr(self, f), sizes) for f in CELL_FIELDS]
        return [CellSet(*fields) for fields in zip(*parts)]

    def take(self, index: torch.Tensor) -> "CellSet":
        """The cells at `index` (a copy)."""
        return CellSet(*(getattr(self, f).index_select(0, index) for f in CELL_FIELDS))

    def put(self, index: torch.Tensor, part: "CellSet") -> None:
        """Write the mutable state (u, stuck, pulses) of `part` back at `index`."""
        self.u.index_copy_(0, index, part.u)
        self.stuck.index_copy_(0, index, part.stuck)
        self.pulses.index_copy_(0, index, part.pulses)


CELL_FIELDS = ("u", "u_min", "u_max", "step_scale", "stuck", "pulses")


def fresh_cells(n: int, cfg: DeviceConfig, generator: torch.Generator,
                device: torch.device) -> CellSet:
    """2 * n new cells for n weights on twin arrays: G+ cells first, then G- cells.

    Flat index i < n is the G+ cell of weight i, n + i its G- cell. Bounds and step scale are
    drawn per cell (device-to-device spread); fresh cells sit at their own Gmin (u = u_min)
    unless stuck at Gmax.
    """
    m = 2 * n
    kw = dict(generator=generator, device=device)
    u_min = (cfg.d2d_bound_sigma * torch.randn(m, **kw)).clamp(-0.5, 0.45)
    u_max = (1.0 + cfg.d2d_bound_sigma * torch.randn(m, **kw)).clamp(0.55, 1.5)
    step_scale = (1.0 + cfg.d2d_step_sigma * torch.randn(m, **kw)).clamp_min(0.05)
    draw = torch.rand(m, **kw)
    at_min = draw < cfg.stuck_at_min_fraction
    at_max = (draw >= cfg.stuck_at_min_fraction) & (
        draw < cfg.stuck_at_min_fraction + cfg.stuck_at_max_fraction)
    return CellSet(u=torch.where(at_max, u_max, u_min), u_min=u_min, u_max=u_max,
                   step_scale=step_scale, stuck=at_min | at_max,
                   pulses=torch.zeros(m, dtype=torch.int64, device=device))


@dataclass
class PulseCounts:
    """What a batch of pulses cost: counts and the summed conductance at each pulse (siemens);
    0-d tensors, or numbers where the pulses were counted on the host (the compiled loop)."""

    set_pulses: torch.Tensor | float
    reset_pulses: torch.Tensor | float
    set_siemens: torch.Tensor | float
    reset_siemens: torch.Tensor | float


class PulseModel:
    """The response of cells to programming pulses, per `DeviceConfig`."""

    def __init__(self, cfg: DeviceConfig) -> None:
        self.cfg = cfg
        d = 1.0 / (cfg.levels - 1)
        r = cfg.down_up_ratio
        if cfg.response == "linear":
            up, down = (d, 0.0), (-d * r, 0.0)
        elif cfg.response == "soft-bounds":
            up, down = (d, -d), (0.0, -d * r)
        else:
            up = self._exponential(cfg.nonlinearity_up, d)
            q = self._exponential(cfg.nonlinearity_down, d)  # on q = 1 - p
            # dq = k0 + k1 q  <=>  dp = -(k0 + k1) + k1 p
            down = (-(q[0] + q[1]) * r, q[1] * r)
        (self.k0_up, self.k1_up), (self.k0_down, self.k1_down) = up, down

    @staticmethod
    def _exponential(nu: float, d: float) -> tuple[float, float]:
        if abs(nu) < _LINEAR_NU:
            return d, 0.0
        k1 = -(1.0 - math.exp(-nu * d))
        return -k1 / (1.0 - math.exp(-nu)), k1

    def _coefficients(self, up: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k0 = torch.where(up, self.k0_up, self.k0_down) * scale
        k1 = torch.where(up, self.k1_up, self.k1_down) * scale
        return k0, k1

    def apply(self, cells: CellSet, n: torch.Tensor, up: torch.Tensor,
              generator: torch.Generator) -> PulseCounts:
        """Fire n pulses (float tensor, >= 0) at every cell, SET where `up`, else RESET.

        Updates cells.u, cells.pulses and cells.stuck in place and returns the cost; the
        conductance at each pulse is approximated by the mean of the start and end states.
        """
        span = cells.u_max - cells.u_min
        p = (cells.u - cells.u_min) / span
        k0, k1 = self._coefficients(up, cells.step_scale)
        # a cell whose count reaches its endurance mid-burst sticks there: only the pulses
        # before that move it (all n are still fired and counted)
        moving = n
        if math.isfinite(self.cfg.endurance_pulses):
            left = (self.cfg.endurance_pulses - cells.pulses).clamp_min(0).to(n.dtype)
            moving = torch.minimum(n, left)
        linear = k1 == 0
        fixed = torch.where(linear, 0.0, -k0 / torch.where(linear, 1.0, k1))
        # p* - (p* - p)(1 + k1)^n, written as p + (p* - p)(1 - (1 + k1)^n) with expm1/log1p:
        # for small |nu| p* is large and the direct form cancels catastrophically in float32
        # (1 + k1 <= 0 only for extreme nu with few levels and a large step scale: pow directly)
        positive = k1 > -1
        log_rate = torch.log1p(torch.where(positive, k1, 0.0))
        grown = torch.where(positive, torch.expm1(moving * log_rate),
                            torch.pow(1.0 + k1, moving) - 1.0)
        p_new = torch.where(linear, p + moving * k0, p - (fixed - p) * grown)
        return self._finish(cells, cells.u_min + span * p_new, n, up, generator, moving)

    def single_pulse_coefficients(self, cells: CellSet) -> tuple[torch.Tensor, ...]:
        """(c0_up, c1_up, c0_down, c1_down): one pulse moves u by c0 + c1 * u, per cell."""
        span = cells.u_max - cells.u_min
        out = []
        for k0, k1 in ((self.k0_up, self.k1_up), (self.k0_down, self.k1_down)):
            c1 = k1 * cells.step_scale
            out += [k0 * cells.step_scale * span - c1 * cells.u_min, c1]
        return tuple(out)

    def step_once(self, u: torch.Tensor, c0: torch.Tensor, c1: torch.Tensor,
                  u_min: torch.Tensor, u_max: torch.Tensor, stuck: torch.Tensor | None,
                  generator: torch.Generator) -> torch.Tensor:
        """u after one pulse with per-cell coefficients (c0, c1) of its direction.

        Physics only (noise, bounds, `stuck` cells -- None when there are none); the caller
        keeps count and calls `wear`.
        """
        u_new = torch.addcmul(c0, c1, u).add_(u)
        if self.cfg.c2c_sigma > 0:
            u_new.add_(torch.randn(u.shape, generator=generator, device=u.device),
                       alpha=self.cfg.c2c_sigma)
        u_new = u_new.clamp_(min=u_min, max=u_max)
        return u_new if stuck is None else torch.where(stuck, u, u_new)

    def wear(self, cells: CellSet, pulses: torch.Tensor | int) -> None:
        """Add pulses to the cells' counters; cells reaching their endurance stick."""
        cells.pulses = cells.pulses + pulses
        if math.isfinite(self.cfg.endurance_pulses):
            cells.stuck = cells.stuck | (cells.pulses >= self.cfg.endurance_pulses)

    def _finish(self, cells: CellSet, u_new: torch.Tensor, n: torch.Tensor, up: torch.Tensor,
                generator: torch.Generator, moving: torch.Tensor) -> PulseCounts:
        """Noise, bounds, stuck cells, wear and cost of n pulses that moved cells to u_new
        (`moving` of them before the cell wore out)."""
        cfg = self.cfg
        if cfg.c2c_sigma > 0:
            noise = torch.randn(u_new.shape, generator=generator, device=u_new.device)
            u_new = u_new + cfg.c2c_sigma * torch.sqrt(moving) * noise
        u_new = torch.where(cells.stuck, cells.u, u_new.clamp_(min=cells.u_min, max=cells.u_max))
        g_mid = cfg.g_min_siemens + (0.5 * cfg.range_siemens) * (cells.u + u_new)
        n_up = torch.where(up, n, 0.0)
        set_pulses, set_siemens = n_up.sum(), (n_up * g_mid).sum()
        cells.u = u_new
        self.wear(cells, n.to(torch.int64))
        return PulseCounts(set_pulses, n.sum() - set_pulses, set_siemens,
                           (n * g_mid).sum() - set_siemens)

    def nominal_pulses(self, u: torch.Tensor, target: torch.Tensor,
                       limit: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, up): pulse count a nominal cell (bounds 0..1, scale 1) needs from u to target.

        n is rounded to whole pulses and capped at `limit`.
        """
        up = target >= u
        k0, k1 = self._coefficients(up, torch.ones((), device=u.device))
        linear = k1 == 0
        safe_k1 = torch.where(linear, -0.5, k1)
        fixed = -k0 / safe_k1
        remaining = ((fixed - target) / (fixed - u)).clamp_min(1e-12)
        n = torch.where(linear, (target - u) / torch.where(linear, k0, 1.0),
                        torch.log(remaining) / torch.log1p(safe_k1))
        return torch.nan_to_num(n, nan=limit, posinf=limit).round().clamp(0, limit), up

    def read(self, u: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One read of each cell's u with read noise (fraction of the range)."""
        sigma = self.cfg.read_noise_sigma
        if sigma == 0:
            return u
        return u + sigma * torch.randn(u.shape, generator=generator, device=u.device)
