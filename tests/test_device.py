"""Tests for rlime.hw.device: the pulse response of RRAM cells, checked against its own definition.

device.py's definition: on a cell's own curve p = (u - u_min) / (u_max - u_min), one pulse moves
p by s * (k0 + k1 * p) plus cycle-to-cycle noise of sigma = c2c_sigma per pulse; with
d = 1 / (levels - 1): linear SET +d, RESET -d * down_up_ratio; soft-bounds SET d (1 - p),
RESET d p; nonlinear NeuroSim's p(P) = (1 - exp(-nu P / N)) / (1 - exp(-nu)), N = levels - 1.

Statistical checks use M = 20 000 cells and a seeded generator. Tolerances are 5 standard errors:
the standard error of a mean of M draws of std sigma is sigma / sqrt(M); of a sample standard
deviation it is sigma / sqrt(2 M) (Gaussian); of a fraction f it is sqrt(f (1 - f) / M).
"""

from __future__ import annotations

import math

import pytest
import torch

from rlime.hw.config import DeviceConfig
from rlime.hw.device import CellSet, PulseModel, fresh_cells

M = 20_000
Z = 5.0  # tolerance in standard errors
CPU = torch.device("cpu")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def cells_at(u0: float, m: int = M, lo: float = 0.0, hi: float = 1.0) -> CellSet:
    """m nominal cells (bounds lo..hi, step scale 1, healthy) at normalised conductance u0."""
    return CellSet(u=torch.full((m,), u0), u_min=torch.full((m,), lo), u_max=torch.full((m,), hi),
                   step_scale=torch.ones(m), stuck=torch.zeros(m, dtype=torch.bool),
                   pulses=torch.zeros(m, dtype=torch.int64))


def fire(model: PulseModel, cells: CellSet, n: float, up: bool, g: torch.Generator):
    m = len(cells)
    return model.apply(cells, torch.full((m,), float(n)), torch.full((m,), up), g)


def step_n_times(model: PulseModel, cells: CellSet, n: int, up: bool, g: torch.Generator):
    """n pulses one by one through step_once (the verify loops' path)."""
    c0u, c1u, c0d, c1d = model.single_pulse_coefficients(cells)
    c0, c1 = (c0u, c1u) if up else (c0d, c1d)
    stuck = cells.stuck if bool(cells.stuck.any()) else None
    u = cells.u
    for _ in range(n):
        u = model.step_once(u, c0, c1, cells.u_min, cells.u_max, stuck, g)
    model.wear(cells, n)
    cells.u = u
    return u


def assert_mean(x: torch.Tensor, expected: float, sigma: float, what: str) -> None:
    se = sigma / math.sqrt(x.numel())
    got = float(x.double().mean())
    assert abs(got - expected) <= Z * se, \
        f"{what}: mean {got:.6g}, expected {expected:.6g} +- {Z * se:.3g}"


def assert_std(x: torch.Tensor, expected: float, what: str) -> None:
    se = expected / math.sqrt(2 * x.numel())
    got = float(x.double().std())
    assert abs(got - expected) <= Z * se, \
        f"{what}: std {got:.6g}, expected {expected:.6g} +- {Z * se:.3g}"


# --------------------------------------------------------------------------- linear


LEVELS = 128
D = 1 / (LEVELS - 1)


@pytest.mark.parametrize("path", ["apply", "step_once"])
def test_linear_single_set_pulse_mean_d_and_spread_c2c(path):
    c2c = 0.01
    model = PulseModel(DeviceConfig(levels=LEVELS, response="linear", c2c_sigma=c2c))
    cells = cells_at(0.5)  # mid-range: the bounds are 50 sigma away, clamping never acts
    if path == "apply":
        fire(model, cells, 1, True, gen(1))
    else:
        step_n_times(model, cells, 1, True, gen(1))
    step = cells.u - 0.5
    assert_mean(step, D, c2c, "SET step")
    assert_std(step, c2c, "SET step")
    assert torch.all(cells.pulses == 1)


@pytest.mark.parametrize("path", ["apply", "step_once"])
def test_linear_n_pulses_mean_nd_and_spread_c2c_sqrt_n(path):
    c2c, n, u0 = 0.01, 16, 0.3
    model = PulseModel(DeviceConfig(levels=LEVELS, response="linear", c2c_sigma=c2c))
    cells = cells_at(u0)  # ends at 0.43 +- 0.04: bounds > 10 sigma away
    if path == "apply":
        fire(model, cells, n, True, gen(2))
    else:
        step_n_times(model, cells, n, True, gen(2))
    move = cells.u - u0
    sigma = c2c * math.sqrt(n)
    assert_mean(move, n * D, sigma, f"{n} SET pulses")
    assert_std(move, sigma, f"{n} SET pulses")
    assert torch.all(cells.pulses == n)


@pytest.mark.parametrize("path", ["apply", "step_once"])
def test_linear_reset_with_down_up_ratio_two(path):
    c2c = 0.01
    model = PulseModel(DeviceConfig(levels=LEVELS, response="linear", c2c_sigma=c2c,
                                    down_up_ratio=2.0))
    cells = cells_at(0.5)
    if path == "apply":
        fire(model, cells, 1, False, gen(3))
    else:
        step_n_times(model, cells, 1, False, gen(3))
    step = cells.u - 0.5
    assert_mean(step, -2 * D, c2c, "RESET step, ratio 2")
    assert_std(step, c2c, "RESET step, ratio 2")


def test_linear_noise_free_is_exact_and_respects_bounds():
    model = PulseModel(DeviceConfig(levels=LEVELS, response="linear", c2c_sigma=0.0))
    cells = cells_at(0.0, m=4)
    fire(model, cells, 10, True, gen())
    torch.testing.assert_close(cells.u, torch.full((4,), 10 * D))
    fire(model, cells, 500, True, gen())  # far past Gmax: clamped to the bound
    assert torch.all(cells.u == 1.0)
    fire(model, cells, 500, False, gen())
    assert torch.all(cells.u == 0.0)


# --------------------------------------------------------------------------- soft-bounds


@pytest.mark.parametrize("p0", [0.2, 0.7])
@pytest.mark.parametrize("path", ["apply", "step_once"])
def test_soft_bounds_mean_steps(p0, path):
    c2c = 0.01
    model = PulseModel(DeviceConfig(levels=LEVELS, response="soft-bounds", c2c_sigma=c2c))
    for up, expected in ((True, D * (1 - p0)), (False, -D * p0)):
        cells = cells_at(p0)
        if path == "apply":
            fire(model, cells, 1, up, gen(4))
        else:
            step_n_times(model, cells, 1, up, gen(4))
        step = cells.u - p0
        assert_mean(step, expected, c2c, f"soft-bounds {'SET' if up else 'RESET'} from p={p0}")
        assert_std(step, c2c, "soft-bounds step")


def test_soft_bounds_step_is_on_the_cells_own_curve():
    # bounds 0.1 .. 0.9 (span 0.8): at u = 0.5, p = 0.5; a SET pulse moves p by d (1 - p),
    # i.e. u by 0.8 * d * 0.5. Noise-free, so exact.
    model = PulseModel(DeviceConfig(levels=LEVELS, response="soft-bounds", c2c_sigma=0.0))
    cells = cells_at(0.5, m=3, lo=0.1, hi=0.9)
    fire(model, cells, 1, True, gen())
    torch.testing.assert_close(cells.u, torch.full((3,), 0.5 + 0.8 * D * 0.5))


# --------------------------------------------------------------------------- nonlinear


def neurosim_curve(nu: float, pulses: torch.Tensor, n_levels: int) -> torch.Tensor:
    """NeuroSim's normalised potentiation curve after P pulses over N = levels - 1 pulses."""
    n = n_levels - 1
    p = pulses.double()
    return (1 - torch.exp(-nu * p / n)) / (1 - math.exp(-nu))


@pytest.mark.parametrize("nu", [2.0, -2.0, 0.04, -0.63, 5.0])
def test_nonlinear_set_follows_neurosim_curve(nu):
    levels = 64
    n = levels - 1
    model = PulseModel(DeviceConfig(levels=levels, response="nonlinear", c2c_sigma=0.0,
                                    nonlinearity_up=nu, nonlinearity_down=-1.0))
    pulses = torch.arange(0, n + 1)
    expected = neurosim_curve(nu, pulses, levels)
    # closed form: cell i fires i pulses at once
    cells = cells_at(0.0, m=n + 1)
    model.apply(cells, pulses.float(), torch.ones(n + 1, dtype=torch.bool), gen())
    torch.testing.assert_close(cells.u.double(), expected, rtol=0, atol=2e-6)
    assert abs(float(cells.u[-1]) - 1.0) < 2e-6  # N pulses fill the range
    # pulse by pulse (step_once) reaches the same points
    cells = cells_at(0.0, m=1)
    seen = [0.0]
    for _ in range(n):
        seen.append(float(step_n_times(model, cells, 1, True, gen())[0]))
    torch.testing.assert_close(torch.tensor(seen, dtype=torch.float64), expected, rtol=0,
                               atol=2e-5)


@pytest.mark.parametrize("nu_down", [-0.63, 3.0, -3.0])
def test_nonlinear_reset_mirrors_the_curve_from_gmax(nu_down):
    # RESET from Gmax: q = 1 - p follows the same curve with nu_down
    levels = 64
    n = levels - 1
    model = PulseModel(DeviceConfig(levels=levels, response="nonlinear", c2c_sigma=0.0,
                                    nonlinearity_up=1.0, nonlinearity_down=nu_down))
    pulses = torch.arange(0, n + 1)
    cells = cells_at(1.0, m=n + 1)
    model.apply(cells, pulses.float(), torch.zeros(n + 1, dtype=torch.bool), gen())
    torch.testing.assert_close(1 - cells.u.double(), neurosim_curve(nu_down, pulses, levels),
                               rtol=0, atol=2e-6)
    assert abs(float(cells.u[-1])) < 2e-6


def test_nonlinear_default_reset_ratio_scales_steps():
    # down_up_ratio 2 doubles the RESET step at every point of the (near-linear) curve:
    # from Gmax the first RESET step is 2 x (1 - p(1)) of the nu_down curve.
    levels = 128
    model = PulseModel(DeviceConfig(levels=levels, c2c_sigma=0.0, down_up_ratio=2.0))
    cells = cells_at(1.0, m=1)
    fire(model, cells, 1, False, gen())
    first = float(neurosim_curve(-0.63, torch.tensor([1]), levels)[0])
    assert float(1 - cells.u[0]) == pytest.approx(2 * first, rel=1e-4)


def test_nonlinear_noise_on_top_of_the_curve():
    c2c, n = 0.02, 9
    levels = 128
    model = PulseModel(DeviceConfig(levels=levels, c2c_sigma=c2c))  # default NL 0.04 / -0.63
    cells = cells_at(0.4)
    ref = cells_at(0.4, m=1)
    PulseModel(DeviceConfig(levels=levels, c2c_sigma=0.0)).apply(
        ref, torch.tensor([float(n)]), torch.tensor([True]), gen())
    fire(model, cells, n, True, gen(5))
    sigma = c2c * math.sqrt(n)
    assert_mean(cells.u, float(ref.u[0]), sigma, "nonlinear with noise")
    assert_std(cells.u, sigma, "nonlinear with noise")


# --------------------------------------------------------------------------- device-to-device


def test_d2d_step_sigma_is_the_relative_spread_of_the_step():
    sigma = 0.1
    cfg = DeviceConfig(levels=LEVELS, response="linear", c2c_sigma=0.0, d2d_step_sigma=sigma)
    cells = fresh_cells(M // 2, cfg, gen(6), CPU)  # 2 * (M / 2) = M cells
    assert len(cells) == M
    assert torch.all(cells.u == 0)
    model = PulseModel(cfg)
    fire(model, cells, 1, True, gen())
    rel = cells.u / D  # step relative to the nominal step, per cell
    assert_mean(rel, 1.0, sigma, "relative step")
    assert_std(rel, sigma, "relative step")


def test_d2d_bound_sigma_spreads_each_cells_bounds():
    sigma = 0.02
    cfg = DeviceConfig(d2d_bound_sigma=sigma)
    cells = fresh_cells(M // 2, cfg, gen(7), CPU)
    assert_mean(cells.u_min, 0.0, sigma, "u_min")
    assert_std(cells.u_min, sigma, "u_min")
    assert_mean(cells.u_max, 1.0, sigma, "u_max")
    assert_std(cells.u_max, sigma, "u_max")
    assert torch.equal(cells.u, cells.u_min)  # fresh cells sit at their own Gmin


# --------------------------------------------------------------------------- stuck cells


def test_stuck_fractions_are_realised_and_stuck_cells_never_move():
    f_min, f_max = 0.1, 0.05
    # noise-free so that every healthy cell provably moves (with noise a few would be clamped
    # at a bound and look unmoved)
    cfg = DeviceConfig(levels=LEVELS, c2c_sigma=0.0, d2d_bound_sigma=0.01,
                       stuck_at_min_fraction=f_min, stuck_at_max_fraction=f_max)
    cells = fresh_cells(M // 2, cfg, gen(8), CPU)
    at_max = cells.stuck & (cells.u == cells.u_max)
    at_min = cells.stuck & (cells.u == cells.u_min)
    assert torch.equal(cells.stuck, at_min | at_max)
    for frac, mask in ((f_min, at_min), (f_max, at_max)):
        se = math.sqrt(frac * (1 - frac) / M)
        assert abs(float(mask.double().mean()) - frac) <= Z * se
    start = cells.u.clone()
    model = PulseModel(cfg)
    g = gen(9)
    fire(model, cells, 20, True, g)
    step_n_times(model, cells, 5, True, g)
    fire(model, cells, 7, False, g)
    step_n_times(model, cells, 3, False, g)
    assert torch.equal(cells.u[cells.stuck], start[cells.stuck])
    assert torch.all(cells.u[at_max] == cells.u_max[at_max])
    assert torch.all(cells.u[at_min] == cells.u_min[at_min])
    healthy = ~cells.stuck
    assert bool((cells.u[healthy] != start[healthy]).all())  # the others did move
    assert torch.all(cells.pulses == 35)  # stuck cells are still pulsed


# --------------------------------------------------------------------------- endurance and wear


def test_pulse_counters_count_exactly():
    model = PulseModel(DeviceConfig(levels=LEVELS, c2c_sigma=0.01))
    cells = cells_at(0.5, m=1000)
    g = gen(10)
    n = torch.randint(0, 9, (1000,), generator=g).float()
    up = torch.rand(1000, generator=g) < 0.5
    counts = model.apply(cells, n, up, g)
    assert torch.equal(cells.pulses, n.long())
    assert float(counts.set_pulses) == float(n[up].sum())
    assert float(counts.reset_pulses) == float(n[~up].sum())
    step_n_times(model, cells, 3, True, g)
    assert torch.equal(cells.pulses, n.long() + 3)


def test_pulse_conductance_is_charged_at_the_mean_of_start_and_end():
    cfg = DeviceConfig(levels=LEVELS, response="linear", c2c_sigma=0.0)
    model = PulseModel(cfg)
    cells = cells_at(0.0, m=2)
    counts = model.apply(cells, torch.tensor([10.0, 0.0]), torch.tensor([True, False]), gen())
    # 10 SET pulses from u = 0 to u = 10 d: each charged at G = Gmin + range * (0 + 10 d) / 2
    g_mid = cfg.g_min_siemens + cfg.range_siemens * 5 * D
    assert float(counts.set_siemens) == pytest.approx(10 * g_mid, rel=1e-6)
    assert float(counts.reset_siemens) == 0


@pytest.mark.parametrize("bursts", [[1] * 13, [15], [4, 8, 3], [10, 1]])
def test_endurance_cell_sticks_after_its_endurance_pulses(bursts):
    # endurance 10: the first 10 pulses move a noise-free linear cell by d each, wherever the
    # burst boundaries fall; the cell is then stuck and later pulses do not move it, but are
    # still counted.
    cfg = DeviceConfig(levels=LEVELS, response="linear", c2c_sigma=0.0, endurance_pulses=10)
    model = PulseModel(cfg)
    cells = cells_at(0.0, m=1)
    fired = 0
    for b in bursts:
        fire(model, cells, b, True, gen())
        fired += b
        assert int(cells.pulses[0]) == fired
        assert bool(cells.stuck[0]) == (fired >= 10)
        assert float(cells.u[0]) == pytest.approx(min(fired, 10) * D, rel=1e-5)


def test_endurance_through_step_once_and_wear():
    cfg = DeviceConfig(levels=LEVELS, response="linear", c2c_sigma=0.0, endurance_pulses=10)
    model = PulseModel(cfg)
    cells = cells_at(0.0, m=1)
    for i in range(1, 14):
        step_n_times(model, cells, 1, True, gen())
        assert int(cells.pulses[0]) == i
        assert bool(cells.stuck[0]) == (i >= 10)
        assert float(cells.u[0]) == pytest.approx(min(i, 10) * D, rel=1e-5)


# --------------------------------------------------------------------------- nominal pulses


@pytest.mark.parametrize("response,nu", [("linear", (0.0, 0.0)), ("soft-bounds", (0.0, 0.0)),
                                         ("nonlinear", (0.04, -0.63)), ("nonlinear", (3.0, -3.0)),
                                         ("nonlinear", (-2.0, 2.0))])
def test_nominal_pulses_land_within_half_a_step(response, nu):
    # For a noise-free nominal cell, firing the returned count lands within half a pulse step
    # of the target: the step is the local one (the larger of the last pulse's move and the
    # next pulse's move, which bounds the slope of the curve between them).
    cfg = DeviceConfig(levels=LEVELS, response=response, c2c_sigma=0.0, nonlinearity_up=nu[0],
                       nonlinearity_down=nu[1], down_up_ratio=1.5)
    model = PulseModel(cfg)
    g = gen(11)
    m = 2000
    u0 = 0.05 + 0.9 * torch.rand(m, generator=g)
    target = 0.05 + 0.9 * torch.rand(m, generator=g)
    n, up = model.nominal_pulses(u0, target, limit=1e6)
    assert torch.equal(up, target >= u0)
    assert torch.equal(n, n.round()) and bool((n >= 0).all())

    def after(k):
        cells = cells_at(0.0, m=m)
        cells.u = u0.clone()
        model.apply(cells, k, up, gen())
        return cells.u.double()

    u_n, u_before, u_next = after(n), after((n - 1).clamp_min(0)), after(n + 1)
    half_step = 0.5 * torch.maximum((u_n - u_before).abs(), (u_next - u_n).abs())
    err = (u_n - target.double()).abs()
    assert bool((err <= half_step + 1e-6).all()), float((err - half_step).max())
    assert float(half_step.max()) < 2 * 1.5 * D  # the bound is a real pulse step, not vacuous


def test_nominal_pulses_respects_limit_and_no_move():
    model = PulseModel(DeviceConfig(levels=LEVELS, response="linear", c2c_sigma=0.0))
    u = torch.tensor([0.0, 0.5, 0.5])
    target = torch.tensor([1.0, 0.5, 0.0])
    n, up = model.nominal_pulses(u, target, limit=50)
    assert n.tolist() == [50.0, 0.0, 50.0]  # 127 and 63.5 pulses capped at 50; no move: 0
    assert up.tolist() == [True, True, False]


# --------------------------------------------------------------------------- read


def test_read_noise_has_the_configured_sigma_and_leaves_cells_alone():
    sigma = 0.01
    model = PulseModel(DeviceConfig(read_noise_sigma=sigma))
    u = torch.full((M,), 0.5)
    r = model.read(u, gen(12))
    assert torch.all(u == 0.5)
    assert_mean(r - 0.5, 0.0, sigma, "read error")
    assert_std(r - 0.5, sigma, "read error")
    quiet = PulseModel(DeviceConfig(read_noise_sigma=0.0))
    assert torch.equal(quiet.read(u, gen()), u)
