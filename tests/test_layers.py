"""Tests for rlime.hw.layers, rlime.hw.array and rlime.hw.optim: the ideal-preset bridge to float
PyTorch (forward, input gradient, SGD update), one array interface for linear and conv weights,
weights that are only what the conductances say, the residual accumulator of plan_moves(),
training on the default preset, and state_dict round trips."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rlime.hw.array import CrossbarArray, program_arrays
from rlime.hw.chip import Chip
from rlime.hw.config import HardwareConfig, preset
from rlime.hw.crossbar import ConvTiling, LinearTiling
from rlime.hw.device import PULSE_COUNTER
from rlime.hw.layers import (CodeInput, CrossbarLayer, RRAMConv2d, RRAMLinear, crossbar_layers,
                             to_rram)
from rlime.hw.optim import TunedOptimizer

RTOL, ATOL = 1e-5, 1e-6


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 3))


def cnn() -> nn.Module:
    # 2x8x8 -> 4x8x8 -> 4x3x3 -> 36 -> 3
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2),
                         nn.Flatten(), nn.Linear(36, 3))


NETS = {"mlp": (mlp, (6, 8)), "cnn": (cnn, (5, 2, 8, 8))}

# 16 x 16 tiles so that every layer above spans several tiles: Linear(32, 32) is 2 x 2 tiles,
# Linear(36, 3) 3 row tiles, Conv2d(4, 4, 3) 4 channel-aligned row tiles (one 3x3 channel per
# tile: floor(16 / 9) = 1).
SMALL_TILES = {"tile.rows": 16, "tile.cols": 16}


def ideal(tiled_path: bool) -> HardwareConfig:
    """The ideal preset on 16 x 16 tiles. With `tiled_path` the converters quantise inputs to 32
    bits (float32-exact) so the periphery is not bypassed: the MVMs run tile by tile with partial
    sums added, instead of as one float matmul."""
    overrides = dict(SMALL_TILES)
    if tiled_path:
        overrides.update({"forward.input_bits": 32, "backward.input_bits": 32})
    return preset("ideal").with_overrides(overrides)


# --------------------------------------------------------------------------- ideal == float


# The chip on every device there is: the CPU (compiled loops) and, where torch sees one, a CUDA
# GPU (tensor ops throughout; `experiments/gpu_check.sh` runs these there).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tiled_path", [False, True], ids=["exact-periphery", "tiled-path"])
@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_ideal_preset_reproduces_float_pytorch(net, tiled_path, device):
    make, shape = NETS[net]
    torch.manual_seed(0)
    float_net = make().to(device)
    chip = Chip(ideal(tiled_path), device=device, seed=0)
    if tiled_path:
        assert not chip.forward_periphery.exact and not chip.backward_periphery.exact
    rram_net = to_rram(copy.deepcopy(float_net), chip)
    layers = crossbar_layers(rram_net)
    assert len(layers) == 3
    assert sum(layer.array.tiling.row_tiles > 1 for layer in layers) >= 2
    if net == "mlp":
        assert layers[1].array.tiling.row_tiles == 2 and layers[1].array.tiling.col_tiles == 2

    float_opt = torch.optim.SGD(float_net.parameters(), lr=0.05)
    rram_opt = TunedOptimizer(torch.optim.SGD(rram_net.parameters(), lr=0.05), rram_net, chip)
    params_f = dict(float_net.named_parameters())
    params_r = dict(rram_net.named_parameters())
    assert params_f.keys() == params_r.keys()
    initial = {name: p.detach().clone() for name, p in params_f.items()}
    for name in params_f:  # programmed initial weights equal the float ones
        torch.testing.assert_close(params_r[name], params_f[name], rtol=RTOL, atol=ATOL)

    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(*shape, generator=gen).to(device)
        target = torch.randn(shape[0], 3, generator=gen).to(device)
        x_f, x_r = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_f, out_r = float_net(x_f), rram_net(x_r)
        torch.testing.assert_close(out_r, out_f, rtol=RTOL, atol=ATOL)
        float_opt.zero_grad()
        rram_opt.zero_grad()
        F.mse_loss(out_f, target).backward()
        F.mse_loss(out_r, target).backward()
        torch.testing.assert_close(x_r.grad, x_f.grad, rtol=RTOL, atol=ATOL)
        for name in params_f:
            torch.testing.assert_close(params_r[name].grad, params_f[name].grad, rtol=RTOL,
                                       atol=ATOL)
        float_opt.step()
        rram_opt.step()
        for name in params_f:
            torch.testing.assert_close(params_r[name], params_f[name], rtol=RTOL, atol=ATOL)
    # the update really went through tuning: pulses were fired in phase "update"
    assert chip.ledger.snapshot().count("set_pulses", ("update",)) + \
        chip.ledger.snapshot().count("reset_pulses", ("update",)) > 0
    # and the weights really moved (the comparison above is not of two unchanged nets)
    for name, p0 in initial.items():
        assert float((params_r[name].detach() - p0).abs().max()) > 1e-4, name


# --------------------------------------------------------------------------- one array interface

# Linear(20 -> 18) and Conv2d(3 -> 18, 3x3, stride 2, padding 1) on 7 x 7 inputs, 16 x 16 tiles:
# (in lines, out lines, row tiles, column tiles, input vectors per sample). The conv's rows are
# C k k = 27, one 3x3 channel per row tile (floor(16 / 9) = 1); its output is 4 x 4 positions.
ARRAYS = {"linear": (20, 18, 2, 2, 1), "conv": (27, 18, 3, 2, 16)}


def _array_case(kind: str, chip: Chip):
    """(array, float weight, input, float forward, float transposed, float weight gradient)."""
    rows, cols = SMALL_TILES["tile.rows"], SMALL_TILES["tile.cols"]
    gen = torch.Generator().manual_seed(8)
    if kind == "linear":
        w, x = torch.randn(18, 20, generator=gen), torch.randn(4, 20, generator=gen)
        tiling = LinearTiling(20, 18, rows, cols, chip.device)
        ref = (F.linear, lambda g, w: g @ w, lambda x, g: g.t() @ x)
    else:
        w, x = torch.randn(18, 3, 3, 3, generator=gen), torch.randn(4, 3, 7, 7, generator=gen)
        tiling = ConvTiling(3, 18, (3, 3), (2, 2), (1, 1), rows, cols, chip.device)
        ref = (lambda x, w: F.conv2d(x, w, None, 2, 1),
               lambda g, w: torch.nn.grad.conv2d_input(x.shape, w, g, 2, 1),
               lambda x, g: torch.nn.grad.conv2d_weight(x, w.shape, g, 2, 1))
    return (CrossbarArray(w, tiling, chip), w, x) + ref


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_linear_and_conv_arrays_share_one_interface(kind):
    # The same calls on both arrays, on the ideal chip's tiled path (32-bit converters) with
    # 65 levels: the weights are programmed to their nearest levels, the forward MVM, transposed
    # MVM and weight gradient match float torch on them, and every step charges the
    # hand-counted operations (float32 sums of up to 27 products of O(1): atol 1e-5).
    chip = Chip(ideal(tiled_path=True).with_overrides({"device.levels": 65}), seed=0)
    array, w, x, forward, transposed, weight_grad = _array_case(kind, chip)
    in_lines, out_lines, row_tiles, col_tiles, vectors = ARRAYS[kind]
    assert (array.tiling.row_tiles, array.tiling.col_tiles) == (row_tiles, col_tiles)
    ledger, batch, cycles = chip.ledger, x.shape[0], chip.cfg.forward.cycles()

    def charged(fn) -> tuple:
        before = ledger.snapshot()
        out = fn()
        return out, ledger.snapshot() - before

    # programming: fresh cells sit at level 0, so open-loop fires |k| SET pulses per weight
    current = array.realised().reshape(-1).clone()
    with ledger.in_phase("program"):
        _, bill = charged(lambda: program_arrays(chip, [(array, w.reshape(-1), current)]))
    level = array.weight_scale / array.max_level
    assert torch.equal(current.view(w.shape), array.realised())
    torch.testing.assert_close(array.realised(), torch.round(w / level) * level, rtol=0,
                               atol=1e-6)
    assert bill.get("program", "set_pulses") == int(torch.round(w / level).abs().sum())
    assert bill.get("program", "reset_pulses") == 0

    weight = array.realised()
    (y, codes, unit), fwd = charged(lambda: array.mvm(x, weight))
    torch.testing.assert_close(y, forward(x, weight), rtol=RTOL, atol=1e-5)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(9))
    g_codes, g_unit = array.error_codes(g)
    dx, bwd = charged(lambda: array.transposed_mvm(g_codes, g_unit, weight, x.shape))
    assert dx.shape == x.shape
    torch.testing.assert_close(dx, transposed(g, weight), rtol=RTOL, atol=1e-5)
    dw, grad = charged(lambda: array.weight_grad(codes * unit, g_codes * g_unit))
    torch.testing.assert_close(dw, weight_grad(x, g), rtol=RTOL, atol=1e-5)

    n = batch * vectors  # input vectors through the arrays
    for bill, phase, lines, sensed, tiles_in, tiles_out in (
            (fwd, "forward", in_lines, out_lines, row_tiles, col_tiles),
            (bwd, "backward", out_lines, in_lines, col_tiles, row_tiles)):
        expected = {"mvm_macs": in_lines * out_lines * n,
                    "dac_conversions": lines * tiles_out * cycles * n,
                    "adc_conversions": sensed * tiles_in * cycles * n,
                    "shift_adds": sensed * tiles_in * cycles * n,
                    "cell_reads": 2 * in_lines * out_lines * cycles * n,
                    "partial_sum_adds": (tiles_in - 1) * sensed * n,
                    "buffer_bits": (in_lines + out_lines) * 32 * n}
        assert {k: bill.get(phase, k) for k in expected} == expected, phase
        assert bill.count("gradient_macs") == 0
    assert grad.get("backward", "gradient_macs") == n * w.numel()
    assert grad.count("cell_reads") == 0


def test_old_flat_state_dict_keys_still_load():
    # checkpoints written before the cells moved into `array` held them under the layer itself
    chip = Chip(preset("default"), seed=0)
    source, fresh = to_rram(mlp(), chip), to_rram(mlp(), chip)
    flat = {k.replace("array.", ""): v for k, v in source.state_dict().items()}
    assert "0.cell_u" in flat
    fresh.load_state_dict(flat)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key


def test_int64_pulse_counters_of_older_checkpoints_load_as_int32():
    chip = Chip(preset("default"), seed=0)
    source, fresh = to_rram(mlp(), chip), to_rram(mlp(), chip)
    state = source.state_dict()
    state["0.array.cell_pulses"] = state["0.array.cell_pulses"].to(torch.int64) + 7
    fresh.load_state_dict(state)
    assert fresh[0].cell_pulses.dtype == PULSE_COUNTER
    assert torch.equal(fresh[0].cell_pulses, source[0].cell_pulses + 7)


# --------------------------------------------------------------------------- no hidden float copy


def _default_with_exact_periphery() -> HardwareConfig:
    # default devices and tuning, unquantised converters: the forward output is then exactly
    # F.linear / F.conv2d of whatever weights the layer uses, so we can see which ones.
    return preset("default").with_overrides({
        "forward.input_bits": None, "forward.adc_bits": None, "forward.adc_bound": "inf",
        "backward.input_bits": None, "backward.adc_bits": None, "backward.adc_bound": "inf"})


def _from_cells(layer: CrossbarLayer) -> torch.Tensor:
    n = layer.cell_u.numel() // 2
    return (layer.weight_scale * (layer.cell_u[:n] - layer.cell_u[n:])).view(layer.weight.shape)


@pytest.mark.parametrize("config", ["default", "default-exact-periphery"])
@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_weights_are_only_what_the_conductances_say(net, config):
    make, shape = NETS[net]
    torch.manual_seed(2)
    cfg = preset("default") if config == "default" else _default_with_exact_periphery()
    chip = Chip(cfg, seed=2)
    rram_net = to_rram(make(), chip)
    opt = TunedOptimizer(torch.optim.SGD(rram_net.parameters(), lr=0.1), rram_net, chip)
    x = torch.randn(*shape)
    for layer in crossbar_layers(rram_net):
        assert torch.equal(layer.weight, _from_cells(layer))
    before = [layer.weight.detach().clone() for layer in crossbar_layers(rram_net)]
    for _ in range(2):
        opt.zero_grad()
        rram_net(x).square().mean().backward()
        opt.step()
        for layer in crossbar_layers(rram_net):
            assert torch.equal(layer.weight, _from_cells(layer))  # exactly, no float copy
    changed = [not torch.equal(b, layer.weight) for b, layer in
               zip(before, crossbar_layers(rram_net))]
    assert any(changed)
    # a layer whose change has not reached its tuning trigger yet holds it in the residual
    assert all(c or bool(layer.array.residual.abs().sum() > 0)
               for c, layer in zip(changed, crossbar_layers(rram_net)))
    if config == "default-exact-periphery":
        # the next forward pass of every layer uses the realised weights (float rounding aside:
        # a hidden float copy would differ by up to half a level plus the tuning error, ~1e-2)
        for layer in crossbar_layers(rram_net):
            w = _from_cells(layer)
            with torch.no_grad():
                if isinstance(layer, RRAMLinear):
                    inp = torch.randn(4, layer.in_features)
                    expected = F.linear(inp, w, layer.bias)
                else:
                    inp = torch.randn(2, layer.in_channels, 8, 8)
                    expected = F.conv2d(inp, w, layer.bias, layer.stride, layer.padding)
                torch.testing.assert_close(layer(inp), expected, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- MVM read noise

READ_SIGMA = 0.01
SAMPLES = 3000
Z_READ = 5.0


@pytest.mark.parametrize("model", ["additive", "proportional"])
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_mvm_read_noise_has_the_spread_of_its_definition(kind, model):
    # The ideal preset plus read noise on 16 x 16 tiles: every cell read adds iid noise to each
    # cell of the differential pair -- sigma x range ("additive") or sigma x G ("proportional",
    # NeuroSim's read) -- so the output, summed over tiles, has variance
    # sigma^2 scale^2 sum_i x_i^2 V_i with V_i = 2 (additive) or (g0 + u+_i)^2 + (g0 + u-_i)^2,
    # g0 = g_min / range (the whole im2col patch for a conv). The transposed MVM alike with the
    # error. One input repeated SAMPLES times gives independent draws; every element's variance
    # is checked to 5 standard errors (sqrt(2 / (n - 1))).
    torch.manual_seed(0)
    cfg = ideal(False).with_overrides({"device.read_noise_sigma": READ_SIGMA,
                                       "device.read_noise_model": model})
    if kind == "linear":
        float_layer, x1, g1 = nn.Linear(40, 20), torch.randn(1, 40), torch.randn(1, 20)
    else:
        float_layer = nn.Conv2d(3, 4, 3, padding=1)
        x1, g1 = torch.randn(1, 3, 6, 6), torch.randn(1, 4, 6, 6)
    layer = to_rram(nn.Sequential(float_layer), Chip(cfg))[0]
    x = x1.expand(SAMPLES, *x1.shape[1:]).clone().requires_grad_(True)
    y = layer(x)
    y.backward(g1.expand_as(y))
    variance = READ_SIGMA**2 * layer.array._full_scale() ** 2
    if model == "additive":
        v = 2 * torch.ones_like(float_layer.weight)
    else:
        dev = cfg.device
        u = layer.array.cell_u.double() + dev.g_min_siemens / dev.range_siemens
        n = u.numel() // 2
        v = (u[:n] ** 2 + u[n:] ** 2).float().view(float_layer.weight.shape)
    if kind == "linear":
        expected_y = variance * x1.pow(2) @ v.t()
        expected_x = variance * g1.pow(2) @ v
    else:
        expected_y = variance * F.conv2d(x1.pow(2), v, padding=1)
        expected_x = variance * torch.nn.grad.conv2d_input(x1.shape, v, g1.pow(2), padding=1)
    bound = Z_READ * (2 / (SAMPLES - 1)) ** 0.5
    for observed, expected in ((y.detach().var(0), expected_y[0]), (x.grad.var(0), expected_x[0])):
        ratio = observed / expected
        assert float((ratio - 1).abs().max()) < bound


@pytest.mark.parametrize("dac_bits", [1, 2, 8])
def test_bit_serial_read_noise_is_drawn_per_cycle(dac_bits):
    # 8-bit inputs driven dac_bits at a time (8, 4 or 1 cycles), additive read noise, no ADC:
    # each cycle's read draws fresh noise that the shift-and-add scales by the digit's place, so
    # an output's variance is 2 sigma^2 scale^2 unit^2 sum_i sum_c (d_ic 2^(k c))^2, unit the
    # DAC's LSB -- for 1-bit cycles about half of the 2 sigma^2 scale^2 ||x||^2 of one draw
    # per partial sum. Checked as in the test above (5 standard errors per element).
    torch.manual_seed(1)
    cfg = ideal(False).with_overrides({"device.read_noise_sigma": READ_SIGMA,
                                       "forward.input_bits": 8, "forward.dac_bits": dac_bits})
    float_layer, x1 = nn.Linear(40, 20), torch.randn(1, 40)
    layer = to_rram(nn.Sequential(float_layer), Chip(cfg))[0]
    with torch.no_grad():
        y = layer(x1.expand(SAMPLES, 40).clone())
    unit = float(x1.abs().max()) / 255
    codes = (x1 / unit).round().abs().long()
    base = 2**dac_bits
    weight = sum(((codes // base**c) % base * base**c).double() ** 2 for c in range(-(-8 // dac_bits)))
    expected = 2 * READ_SIGMA**2 * layer.array._full_scale() ** 2 * unit**2 * float(weight.sum())
    ratio = y.var(0).double() / expected
    assert float((ratio - 1).abs().max()) < Z_READ * (2 / (SAMPLES - 1)) ** 0.5
    if dac_bits == 8:  # one cycle: the whole code at once
        assert float(weight.sum()) == float((codes.double() ** 2).sum())


# --------------------------------------------------------------------------- residual / plan


def _exact_tuning(residual: bool) -> HardwareConfig:
    # noise-free linear cells and a half-level verify tolerance: every planned level is reached
    # exactly, so what plan_moves() asks for is what the weights show
    return preset("default").with_overrides({
        "device.c2c_sigma": 0.0, "device.response": "linear", "tuning.tolerance_levels": 0.5,
        "tuning.residual": residual})


def _layer_at_levels(cfg: HardwareConfig, levels: list[int]) -> tuple[RRAMLinear, Chip, float]:
    """An RRAMLinear(len(levels) -> 1, no bias) whose weights sit exactly on `levels`, with a
    zero residual. weight_scale = headroom (2) x max|W0| = 2 with W0 containing 1.0."""
    chip = Chip(cfg, seed=0)
    lin = nn.Linear(len(levels) + 1, 1, bias=False)
    scale = cfg.tile.weight_headroom * 1.0
    level = scale / (cfg.device.levels - 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[*(k * level for k in levels), 1.0]]))
    layer = to_rram(lin, chip)
    assert float(layer.weight_scale) == pytest.approx(scale)
    if layer.array.residual.numel():
        layer.array.residual.zero_()
    got = torch.round(layer.weight.detach()[0, :-1] / level)
    assert got.tolist() == [float(k) for k in levels]
    return layer, chip, level


def _nudge(layer: RRAMLinear, chip: Chip, delta: torch.Tensor) -> None:
    """One TunedOptimizer step that asks for weight += delta (SGD, lr 1, gradient -delta)."""
    opt = TunedOptimizer(torch.optim.SGD(layer.parameters(), lr=1.0), layer, chip)
    layer.weight.grad = -delta.view_as(layer.weight).clone()
    opt.step()


def test_residual_keeps_sub_level_changes():
    layer, chip, level = _layer_at_levels(_exact_tuning(residual=True), [5, -3, 0])
    # verified tuning with a half-level tolerance: a weight is tuned once its pending change
    # reaches tolerance + half a level = 1 level
    assert layer.array.trigger_levels == 1.0
    w0 = layer.weight.detach().clone()
    delta = torch.tensor([0.3, -0.3, 0.3, 0.0]) * level
    writes = chip.ledger.snapshot().writes
    for pending in (0.3, 0.6, 0.9):
        _nudge(layer, chip, delta)
        # below the trigger: nothing is programmed, the change waits in the residual
        assert chip.ledger.snapshot().writes == writes
        assert torch.equal(layer.weight, w0)
        torch.testing.assert_close(layer.array.residual / level,
                                   torch.tensor([pending, -pending, pending, 0.0]),
                                   rtol=0, atol=1e-4)
    _nudge(layer, chip, delta)
    # 1.2 levels accumulated: each weight moves one level towards it, the residual keeps the
    # rest (1.2 - 1 = 0.2 level)
    moved = torch.round((layer.weight.detach() - w0) / level)[0]
    assert moved.tolist() == [1.0, -1.0, 1.0, 0.0]
    torch.testing.assert_close(layer.array.residual / level, torch.tensor([0.2, -0.2, 0.2, 0.0]),
                               rtol=0, atol=1e-4)
    assert chip.ledger.snapshot().writes > writes


def test_residual_keeps_what_tuning_left_undone():
    # Write-verify (its own tolerance, 2 levels, residual on) on noise-free linear cells:
    # a cell two levels from its target already verifies, so small moves are often not made;
    # the residual must then keep them (settle(): residual = wanted - what the last verify read
    # says), so realised weights + residual follow the float trajectory exactly, and the
    # residual stays within tolerance + half a level.
    cfg = preset("default").with_overrides({"device.c2c_sigma": 0.0,
                                            "device.response": "linear",
                                            "tuning.scheme": "write-verify"})
    assert cfg.tuning.tolerance == 2.0 and cfg.tuning.residual
    torch.manual_seed(5)
    lin = nn.Linear(16, 8, bias=False)
    chip = Chip(cfg, seed=5)
    layer = to_rram(lin, chip)
    level = float(layer.weight_scale) / layer.array.max_level
    # the programmed initial weights are the start (to_rram clears the residual: the initial
    # weights are random, what was programmed is the initialisation)
    assert float(layer.array.residual.abs().max()) == 0.0
    float_w = layer.weight.detach().clone().reshape(-1)
    gen = torch.Generator().manual_seed(6)
    for _ in range(8):
        # mostly sub-level steps, some of a few levels
        delta = torch.randn(float_w.shape, generator=gen) * level * 0.4
        delta[::7] *= 8
        _nudge(layer, chip, delta)
        float_w += delta
        tracked = layer.weight.detach().reshape(-1) + layer.array.residual
        torch.testing.assert_close(tracked, float_w, rtol=0, atol=1e-3 * level)
        assert float(layer.array.residual.abs().max()) <= (cfg.tuning.tolerance + 0.5) * level
    assert not torch.equal(layer.weight.detach().reshape(-1), lin.weight.detach().reshape(-1))


def test_without_residual_sub_level_changes_are_lost():
    layer, chip, level = _layer_at_levels(_exact_tuning(residual=False), [5, -3, 0])
    assert layer.array.residual.numel() == 0
    w0 = layer.weight.detach().clone()
    writes = chip.ledger.snapshot().writes
    for _ in range(3):
        _nudge(layer, chip, torch.tensor([0.3, -0.3, 0.3, 0.0]) * level)
    assert torch.equal(layer.weight, w0)
    assert chip.ledger.snapshot().writes == writes


def test_plan_targets_canonical_pairs():
    # weights at levels +3, -2, 0: cells (G+, G-) at (3, 0), (0, 2), (0, 0). Moving them to
    # -2, +1 and +4 levels targets the canonical pairs (0, 2), (1, 0), (4, 0); every cell that
    # changes level is tuned, the G- cell of weight 2 (already at level 0) is left alone: the
    # plan holds only the tuned cells, G+ cells first.
    layer, _, level = _layer_at_levels(_exact_tuning(residual=False), [3, -2, 0])
    n = layer.weight.numel()
    current = layer.weight.detach().reshape(-1).clone()
    desired = current.clone()
    desired[:3] += torch.tensor([-5.0, 3.0, 4.0]) * level
    plan = layer.array.plan_moves(desired, current)
    assert sorted(plan.sel.tolist()) == [0, 1, 2]
    levels = layer.array.max_level
    targets = [(int(i), round(float(t) * levels)) for i, t in zip(plan.index, plan.target)]
    assert targets == [(0, 0), (1, 1), (2, 4), (n + 0, 2), (n + 1, 0)]


def test_to_rram_replaces_linear_and_conv_and_keeps_the_rest():
    chip = Chip(preset("ideal"))
    net = to_rram(cnn(), chip)
    kinds = [type(m) for m in net]
    assert kinds[0] is RRAMConv2d and kinds[2] is RRAMConv2d and kinds[4] is RRAMLinear
    assert kinds[3] is nn.Flatten


# --------------------------------------------------------------------------- default preset


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_training_on_the_default_preset(net, device):
    make, shape = NETS[net]
    torch.manual_seed(0)
    chip = Chip(preset("default"), device=device, seed=0)
    rram_net = to_rram(make(), chip)
    opt = TunedOptimizer(torch.optim.SGD(rram_net.parameters(), lr=0.05), rram_net, chip)
    x = torch.randn(16, *shape[1:]).to(device)
    y = torch.randn(16, 3).to(device)
    losses = []
    before = chip.ledger.snapshot()
    for _ in range(25):
        opt.zero_grad()
        out = rram_net(x)
        assert bool(torch.isfinite(out).all())
        loss = F.mse_loss(out, y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    for layer in crossbar_layers(rram_net):
        assert bool(torch.isfinite(layer.weight).all())
    diff = chip.ledger.snapshot() - before
    assert diff.count("set_pulses", ("update",)) + diff.count("reset_pulses", ("update",)) > 0
    assert diff.count("cell_reads", ("forward",)) > 0
    assert diff.count("cell_reads", ("backward",)) > 0
    # it learns despite 3.7 % cycle-to-cycle noise and 8-bit converters (checked on 6 seeds
    # per net while writing this test: the loss fell on every one)
    assert sum(losses[-3:]) / 3 < losses[0]


# --------------------------------------------------------------------------- state_dict


@pytest.mark.parametrize("preset_name", ["ideal", "default"])
@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_state_dict_round_trip_into_a_fresh_rram_model(net, preset_name):
    make, shape = NETS[net]
    torch.manual_seed(3)
    chip = Chip(preset(preset_name), seed=3)
    source = to_rram(make(), chip)
    opt = TunedOptimizer(torch.optim.SGD(source.parameters(), lr=0.05), source, chip)
    x = torch.randn(*shape)
    opt.zero_grad()
    source(x).square().mean().backward()
    opt.step()

    torch.manual_seed(4)  # a different float init, on another chip
    fresh = to_rram(make(), Chip(preset(preset_name), seed=4))
    with torch.no_grad():
        assert not torch.equal(fresh(x), source(x))
    fresh.load_state_dict(source.state_dict())
    state = source.state_dict()
    assert any(k.endswith("cell_u") for k in state)
    assert any(k.endswith("cell_pulses") for k in state)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key]), key
    with torch.no_grad():
        assert torch.equal(fresh(x), source(x))


# --------------------------------------------------------------------------- 8-bit input codes


def code_cnn() -> nn.Module:
    return nn.Sequential(CodeInput(), nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 3))


def _frames(full_scale: bool) -> torch.Tensor:
    frames = torch.randint(0, 200, (5, 2, 8, 8), generator=torch.Generator().manual_seed(3),
                           dtype=torch.uint8)
    if full_scale:
        frames[:, 0, 0, 0] = 255  # every frame reaches code 255
    return frames


@pytest.mark.parametrize("tiled_path", [False, True], ids=["exact-periphery", "tiled-path"])
def test_uint8_codes_on_the_ideal_chip_match_float(tiled_path):
    torch.manual_seed(0)
    float_net = code_cnn()
    rram_net = to_rram(float_net, Chip(ideal(tiled_path), seed=0))
    frames = _frames(full_scale=False)
    torch.testing.assert_close(rram_net(frames), float_net(frames), rtol=RTOL, atol=ATOL)


def test_uint8_codes_drive_the_dacs_as_8_bit_codes():
    # Default periphery (8-bit DAC and ADC). A frame whose brightest code is 255 has the same
    # codes as its float values quantised to 8 bits of their abs-max, so the two inputs agree
    # exactly; with dimmer frames the float path re-quantises to each frame's own maximum.
    torch.manual_seed(0)
    float_net = code_cnn()
    chip = Chip(preset("default").with_overrides(SMALL_TILES), seed=0)
    rram_net = to_rram(float_net, chip)
    layers = crossbar_layers(rram_net)
    rram_net(_frames(True))  # calibrate the ADC ranges once
    for full_scale in (True, False):
        frames = _frames(full_scale)
        ranges = [layer.array.adc_range_forward.clone() for layer in layers]
        from_codes = rram_net(frames)
        for layer, r in zip(layers, ranges):  # the same ADC calibration for both inputs
            layer.array.adc_range_forward.copy_(r)
        from_values = rram_net[1:](frames.float() / 255)
        if full_scale:
            torch.testing.assert_close(from_codes, from_values, rtol=1e-6, atol=1e-6)
        else:
            assert not torch.allclose(from_codes, from_values, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(from_codes, from_values, rtol=0.05, atol=0.05)


def test_single_channel_convolution_runs_on_the_default_preset():
    """A one-channel input (a grey image: LeNet's first layer) has an ambiguous memory format,
    and torch's convolution hands its output back contiguous, not channels-last; the tiles'
    partial sums must still come out contiguous for the ADC."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(6 * 8 * 8, 3))
    rram = to_rram(net, Chip(preset("default"), seed=0))
    x = torch.rand(5, 1, 8, 8, requires_grad=True)
    out = rram(x)
    out.sum().backward()
    assert out.shape == (5, 3) and x.grad.shape == x.shape
    assert torch.corrcoef(torch.stack([out.detach().flatten(), net(x).detach().flatten()]))[0, 1] > 0.9
