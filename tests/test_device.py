"""Tests for rlime.hw.device: the pulse response of RRAM cells, checked against its own definition.

device.py's definition: on a cell's own curve p = (u - u_min) / (u_max - u_min), one pulse moves
p by s * (k0 + k1 * p) plus cycle-to-cycle noise of sigma = c2c_sigma per pulse; with
d = 1 / (levels - 1): linear SET +d, RESET -d * down_up_ratio; soft-bounds SET d (1 - p),
RESET d p, noise sigma c2c_sigma x step / d (aihwkit SoftBoundsDevice, mult_noise); nonlinear
NeuroSim's G(x) = B (1 - exp(-x / a)) + Gmin, a = A / Pmax signed from the nonlinearity label,
x = P / N, N = levels - 1, SET walking x forwards, RESET the LTD curve backwards from x = 1.

Statistical checks use M = 20 000 cells and a seeded generator. Tolerances are 5 standard errors:
the standard error of a mean of M draws of std sigma is sigma / sqrt(M); of a sample standard
deviation it is sigma / sqrt(2 M) (Gaussian); of a fraction f it is sqrt(f (1 - f) / M).
"""

from __future__ import annotations

import math

import pytest
import torch

from rlime.hw.config import DeviceConfig
from rlime.hw.device import (MIN_SPAN, PULSE_COUNT_MAX, PULSE_COUNTER, CellSet, PulseModel,
                              fresh_cells, neurosim_param_a)

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
        sigma = c2c * abs(expected) / D  # multiplicative noise: c2c for a full nominal step
        assert_mean(step, expected, sigma, f"soft-bounds {'SET' if up else 'RESET'} from p={p0}")
        assert_std(step, sigma, "soft-bounds step")


@pytest.mark.parametrize("path", ["apply", "step_once"])
def test_soft_bounds_noise_shrinks_with_the_step_near_the_bound(path):
    # near Gmax the SET step is d (1 - p) = 0.01 d; so is its noise (x c2c / d): not c2c
    c2c, p0 = 0.037, 0.99
    model = PulseModel(DeviceConfig(levels=LEVELS, response="soft-bounds", c2c_sigma=c2c))
    cells = cells_at(p0, hi=2.0)  # bound far away: no clamping of the noise
    cells.u_max.fill_(1.0)
    cells.u = torch.full((M,), p0)
    (fire(model, cells, 1, True, gen(8)) if path == "apply"
     else step_n_times(model, cells, 1, True, gen(8)))
    step = (cells.u - p0).double()
    expected = D * (1 - p0)
    clean = step[cells.u < 1.0]  # the clamp at the bound cuts the upper tail only
    assert float((step > 0).double().mean()) > 0.5
    assert abs(float(clean.std()) - c2c * expected / D) < 0.3 * c2c * expected / D
    assert float(step.abs().max()) < 10 * c2c * expected / D  # never the additive 4.7 levels


def test_soft_bounds_burst_noise_is_the_geometric_sum():
    # n pulses from p0: pulse j has step s_j = d (1 - p0) (1 - d)^j and noise c2c s_j / d
    c2c, p0, n = 0.01, 0.3, 20
    model = PulseModel(DeviceConfig(levels=LEVELS, response="soft-bounds", c2c_sigma=c2c))
    cells = cells_at(p0)
    fire(model, cells, n, True, gen(9))
    steps = [D * (1 - p0) * (1 - D) ** j for j in range(n)]
    sigma = c2c / D * math.sqrt(sum(x * x for x in steps))
    mean = 1 - (1 - p0) * (1 - D) ** n
    assert_mean(cells.u, mean, sigma, "soft-bounds burst")
    assert_std(cells.u, sigma, "soft-bounds burst")


def test_soft_bounds_step_is_on_the_cells_own_curve():
    # bounds 0.1 .. 0.9 (span 0.8): at u = 0.5, p = 0.5; a SET pulse moves p by d (1 - p),
    # i.e. u by 0.8 * d * 0.5. Noise-free, so exact.
    model = PulseModel(DeviceConfig(levels=LEVELS, response="soft-bounds", c2c_sigma=0.0))
    cells = cells_at(0.5, m=3, lo=0.1, hi=0.9)
    fire(model, cells, 1, True, gen())
    torch.testing.assert_close(cells.u, torch.full((3,), 0.5 + 0.8 * D * 0.5))


# --------------------------------------------------------------------------- nonlinear


def neurosim_curve(label: float, pulses: torch.Tensor, n_levels: int) -> torch.Tensor:
    """NeuroSim's normalised curve g(x) = (1 - exp(-x / a)) / (1 - exp(-1 / a)) at x = P / N,
    N = levels - 1, a the signed normalised A of the label (formula.cpp NonlinearWeight)."""
    a = neurosim_param_a(label)
    x = pulses.double() / (n_levels - 1)
    return (1 - torch.exp(-x / a)) / (1 - math.exp(-1 / a))


@pytest.mark.parametrize("label,table_a", [(0.01, 126.268958), (0.04, 31.566827),
                                           (0.63, 1.997332), (1.51, 0.8195), (2.4, 0.4992),
                                           (4.51, 0.2266), (7.51, 0.0702), (9.0, 0.022810),
                                           (-0.63, -1.997332), (-4.88, -0.2003)])
def test_label_maps_to_neurosim_normalised_a(label, table_a):
    # entries of NeuroSim's getParamA table (MLP_NeuroSim_V3.0 formula.cpp / Nonlinearity-NormA)
    # at the precision the table gives them
    # (the label's defining relation is fitted to the table: 2e-6 relative, or its last digit)
    digits = len(f"{abs(table_a)}".split(".")[1])
    assert neurosim_param_a(label) == pytest.approx(table_a, rel=2e-6, abs=0.6 * 10 ** -digits)
    # and the label is the curve's scaled maximum deviation from linear, monotone in |label|
    assert abs(neurosim_param_a(label * 1.1)) < abs(neurosim_param_a(label))


@pytest.mark.parametrize("label", [2.0, -2.0, 0.04, -0.63, 5.0])
def test_nonlinear_set_follows_neurosim_curve(label):
    levels = 64
    n = levels - 1
    model = PulseModel(DeviceConfig(levels=levels, response="nonlinear", c2c_sigma=0.0,
                                    nonlinearity_up=label, nonlinearity_down=-1.0))
    pulses = torch.arange(0, n + 1)
    expected = neurosim_curve(label, pulses, levels)
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


@pytest.mark.parametrize("label_down", [-0.63, 3.0, -3.0, -4.88])
def test_nonlinear_reset_walks_the_ltd_curve_back_from_gmax(label_down):
    # RESET from Gmax after P pulses sits at g(1 - P / N) of the LTD curve (signed A)
    levels = 64
    n = levels - 1
    model = PulseModel(DeviceConfig(levels=levels, response="nonlinear", c2c_sigma=0.0,
                                    nonlinearity_up=1.0, nonlinearity_down=label_down))
    pulses = torch.arange(0, n + 1)
    cells = cells_at(1.0, m=n + 1)
    model.apply(cells, pulses.float(), torch.zeros(n + 1, dtype=torch.bool), gen())
    torch.testing.assert_close(cells.u.double(), neurosim_curve(label_down, n - pulses, levels),
                               rtol=0, atol=2e-6)
    assert abs(float(cells.u[-1])) < 2e-6


def _g(a: float, x: float) -> float:
    """NeuroSim's normalised curve g(x) (see neurosim_curve) as a float."""
    return math.expm1(-x / a) / math.expm1(-1 / a)


@pytest.mark.parametrize("label,up", [(0.63, True), (-0.63, False), (4.88, True),
                                      (-4.88, False), (2.4, True)])
@pytest.mark.parametrize("path", ["apply", "step_once"])
def test_nonlinear_steps_saturate_towards_the_bound_they_approach(label, up, path):
    # Mean step of one pulse 3 pulses inside Gmax and inside Gmin against the closed form
    # g(x +- d) - g(x); noise c2c = a sixth of the distance to the bound approached (no
    # clamping), so the mean of M steps has standard error c2c / sqrt(M). With the usual label
    # signs the step shrinks towards the bound the direction approaches (saturation).
    a = neurosim_param_a(label)
    kw = dict(nonlinearity_up=label) if up else dict(nonlinearity_down=label)
    sign = 1 if up else -1
    steps = {}
    for x0 in (3 * D, 1 - 3 * D):
        expected = _g(a, x0 + sign * D) - _g(a, x0)
        c2c = min(0.002, abs((1.0 if up else 0.0) - _g(a, x0 + sign * D)) / 6)
        model = PulseModel(DeviceConfig(levels=LEVELS, c2c_sigma=c2c, **kw))
        cells = cells_at(_g(a, x0))
        (fire(model, cells, 1, up, gen(3)) if path == "apply"
         else step_n_times(model, cells, 1, up, gen(3)))
        step = (cells.u - _g(a, x0)).double()
        assert_mean(step, expected, c2c, f"label {label} at x={x0:.3f}")
        steps[x0] = abs(expected)
    approached, left = (1 - 3 * D, 3 * D) if up else (3 * D, 1 - 3 * D)
    assert steps[approached] < steps[left]


def test_cited_ltd_label_steps_in_levels():
    # NL_LTD -0.63 (NeuroSim's table: A / Pmax = -1.997, nu = 0.50): a RESET pulse from Gmax
    # moves 1.27 levels, one into Gmin 0.77 levels (slopes nu e^nu / (e^nu - 1) and
    # nu / (e^nu - 1) of the LTD curve walked back from Pmax); noise-free, exact to the curve
    model = PulseModel(DeviceConfig(levels=LEVELS, c2c_sigma=0.0))
    a = neurosim_param_a(-0.63)
    top = cells_at(1.0, m=1)
    fire(model, top, 1, False, gen())
    bottom = cells_at(_g(a, D), m=1)
    fire(model, bottom, 1, False, gen())
    assert float(1 - top.u[0]) / D == pytest.approx(1.27, abs=0.01)
    assert float(_g(a, D) - bottom.u[0]) / D == pytest.approx(0.77, abs=0.01)


def test_nonlinear_default_reset_ratio_scales_steps():
    # down_up_ratio 2 doubles the RESET step at every point of the curve: from Gmax the first
    # RESET step is 2 x (1 - g(1 - 1 / N)) of the LTD curve.
    levels = 128
    model = PulseModel(DeviceConfig(levels=levels, c2c_sigma=0.0, down_up_ratio=2.0))
    cells = cells_at(1.0, m=1)
    fire(model, cells, 1, False, gen())
    first = 1 - float(neurosim_curve(-0.63, torch.tensor([levels - 2]), levels)[0])
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


@pytest.mark.parametrize("sigma", [0.02, 0.1, 0.5])
def test_d2d_bound_sigma_is_a_lognormal_spread_of_gmin_and_gmax(sigma):
    # G = G_nominal exp(sigma xi): log(G / G_nominal) has mean 0 and std sigma (standard errors
    # sigma / sqrt(M), sigma / sqrt(2M)); every conductance > 0 however large the spread
    cfg = DeviceConfig(d2d_bound_sigma=sigma)
    cells = fresh_cells(M // 2, cfg, gen(7), CPU)
    span = cfg.range_siemens
    g_min = cfg.g_min_siemens + span * cells.u_min.double()
    g_max = cfg.g_max_siemens + span * (cells.u_max.double() - 1)
    assert bool((g_min > 0).all())
    log_min = torch.log(g_min / cfg.g_min_siemens)
    assert_mean(log_min, 0.0, sigma, "log Gmin")
    assert_std(log_min, sigma, "log Gmin")
    spanned = cells.u_max - cells.u_min > MIN_SPAN + 1e-6  # not widened to the smallest span
    log_max = torch.log(g_max[spanned] / cfg.g_max_siemens)
    if sigma < 0.2:
        assert bool(spanned.all())
        assert_mean(log_max, 0.0, sigma, "log Gmax")
        assert_std(log_max, sigma, "log Gmax")
    assert torch.equal(cells.u, cells.u_min)  # fresh cells sit at their own Gmin
    assert torch.equal(cells.belief, cells.u_min)  # ... and the controller believes so


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


def test_wear_saturates_the_counter_and_keeps_its_type():
    model = PulseModel(DeviceConfig(levels=LEVELS))
    cells = fresh_cells(2, model.cfg, gen(), torch.device("cpu"))
    cells.pulses = torch.tensor([0, 5, PULSE_COUNT_MAX - 2, PULSE_COUNT_MAX], dtype=PULSE_COUNTER)
    model.wear(cells, torch.tensor([7, 2**31 - 1, 5, 1], dtype=PULSE_COUNTER))
    assert cells.pulses.dtype == PULSE_COUNTER
    assert cells.pulses.tolist() == [7, PULSE_COUNT_MAX, PULSE_COUNT_MAX, PULSE_COUNT_MAX]
    model.wear(cells, 1)
    assert cells.pulses.tolist() == [8, PULSE_COUNT_MAX, PULSE_COUNT_MAX, PULSE_COUNT_MAX]


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
    # (1 % of a step: the float32 count at a half-pulse tie may round either way)
    assert bool((err <= 1.01 * half_step + 1e-6).all()), float((err - half_step).max())
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


@pytest.mark.parametrize("u0", [0.0, 0.5, 1.0])
def test_proportional_read_noise_scales_with_the_conductance(u0):
    # NeuroSim's read, I = V G (1 + N(0, sigma)): at u the sigma is sigma x G / range =
    # sigma (g_min / range + u) -- 0.011 x sigma at Gmin, 1.11 x sigma at Gmax on the default
    # device (Gmax / Gmin = 10) -- checked to 5 standard errors.
    sigma = 0.01
    cfg = DeviceConfig(read_noise_sigma=sigma, read_noise_model="proportional")
    r = PulseModel(cfg).read(torch.full((M,), u0), gen(13))
    expected = sigma * (cfg.g_min_siemens + u0 * cfg.range_siemens) / cfg.range_siemens
    assert_mean(r - u0, 0.0, expected, "read error")
    assert_std(r - u0, expected, "read error")


def test_full_reset_lands_at_gmin_with_one_pulse_of_noise_and_wears():
    # One full RESET from mid-range: u = u_min + max(0, c2c N(0, 1)) (one pulse's noise, the
    # part below Gmin clipped): half of the cells exactly at u_min (binomial, 5 standard
    # errors), the mean offset c2c / sqrt(2 pi) (5 standard errors of max(0, X)); one pulse of
    # wear each, charged at the conductance the pulse starts from; stuck cells stay.
    cfg = DeviceConfig()
    model = PulseModel(cfg)
    cells = cells_at(0.5)
    cells.stuck[:100] = True
    counts = model.full_reset(cells, gen(14))
    healthy = cells.u[100:].double()
    at_min = (healthy == 0).double().mean()
    assert abs(float(at_min) - 0.5) < Z * 0.5 / math.sqrt(healthy.numel())
    c2c = cfg.c2c_sigma
    sd = c2c * math.sqrt(0.5 - 1 / (2 * math.pi))  # std of max(0, X), X ~ N(0, c2c^2)
    assert abs(float(healthy.mean()) - c2c / math.sqrt(2 * math.pi)) < Z * sd / math.sqrt(healthy.numel())
    assert torch.all(cells.u[:100] == 0.5) and torch.all(cells.pulses == 1)
    assert counts.reset_pulses == M
    g_half = cfg.g_min_siemens + 0.5 * cfg.range_siemens
    assert math.isclose(float(counts.reset_siemens), M * g_half, rel_tol=1e-5)
