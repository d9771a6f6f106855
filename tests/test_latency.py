"""The latency model (rlime.cost.latency) and the static energy category it feeds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rlime.drl.phases import DQN_PHASES
from rlime.cost.energy import categories, energy_preset, price, price_tables, total
from rlime.cost.latency import (kind_seconds, latency, latency_tables, static_energy,
                                static_power_w, time_row, total_latency)
from rlime.hw.config import TileConfig
from rlime.hw.counts import ALL_KINDS, LedgerSnapshot

# --- the default preset's timing and static power, written out ---------------------------------
CYCLE, CONV_PER_CYCLE = 100e-9, 128      # ISAAC: one ADC reads 128 columns per 100 ns cycle
CONV = CYCLE / CONV_PER_CYCLE            # 0.78125 ns
T_W, T_R, T_DIG = 50e-9, 10e-9, 1e-9
S_AND_H = 10e-6 / 8                      # ISAAC Table 6: 10 uW per IMA of 8 crossbars
SRAM_LEAK = 0.9 * (2.08 + 1.23) * 32e-9 * 100.10e-6   # NeuroSim 32 nm LSTP, W per bit
SRAM_HELD = 32 * 128 * 128               # one 32-bit residual accumulator per cell
P_STATIC = S_AND_H + SRAM_LEAK * SRAM_HELD

LEDGER = {
    "act": {"dac_conversions": 512, "adc_conversions": 256, "cell_reads": 8192,
            "shift_adds": 256, "digital_ops": 30, "mvm_macs": 4096},
    "backward": {"adc_conversions": 128, "gradient_macs": 1000, "partial_sum_adds": 10},
    "update": {"set_pulses": 40, "set_pulse_siemens": 2e-4, "reset_pulses": 20,
               "reset_pulse_siemens": 1e-4, "verify_reads": 90, "optimizer_ops": 300,
               "buffer_bits": 4096, "sram_bits": 2048},
    "replay": {"dram_bits": 10**6},
}
# by hand: seconds per phase
HAND = {
    "act": 256 * CONV + 30 * T_DIG,
    "backward": 128 * CONV + (1000 + 10) * T_DIG,
    "update": (40 + 20) * T_W + 90 * (T_R + CONV) + 300 * T_DIG,
    "replay": 0.0,    # data movement is pipelined under compute
}


@pytest.fixture
def snap() -> LedgerSnapshot:
    return LedgerSnapshot.from_dict(LEDGER, DQN_PHASES)


def test_hand_built_ledger_latency_matches_hand_computation(snap):
    tech = energy_preset("default")
    seconds = latency(snap, tech)
    assert list(seconds) == list(DQN_PHASES.names)
    for phase in DQN_PHASES.names:
        assert seconds[phase] == pytest.approx(HAND.get(phase, 0.0), rel=1e-12, abs=0), phase
    assert total_latency(snap, tech) == pytest.approx(sum(HAND.values()), rel=1e-12)
    # 256 conversions take two ISAAC array cycles
    assert 256 * tech.conversion_s == pytest.approx(2 * CYCLE)


def test_static_power_and_energy_is_power_times_time(snap):
    tech = energy_preset("default")
    assert static_power_w(tech) == pytest.approx(P_STATIC, rel=1e-12)
    assert SRAM_LEAK == pytest.approx(9.54e-12, rel=1e-3)        # 9.5 pW per bit
    for phase, joules in static_energy(snap, tech).items():
        assert joules == pytest.approx(P_STATIC * HAND.get(phase, 0.0), rel=1e-12), phase
    assert price(snap, tech)["static"] == pytest.approx(P_STATIC * sum(HAND.values()), rel=1e-12)


def test_price_total_is_dynamic_plus_static(snap):
    tech = energy_preset("default")
    energy = price(snap, tech)
    assert list(energy) == list(categories(DQN_PHASES)) and list(energy)[-1] == "static"
    dynamic = sum(v for c, v in energy.items() if c != "static")
    # no static power: the same categories, static 0, the dynamic ones unchanged
    cold = dataclasses.replace(tech, periphery_static_w=0.0, sram_leak_w_per_bit=0.0)
    energy_cold = price(snap, cold)
    assert energy_cold["static"] == 0.0
    assert {c: v for c, v in energy_cold.items() if c != "static"} == {
        c: v for c, v in energy.items() if c != "static"}
    assert total(snap, tech) == pytest.approx(dynamic + P_STATIC * sum(HAND.values()), rel=1e-12)
    assert total(snap, tech) == pytest.approx(total(snap, cold) + energy["static"], rel=1e-12)


def test_zero_ledger_costs_nothing_and_takes_no_time():
    zero = LedgerSnapshot.from_dict({}, DQN_PHASES)
    for name in ("default", "optimistic", "pessimistic", "ideal"):
        tech = energy_preset(name)
        assert total(zero, tech) == 0.0 and total_latency(zero, tech) == 0.0
        assert all(v == 0.0 for v in price(zero, tech).values())


def test_parallel_arrays_shorten_array_time_but_not_static_energy():
    s = LedgerSnapshot.from_dict({"update": {"set_pulses": 64, "adc_conversions": 1280,
                                             "verify_reads": 64}}, DQN_PHASES)
    one = energy_preset("default")
    four = dataclasses.replace(one, parallel_arrays=4)
    assert total_latency(s, four) == pytest.approx(total_latency(s, one) / 4, rel=1e-12)
    assert static_power_w(four) == pytest.approx(4 * static_power_w(one), rel=1e-12)
    assert price(s, four)["static"] == pytest.approx(price(s, one)["static"], rel=1e-12)
    # digital ops are not spread over arrays
    d = LedgerSnapshot.from_dict({"update": {"optimizer_ops": 100}}, DQN_PHASES)
    assert total_latency(d, four) == total_latency(d, one) == pytest.approx(100 * T_DIG)


def test_only_hardware_operations_take_time():
    seconds = kind_seconds(energy_preset("default"))
    timed = {k for k, v in seconds.items() if v}
    assert timed == {"adc_conversions", "set_pulses", "reset_pulses", "verify_reads",
                     "gradient_macs", "optimizer_ops", "digital_ops", "partial_sum_adds"}
    row = time_row(energy_preset("default"))
    assert row.shape == (len(ALL_KINDS),) and np.all(row >= 0)


def test_sram_held_follows_the_tile_and_pessimistic_leaks_at_hp():
    # the SRAM held follows the tile (32 bits a cell); the pessimistic preset leaks at 32 nm HP
    small = energy_preset("default", tile=dataclasses.replace(TileConfig(), rows=64, cols=64))
    assert small.sram_bits_per_array == 32 * 64 * 64
    hp = energy_preset("pessimistic")
    assert hp.sram_leak_w_per_bit == pytest.approx(
        0.9 * (2.08 * 32e-9 * 100.30e-3 + 1.23 * 32e-9 * 100.10e-3), rel=1e-12)
    assert hp.sram_leak_w_per_bit / energy_preset("default").sram_leak_w_per_bit > 900


def test_latency_tables_is_vectorised(snap):
    tech = energy_preset("default")
    stacked = latency_tables(np.stack([snap.table, 3 * snap.table]), tech, DQN_PHASES)
    assert stacked.shape == (2, len(DQN_PHASES))
    np.testing.assert_allclose(stacked[1], 3 * stacked[0])
    energies = price_tables(np.stack([snap.table, 3 * snap.table]), tech, DQN_PHASES)
    np.testing.assert_allclose(energies[1], 3 * energies[0])


def test_sram_held_follows_the_update_rule_and_residual():
    from rlime.cost.energy import energy_preset
    from rlime.hw.optim import sram_bits_per_cell
    assert sram_bits_per_cell("sgd", False) == 0            # TIME's rule holds no state
    assert sram_bits_per_cell("momentum", False) == 16      # one 32-bit word per two cells
    assert sram_bits_per_cell("adam", True) == 48           # m, v and the residual
    tech = energy_preset("default", sram_bits_per_cell=48)
    assert tech.sram_bits_per_array == 48 * tech.tile_rows * tech.tile_cols
