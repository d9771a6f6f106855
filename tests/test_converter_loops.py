"""rlime.hw.converter_loops: the compiled (CPU) DAC and ADC passes compute what the periphery's
tensor ops compute -- the DAC codes, units and calibrated ranges bit for bit, the tile sums to
float32 rounding (the one place the two accumulate in a different order) -- and a whole RRAM
training step gives the same result either way."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn as nn

from rlime.hw.chip import Chip
from rlime.hw.config import ConverterConfig, preset
from rlime.hw.crossbar import Periphery
from rlime.hw.layers import to_rram
from rlime.hw.optim import TunedOptimizer


@pytest.fixture
def tensor_ops(monkeypatch):
    """Run the periphery in tensor ops inside the `with` block, compiled outside it."""
    class Switch:
        def __enter__(self):
            monkeypatch.setattr(Periphery, "compiled", False)

        def __exit__(self, *exc):
            monkeypatch.setattr(Periphery, "compiled", True)
    return Switch()


def _periphery(**changes) -> Periphery:
    return Periphery(dataclasses.replace(ConverterConfig(), **changes), 0.0, torch.Generator())


@pytest.mark.parametrize("input_bits", [8, 4, None])
@pytest.mark.parametrize("shape, fmt", [((64, 300), torch.preserve_format),
                                        ((8, 5, 9, 9), torch.channels_last),
                                        ((8, 5, 9, 9), torch.preserve_format)])
def test_dac_codes_and_units_equal_the_tensor_ops(tensor_ops, input_bits, shape, fmt):
    per = _periphery(input_bits=input_bits)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)) * 3
    x[0] = 0.0  # an all-zero sample: the abs-max floor keeps its unit positive
    x[1, :1] = 1e-30
    codes, unit = per.dac(x, fmt)
    with tensor_ops:
        want_codes, want_unit = per.dac(x, fmt)
    assert torch.equal(unit, want_unit) and unit.shape == want_unit.shape
    assert torch.equal(codes, want_codes)
    assert codes.is_contiguous(memory_format=torch.channels_last) == \
        want_codes.is_contiguous(memory_format=torch.channels_last)
    if input_bits is not None:
        assert codes.abs().max() <= 2**input_bits - 1 and torch.equal(codes, codes.round())


@pytest.mark.parametrize("adc_range", ["calibrated", "fixed"])
@pytest.mark.parametrize("adc_bits", [8, 3])
@pytest.mark.parametrize("grid_shape, tile_dim", [((4, 64, 512), 0),       # linear (T, B, n)
                                                  ((8, 6, 6, 3, 32), 3)])  # conv (B, H, W, T, n)
def test_adc_equals_the_tensor_ops(tensor_ops, adc_range, adc_bits, grid_shape, tile_dim):
    per = _periphery(adc_range=adc_range, adc_bits=adc_bits)
    g = torch.Generator().manual_seed(2)
    tiles = grid_shape[tile_dim]
    lines = torch.tensor([128.0] * (tiles - 1) + [40.0])
    batch = grid_shape[0] if tile_dim else grid_shape[1]
    unit = torch.rand((batch, 1), generator=g) + 0.1
    ranges = torch.zeros(tiles)
    want_ranges = ranges.clone()
    scale = 0.37
    for step in range(4):  # the first conversion calibrates, the later ones follow the peak
        partials = torch.randn(grid_shape, generator=g) * 30 * (1 + step % 2)
        y = per.convert(partials.clone(), tile_dim=tile_dim, scale=scale, lines=lines,
                        ranges=ranges, read_variance=None, unit=unit)
        with tensor_ops:
            want = per.convert(partials.clone(), tile_dim=tile_dim, scale=scale, lines=lines,
                               ranges=want_ranges, read_variance=None, unit=unit)
        assert y.shape == want.shape
        assert torch.equal(ranges, want_ranges)
        # a sum of T terms in another order: a few float32 ulps of the largest term
        torch.testing.assert_close(y, want, rtol=0, atol=1e-6 * tiles * float(want.abs().max()))
    assert (ranges > 0).all() == (adc_range == "calibrated")


@pytest.mark.parametrize("compiled", [True, False])
def test_a_tile_that_has_only_seen_zeros_converts_them_to_zero(monkeypatch, compiled):
    monkeypatch.setattr(Periphery, "compiled", compiled)
    chip = Chip(preset("default"))
    net = to_rram(nn.Sequential(nn.Linear(4, 8, bias=False)), chip)
    with torch.no_grad():
        y = net(torch.zeros(3, 4))  # a fresh ADC's first conversion: all partial sums 0
        assert torch.equal(y, torch.zeros(3, 8))
        assert torch.isfinite(net(torch.randn(3, 4))).all()


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 300), nn.ReLU(), nn.Linear(300, 200), nn.ReLU(),
                         nn.Linear(200, 3))


def _trained(steps: int) -> tuple[nn.Module, nn.Module, Chip]:
    chip = Chip(preset("default"))
    net = to_rram(_mlp(), chip)
    start = copy.deepcopy(net)
    opt = TunedOptimizer(torch.optim.SGD(net.parameters(), lr=0.05), net, chip)
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(5))
    for _ in range(steps):
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
    return start, net, chip


def test_a_training_step_is_the_same_compiled_or_in_tensor_ops(tensor_ops):
    start, net, chip = _trained(3)
    with tensor_ops:
        _, want_net, want_chip = _trained(3)
    for (name, a), (_, b) in zip(net.state_dict().items(), want_net.state_dict().items()):
        if "adc_range" in name:  # a peak: a last-bit difference upstream can flip one DAC code
            torch.testing.assert_close(a, b, rtol=1e-2, atol=0, msg=name)
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert chip.ledger.snapshot().as_dict() == want_chip.ledger.snapshot().as_dict()
    moved = sum(int((a != b).sum()) for a, b in zip(start.state_dict().values(),
                                                    net.state_dict().values()))
    assert moved > 100  # the steps programmed cells: there was something to compare


@pytest.mark.slow
def test_the_compiled_tensor_adc_equals_the_shipped_one():
    """experiments/compile_periphery.py: the ADC under torch.compile converts as the shipped
    loop does (to float32 rounding of the tile sum), so its timings compare like with like."""
    from experiments.compile_periphery import TOLERANCE, compare

    _, _, differ = compare((3, 4, 16), torch.device("cpu"), repeats=1, calls=1)
    assert set(differ) == {"eager", "compiled"}
    assert max(differ.values()) <= TOLERANCE
