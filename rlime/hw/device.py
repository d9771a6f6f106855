"""RRAM cell physics: conductance state of a weight array and the response to programming pulses.

State is kept as a normalised conductance u = (G - g_min_siemens) / (g_max_siemens - g_min_siemens): u = 0 is the
nominal Gmin, u = 1 the nominal Gmax, and one nominal pulse moves a cell by 1 / (levels - 1).
Each cell also has its own bounds [u_min, u_max] (device-to-device spread, lognormal in siemens so
G > 0), a step scale, a stuck flag, a pulse counter (wear), and the controller's *belief*: the
level the programming controller last programmed or verified for it (it never sees u itself).

Pulse response of a cell on its own curve p = (u - u_min) / (u_max - u_min): every model is
"one pulse moves p by s * (k0 + k1 * p)" with per-direction constants (k0, k1) and the cell's
step scale s, so n pulses have a closed form (p_n = p + n s k0 for k1 = 0, else
p* - (p* - p) (1 + s k1)^n with p* = -k0 / k1). With d = 1 / (levels - 1):

* ``linear``:      SET k0 = d, k1 = 0; RESET k0 = -d.
* ``soft-bounds``: SET step d (1 - p) (shrinks towards Gmax); RESET step d p (aihwkit
  SoftBoundsDevice); its cycle-to-cycle noise is multiplicative, proportional to the step
  (aihwkit's default `mult_noise=True`).
* ``nonlinear``:   NeuroSim's curve G(x) = B (1 - exp(-x / a)) + Gmin over the normalised pulse
  position x in [0, 1] (x = P / Pmax, Pmax = levels - 1 pulses), B = range / (1 - exp(-1 / a)),
  with a *signed* normalised A per direction taken from NeuroSim's nonlinearity label
  (`neurosim_param_a`). SET walks x forwards, RESET walks the LTD curve backwards from Pmax
  (MLP_NeuroSim_V3.0 Cell.cpp RealDevice::Write), so with the labels' usual signs (+ for LTP,
  - for LTD) both directions saturate: SET steps shrink towards Gmax, RESET steps towards Gmin.

* ``measured``:    the device's own pulse-response table (`rlime.hw.measured`): the same law
  piecewise, one (k0, k1) per interval between the measured points (the measured step
  interpolated linearly in G), with a cycle-to-cycle sigma interpolated likewise.

RESET steps of the closed forms are additionally scaled by `down_up_ratio`. Every pulse adds
cycle-to-cycle noise of sigma = c2c_sigma (fraction of the range; NeuroSim's sigmaCtoC), so n
pulses spread by c2c_sigma * sqrt(n); soft-bounds scales it by step / d instead. Cells stay in
[u_min, u_max]; stuck cells never move; a cell whose pulse count reaches `endurance_pulses`
sticks where it is. Both directions' laws are also held as `Law` segments, the form the
compiled verify loop reads (`rlime.hw.verify_loop`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from rlime.hw import measured
from rlime.hw.config import DeviceConfig

_LINEAR_NU = 1e-6  # |1 / a| below this is treated as linear (the exponential form loses precision)

# NeuroSim's nonlinearity label is a scaled maximum deviation of the normalised curve
# g(x) = (1 - exp(-x / a)) / (1 - exp(-1 / a)) from the line g = x:
#     label = _LABEL_SCALE * max_x (g(x) - x) = _LABEL_SCALE * (K - a - a ln(K / a)),  K = 1 / (1 - exp(-1/a))
# (the maximum is where g'(x) = 1). This is how the normalised-A table of NeuroSim's getParamA
# (MLP_NeuroSim_V3.0 formula.cpp; documents/Nonlinearity-NormA.htm: labels 0.01..9 in steps of
# 0.01) relates label and A/Pmax: the scale fitted to that table reproduces its entries to 5
# digits across the range (0.01 -> 126.269, 0.63 -> 1.99733, 4.51 -> 0.2266, 9.00 -> 0.02281).
# Inverting it is a smooth interpolation of the table; negative labels give negative A, as
# getParamA returns sign(label) * table value.
_LABEL_SCALE = 10.10153
LABEL_RANGE = 9.0  # the table's range of |label|


def _label_of(a: float) -> float:
    k = 1.0 / -math.expm1(-1.0 / a)
    return _LABEL_SCALE * (k - a - a * math.log(k / a))


def neurosim_param_a(label: float) -> float:
    """Signed normalised A (A / Pmax, pulses per pulse range) of NeuroSim's nonlinearity label;
    inf for label 0 (linear)."""
    if label == 0:
        return math.inf
    lo, hi = math.log(1e-3), math.log(1e7)  # the label falls as a grows: bisect on log a
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _label_of(math.exp(mid)) > abs(label):
            lo = mid
        else:
            hi = mid
    return math.copysign(math.exp(0.5 * (lo + hi)), label)


@dataclass
class CellSet:
    """M gathered cells (all 1-D tensors of length M); the unit the pulse model works on.

    `belief` is what the programming controller holds for each cell (normalised conductance):
    its last verify read, or where its model says the last open-loop burst put the cell. It
    starts at the cell's calibrated Gmin when not given.
    """

    u: torch.Tensor          # normalised conductance, float32
    u_min: torch.Tensor      # this cell's lower bound (calibrated once, known to the controller)
    u_max: torch.Tensor      # this cell's upper bound (ditto)
    step_scale: torch.Tensor  # this cell's step size relative to nominal (unknown to it)
    stuck: torch.Tensor      # bool
    pulses: torch.Tensor     # PULSE_COUNTER (int32), pulses taken over the cell's life
    belief: torch.Tensor = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.belief is None:
            self.belief = self.u_min.clone()

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
        """Write the mutable state (u, stuck, pulses, belief) of `part` back at `index`."""
        for name in MUTABLE_FIELDS:
            getattr(self, name).index_copy_(0, index, getattr(part, name))


CELL_FIELDS = ("u", "u_min", "u_max", "step_scale", "stuck", "pulses", "belief")
MUTABLE_FIELDS = ("u", "stuck", "pulses", "belief")
MIN_SPAN = 0.05  # smallest own range a cell can have (fraction of the nominal range)
# A cell's pulse counter: 4 bytes (6.7 M cells for the Nature CNN and its target: 27 MB less than
# int64). It saturates at PULSE_COUNT_MAX = 2.1e9 pulses: twice the default endurance (1e9), past
# which the cell is stuck anyway; reaching it takes more than 10 M updates that each spend a whole
# gradual budget (2 x 100 pulses) on the same cell. An endurance above it (the optimistic
# preset's 1e12) is never reached by counting.
PULSE_COUNTER = torch.int32
PULSE_COUNT_MAX = torch.iinfo(PULSE_COUNTER).max


def fresh_cells(n: int, cfg: DeviceConfig, generator: torch.Generator,
                device: torch.device) -> CellSet:
    """2 * n new cells for n weights on twin arrays: G+ cells first, then G- cells.

    Flat index i < n is the G+ cell of weight i, n + i its G- cell. Bounds and step scale are
    drawn per cell (device-to-device spread): each cell's Gmin and Gmax are lognormal around the
    nominal ones, G = G_nominal * exp(d2d_bound_sigma * xi), so conductances stay > 0 siemens
    (a relative spread as measured for RRAM arrays, e.g. Chen et al. IEDM 2015; aihwkit's
    w_min_dtod / w_max_dtod are additive in weight units and can cross zero, which a
    conductance cannot). A cell's own range is kept at least MIN_SPAN wide. Fresh cells sit at
    their own Gmin (u = u_min) unless stuck at Gmax; the controller believes every fresh cell is
    at its calibrated Gmin.
    """
    m = 2 * n
    kw = dict(generator=generator, device=device)
    span = cfg.range_siemens
    # in place, one tensor per quantity (fc1 of the Nature CNN has 3.2 M cells: 13 MB each)
    u_min = torch.randn(m, **kw).mul_(cfg.d2d_bound_sigma).exp_().mul_(cfg.g_min_siemens)
    u_min.sub_(cfg.g_min_siemens).div_(span)
    u_max = torch.randn(m, **kw).mul_(cfg.d2d_bound_sigma).exp_().mul_(cfg.g_max_siemens)
    u_max.sub_(cfg.g_min_siemens).div_(span)
    torch.maximum(u_max, u_min + MIN_SPAN, out=u_max)
    step_scale = torch.randn(m, **kw).mul_(cfg.d2d_step_sigma).add_(1.0).clamp_min_(0.05)
    draw = torch.rand(m, **kw)
    at_min = draw < cfg.stuck_at_min_fraction
    at_max = (draw >= cfg.stuck_at_min_fraction).logical_and_(
        draw < cfg.stuck_at_min_fraction + cfg.stuck_at_max_fraction)
    del draw
    return CellSet(u=torch.where(at_max, u_max, u_min), u_min=u_min, u_max=u_max,
                   step_scale=step_scale, stuck=at_min.logical_or_(at_max),
                   pulses=torch.zeros(m, dtype=PULSE_COUNTER, device=device),
                   belief=u_min.clone())


@dataclass
class PulseCounts:
    """What a batch of pulses cost: counts and the summed conductance at each pulse (siemens);
    0-d tensors, or numbers where the pulses were counted on the host (the compiled loop)."""

    set_pulses: torch.Tensor | float
    reset_pulses: torch.Tensor | float
    set_siemens: torch.Tensor | float
    reset_siemens: torch.Tensor | float


def _walk(p: torch.Tensor, n: torch.Tensor, k0: torch.Tensor, k1: torch.Tensor) -> torch.Tensor:
    """p after n noise-free pulses of p += k0 + k1 p (the closed form of the module docstring)."""
    linear = k1 == 0
    fixed = torch.where(linear, 0.0, -k0 / torch.where(linear, 1.0, k1))
    # p* - (p* - p)(1 + k1)^n, written as p + (p* - p)(1 - (1 + k1)^n) with expm1/log1p:
    # for small |nu| p* is large and the direct form cancels catastrophically in float32
    # (1 + k1 <= 0 only for extreme nu with few levels and a large step scale: pow directly)
    positive = k1 > -1
    log_rate = torch.log1p(torch.where(positive, k1, 0.0))
    grown = torch.where(positive, torch.expm1(n * log_rate), torch.pow(1.0 + k1, n) - 1.0)
    return torch.where(linear, p + n * k0, p - (fixed - p) * grown)


class Law(NamedTuple):
    """The one-pulse law on a cell's own curve p as affine segments: on segment
    j = searchsorted(edges, p, right) (the first and the last unbounded) a pulse of direction d
    (0 SET, 1 RESET) moves p by s (k0[d, j] + k1[d, j] p), s the cell's step scale, with a
    cycle-to-cycle sigma of sigma0[d, j] + sigma1[d, j] p (fraction of the range) plus the
    model's relative sigma x |step|. numpy arrays: edges (E,), k0, k1 (2, E + 1) float32 (as the
    cells are), the sigmas (2, E + 1) float64. A closed form has one segment (E = 0)."""

    edges: np.ndarray
    k0: np.ndarray
    k1: np.ndarray
    sigma0: np.ndarray
    sigma1: np.ndarray


class TableLaw:
    """A measured table's `rlime.hw.measured.Piecewise` law on torch tensors (float32, put on
    each device once): segments, pulse positions on the averaged curves and their inverse."""

    def __init__(self, law: measured.Piecewise) -> None:
        self.law = law
        self._tensors: dict[torch.device, measured.Piecewise] = {}

    def on(self, device: torch.device) -> measured.Piecewise:
        """The law's arrays as tensors on `device`."""
        if device not in self._tensors:
            def put(a: np.ndarray) -> torch.Tensor:
                return torch.as_tensor(a, dtype=torch.float32, device=device)

            *arrays, point = self.law
            self._tensors[device] = measured.Piecewise(
                *(put(a) for a in arrays), tuple(tuple(put(a) for a in d) for d in point))
        return self._tensors[device]

    def segment(self, p: torch.Tensor) -> torch.Tensor:
        """The segment index of each p."""
        return torch.searchsorted(self.on(p.device).edges, p.contiguous(), right=True)

    def position(self, p: torch.Tensor, j: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Pulse position of each p (segment j) on its direction's (d: 0 SET, 1 RESET) curve."""
        t = self.on(p.device)
        return t.x0[d, j] + t.x1[d, j] * p

    def point(self, x: torch.Tensor, d: int) -> torch.Tensor:
        """p at pulse position x on direction d's averaged curve (`position`'s inverse)."""
        edges, a, b = self.on(x.device).point[d]
        i = torch.searchsorted(edges, x.contiguous(), right=True)
        return a[i] + b[i] * x


class PulseModel:
    """The response of cells to programming pulses, per `DeviceConfig`.

    `measured` is None for the closed forms, else the `TableLaw` of the device's table; `law`
    holds the response as `Law` segments.
    """

    def __init__(self, cfg: DeviceConfig) -> None:
        self.cfg = cfg
        self.nominal_step = 1.0 / (cfg.levels - 1)
        # aihwkit SoftBoundsDevice (mult_noise=True): noise sigma = dw_min_std * the actual step;
        # here dw_min_std = c2c_sigma / d, so a full nominal step carries c2c_sigma
        soft = cfg.response == "soft-bounds"
        self.relative_sigma = cfg.c2c_sigma / self.nominal_step if soft else 0.0
        self.measured: TableLaw | None = None
        if cfg.response == "measured":
            table = measured.piecewise(measured.load(cfg.table, cfg.table_sha256))
            self.measured = TableLaw(table)
            self.law = Law(*(a.astype(np.float32) for a in table[:3]), table.sigma0, table.sigma1)
            # a full reset lands with the sigma of a RESET at Gmin (p = 0)
            self.reset_sigma = float(self.law.sigma0[1, np.searchsorted(self.law.edges, 0.0,
                                                                        side="right")])
        else:
            self._closed_form(cfg)

    def _closed_form(self, cfg: DeviceConfig) -> None:
        d, r = self.nominal_step, cfg.down_up_ratio
        if cfg.response == "linear":
            up, down = (d, 0.0), (-d * r, 0.0)
        elif cfg.response == "soft-bounds":
            up, down = (d, -d), (0.0, -d * r)
        else:
            up = self._exponential(neurosim_param_a(cfg.nonlinearity_up), d)
            k0, k1 = self._exponential(neurosim_param_a(cfg.nonlinearity_down), -d)
            down = (k0 * r, k1 * r)
        (self.k0_up, self.k1_up), (self.k0_down, self.k1_down) = up, down
        additive = 0.0 if self.relative_sigma else cfg.c2c_sigma
        self.law = Law(np.zeros(0, np.float32), np.array([[up[0]], [down[0]]], np.float32),
                       np.array([[up[1]], [down[1]]], np.float32), np.full((2, 1), additive),
                       np.zeros((2, 1)))
        self.reset_sigma = cfg.c2c_sigma

    @property
    def state_dependent(self) -> bool:
        """Whether a cell's single-pulse coefficients depend on its state (measured laws)."""
        return self.measured is not None

    @staticmethod
    def _exponential(a: float, step: float) -> tuple[float, float]:
        """(k0, k1) of one pulse moving x by `step` (+d SET, -d RESET) on NeuroSim's curve
        g(x) = K (1 - exp(-x / a)), K = 1 / (1 - exp(-1 / a)) (formula.cpp NonlinearWeight):
        g(x + step) = K - (K - g) exp(-step / a), i.e. k1 = exp(-step / a) - 1, k0 = -K k1."""
        nu = 1.0 / a
        if abs(nu) < _LINEAR_NU:
            return step, 0.0
        k1 = math.expm1(-nu * step)
        return -k1 / -math.expm1(-nu), k1

    def _coefficients(self, up: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k0 = torch.where(up, self.k0_up, self.k0_down) * scale
        k1 = torch.where(up, self.k1_up, self.k1_down) * scale
        return k0, k1

    def apply(self, cells: CellSet, n: torch.Tensor, up: torch.Tensor,
              generator: torch.Generator) -> PulseCounts:
        """Fire n pulses (float tensor, >= 0) at every cell, SET where `up`, else RESET.

        Updates cells.u, cells.pulses and cells.stuck in place (not the belief) and returns the
        cost; the conductance at each pulse is approximated by the mean of the start and end
        states. Closed forms move in one closed-form step with the burst's summed noise; a
        measured law pulse by pulse (`_pulse_by_pulse`).
        """
        # a cell whose count reaches its endurance mid-burst sticks there: only the pulses
        # before that move it (all n are still fired and counted)
        moving = n
        if math.isfinite(self.cfg.endurance_pulses):
            left = (self.cfg.endurance_pulses - cells.pulses).clamp_min(0).to(n.dtype)
            moving = torch.minimum(n, left)
        cfg = self.cfg
        if self.measured is not None:
            u_new = self._pulse_by_pulse(cells, moving, up, generator)
        else:
            span = cells.u_max - cells.u_min
            p = (cells.u - cells.u_min) / span
            k0, k1 = self._coefficients(up, cells.step_scale)
            u_new = cells.u_min + span * _walk(p, moving, k0, k1)
            if cfg.c2c_sigma > 0:
                noise = torch.randn(u_new.shape, generator=generator, device=u_new.device)
                u_new = u_new + self._burst_sigma(p, moving, k0, k1, span) * noise
        u_new = torch.where(cells.stuck, cells.u, u_new.clamp_(min=cells.u_min, max=cells.u_max))
        g_mid = cfg.g_min_siemens + (0.5 * cfg.range_siemens) * (cells.u + u_new)
        n_up = torch.where(up, n, 0.0)
        set_pulses, set_siemens = n_up.sum(), (n_up * g_mid).sum()
        cells.u = u_new
        self.wear(cells, n.to(PULSE_COUNTER))
        return PulseCounts(set_pulses, n.sum() - set_pulses, set_siemens,
                           (n * g_mid).sum() - set_siemens)

    def _pulse_by_pulse(self, cells: CellSet, n: torch.Tensor, up: torch.Tensor,
                        generator: torch.Generator) -> torch.Tensor:
        """u after n pulses (SET where `up`) fired one at a time through `step_once`, each with
        the coefficients and noise of the state it starts from (stuck cells: the caller)."""
        u, lo, hi = cells.u, cells.u_min, cells.u_max
        for j in range(int(n.max()) if n.numel() else 0):
            c0_up, c1_up, c0_down, c1_down = self.pulse_coefficients(lo, hi, cells.step_scale, u)
            moved = self.step_once(u, torch.where(up, c0_up, c0_down),
                                   torch.where(up, c1_up, c1_down), lo, hi, None, generator,
                                   self.noise_sigmas(1.0, up, u, lo, hi))
            u = torch.where(n > j, moved, u)
        return u

    def _burst_sigma(self, p: torch.Tensor, n: torch.Tensor, k0: torch.Tensor, k1: torch.Tensor,
                     span: torch.Tensor) -> torch.Tensor | float:
        """Std of the summed cycle-to-cycle noise of n pulses from p (fraction of the range).

        Additive: c2c sqrt(n). Relative (soft-bounds): pulse j's sigma is c2c / d times its step
        s_j = s_0 (1 + k1)^j, so the variance is (c2c / d)^2 s_0^2 (1 - r^2n) / (1 - r^2), r = 1 + k1
        (the noise of earlier pulses is not fed through the later ones: the closed form's
        approximation).
        """
        c2c = self.cfg.c2c_sigma
        if not self.relative_sigma:
            return c2c * torch.sqrt(n)
        step0 = span * (k0 + k1 * p)
        r2 = (1.0 + k1) ** 2
        geometric = torch.where(k1 == 0, n, -torch.expm1(n * torch.log(r2)) / (1.0 - r2))
        return (c2c / self.nominal_step) * step0.abs() * torch.sqrt(geometric)

    def single_pulse_coefficients(self, cells: CellSet) -> tuple[torch.Tensor, ...]:
        """(c0_up, c1_up, c0_down, c1_down): one pulse moves u by c0 + c1 * u, per cell at its
        present state (its own step scale: the physics)."""
        return self.pulse_coefficients(cells.u_min, cells.u_max, cells.step_scale, cells.u)

    def pulse_coefficients(self, u_min: torch.Tensor, u_max: torch.Tensor,
                           step_scale: torch.Tensor | float = 1.0,
                           at: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """`single_pulse_coefficients` of cells with bounds [u_min, u_max] and `step_scale`;
        with the default 1, what the controller expects of a cell on its calibrated bounds.
        A closed form's hold everywhere; a measured law's on the segment holding each cell's
        u = `at` (required then)."""
        span = u_max - u_min
        out = []
        for k0, k1 in self._constants(at, u_min, span):
            c1 = k1 * step_scale
            out += [k0 * step_scale * span - c1 * u_min, c1 + torch.zeros_like(span)]
        return tuple(out)

    def _constants(self, at: torch.Tensor | None, u_min: torch.Tensor, span: torch.Tensor
                   ) -> tuple[tuple, tuple]:
        """((k0, k1) of SET, of RESET): numbers for a closed form, per-cell tensors of the
        segment holding u = `at` for a measured law."""
        if self.measured is None:
            return (self.k0_up, self.k1_up), (self.k0_down, self.k1_down)
        p = (at - u_min) / span
        j, t = self.measured.segment(p), self.measured.on(p.device)
        return (t.k0[0, j], t.k1[0, j]), (t.k0[1, j], t.k1[1, j])

    def noise_sigmas(self, scale: float = 1.0, up: torch.Tensor | None = None,
                     at: torch.Tensor | None = None, u_min: torch.Tensor | None = None,
                     u_max: torch.Tensor | None = None) -> tuple:
        """(additive sigma, sigma per unit of step) of one pulse whose step is `scale` x a full
        pulse's, as the verify loops apply them: sigma = additive + relative * |step|. Numbers
        for a closed form; for a measured law the additive sigma is a tensor, of each cell's
        direction (SET where `up`) at its u = `at` on its bounds [u_min, u_max]."""
        c2c = self.cfg.c2c_sigma
        if self.measured is not None:
            p = (at - u_min) / (u_max - u_min)
            j, t = self.measured.segment(p), self.measured.on(p.device)
            d = torch.where(up, 0, 1)
            return scale * (t.sigma0[d, j] + t.sigma1[d, j] * p), 0.0
        return (0.0, self.relative_sigma) if self.relative_sigma else (c2c * scale, 0.0)

    def step_once(self, u: torch.Tensor, c0: torch.Tensor, c1: torch.Tensor,
                  u_min: torch.Tensor, u_max: torch.Tensor, stuck: torch.Tensor | None,
                  generator: torch.Generator, noise: tuple[float, float] | None = None
                  ) -> torch.Tensor:
        """u after one pulse with per-cell coefficients (c0, c1) of its direction.

        Physics only (noise as `noise_sigmas` gives it -- a full pulse's when None --, bounds,
        `stuck` cells, None when there are none); the caller keeps count and calls `wear`.
        """
        additive, relative = self.noise_sigmas() if noise is None else noise
        step = torch.addcmul(c0, c1, u)
        u_new = step + u
        if isinstance(additive, torch.Tensor) or additive > 0 or relative > 0:
            sigma = additive + relative * step.abs() if relative > 0 else additive
            u_new = u_new + sigma * torch.randn(u.shape, generator=generator, device=u.device)
        u_new = u_new.clamp_(min=u_min, max=u_max)
        return u_new if stuck is None else torch.where(stuck, u, u_new)

    def wear(self, cells: CellSet, pulses: torch.Tensor | int) -> None:
        """Add pulses (>= 0, at most 2^31 - 1 each) to the cells' counters, which saturate at
        PULSE_COUNT_MAX; cells reaching their endurance stick."""
        room = PULSE_COUNT_MAX - cells.pulses
        cells.pulses = cells.pulses + torch.minimum(
            room, torch.as_tensor(pulses, dtype=room.dtype, device=room.device))
        if math.isfinite(self.cfg.endurance_pulses):
            cells.stuck = cells.stuck | (cells.pulses >= self.cfg.endurance_pulses)

    def nominal_pulses(self, u: torch.Tensor, target: torch.Tensor, limit: float,
                       u_min: torch.Tensor | float = 0.0, u_max: torch.Tensor | float = 1.0
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, up): pulses a cell with step scale 1 on its calibrated bounds [u_min, u_max]
        needs from u to target (u is what the controller believes, never the hidden state).

        n is rounded to whole pulses and capped at `limit`. A measured law's n is the distance
        of the two pulse positions on its averaged curve.
        """
        up = target >= u
        span = u_max - u_min
        p, goal = (u - u_min) / span, (target - u_min) / span
        if self.measured is not None:
            law = self.measured
            at, to, d = law.segment(p), law.segment(goal), torch.where(up, 0, 1)
            n = law.position(goal, to, d) - law.position(p, at, d)
            return n.round().clamp(0, limit), up
        k0, k1 = self._coefficients(up, torch.ones((), device=u.device))
        linear = k1 == 0
        safe_k1 = torch.where(linear, -0.5, k1)
        fixed = -k0 / safe_k1
        remaining = ((fixed - goal) / (fixed - p)).clamp_min(1e-12)
        n = torch.where(linear, (goal - p) / torch.where(linear, k0, 1.0),
                        torch.log(remaining) / torch.log1p(safe_k1))
        return torch.nan_to_num(n, nan=limit, posinf=limit).round().clamp(0, limit), up

    def predict(self, u: torch.Tensor, n: torch.Tensor, up: torch.Tensor,
                u_min: torch.Tensor | float = 0.0, u_max: torch.Tensor | float = 1.0
                ) -> torch.Tensor:
        """Where the controller's model says n pulses take a cell it believes at u: step scale
        1, no noise, calibrated bounds (the belief after an open-loop burst); a measured law
        moves n pulse positions along its averaged curve."""
        span = u_max - u_min
        p = (u - u_min) / span
        if self.measured is not None:
            law = self.measured
            x = law.position(p, law.segment(p), torch.where(up, 0, 1)) + n
            p = torch.where(up, law.point(x, 0), law.point(x, 1))
        else:
            k0, k1 = self._coefficients(up, torch.ones((), device=u.device))
            p = _walk(p, n, k0, k1)
        return torch.minimum(torch.maximum(u_min + span * p, torch.as_tensor(u_min)),
                             torch.as_tensor(u_max))

    def read_sigmas(self) -> tuple[float, float]:
        """(additive, per unit of u) sigma of one read, as fractions of the range: a read of u
        has sigma = additive + relative * u. "additive": (read_noise_sigma, 0); "proportional":
        sigma x G / range = sigma (g_min / range + u) (NeuroSim Cell.cpp IdealDevice::Read:
        I = V G (1 + N(0, sigmaReadNoise)), i.e. a standard deviation proportional to G)."""
        cfg = self.cfg
        if cfg.read_noise_model == "additive":
            return cfg.read_noise_sigma, 0.0
        return cfg.read_noise_sigma * cfg.g_min_siemens / cfg.range_siemens, cfg.read_noise_sigma

    def read(self, u: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One read of each cell's u with read noise (`read_sigmas`)."""
        additive, relative = self.read_sigmas()
        if additive == 0 and relative == 0:
            return u
        sigma = additive + relative * u if relative > 0 else additive
        return u + sigma * torch.randn(u.shape, generator=generator, device=u.device)

    def relax(self, cells: CellSet, moved: torch.Tensor, generator: torch.Generator) -> None:
        """Post-programming relaxation of the cells at `moved` (in place): u += relaxation_sigma
        x N(0, 1), kept in the cell's range; stuck cells do not move. The belief is left as it
        is (the controller's last read came before the relaxation)."""
        sigma = self.cfg.relaxation_sigma
        if moved.numel() == 0:
            return
        u = cells.u.index_select(0, moved)
        noise = torch.randn(u.shape, generator=generator, device=u.device)
        relaxed = torch.minimum(torch.maximum(u + sigma * noise, cells.u_min.index_select(0, moved)),
                                cells.u_max.index_select(0, moved))
        cells.u.index_copy_(0, moved, torch.where(cells.stuck.index_select(0, moved), u, relaxed))

    def full_reset(self, cells: CellSet, generator: torch.Generator) -> PulseCounts:
        """One full RESET pulse at every cell (in place): strong enough to saturate, it lands
        each healthy cell at its own Gmin plus one nominal pulse's cycle-to-cycle noise
        (c2c_sigma, or a measured law's RESET sigma at Gmin; clipped into the range); stuck
        cells stay. Wears every cell by one pulse; the cost is charged at the conductance the
        pulse starts from (siemens)."""
        g_start = self.cfg.g_min_siemens + self.cfg.range_siemens * cells.u
        zero = torch.zeros_like(cells.u)
        cells.u = self.step_once(cells.u, cells.u_min - cells.u, zero, cells.u_min, cells.u_max,
                                 cells.stuck, generator, (self.reset_sigma, 0.0))
        self.wear(cells, 1)
        count = float(len(cells))
        return PulseCounts(0.0, count, 0.0, g_start.sum())
