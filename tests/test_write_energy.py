"""Write and verify-read energy priced by their circuits, and optimizer state priced as SRAM.

Every number is recomputed by hand from the sources quoted in rlime.cost.energy.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn as nn

from rlime.common.errors import ConfigError
from rlime.cost.energy import (TechnologyPreset, energy_preset, preset, price, pulse_breakdown,
                               tuning_cost_scaled)
from rlime.drl.phases import DQN_PHASES
from rlime.hw.chip import Chip
from rlime.hw.config import preset as hardware_preset
from rlime.hw.counts import LedgerSnapshot
from rlime.hw.layers import crossbar_layers, to_rram
from rlime.hw.optim import TunedOptimizer

# by hand: 0.2 fF/um (NeuroSim SubArray.cpp) x 160 nm (1T1R 4F, F = 40 nm) = 0.032 fF per cell
C_CELL = 0.2e-15 / 1e-6 * 160e-9
C_LINE = 128 * C_CELL            # 4.096e-15 F, a 128-cell word or bit line
V_W, T_W, V_R, T_R = 1.6, 50e-9, 0.5, 10e-9
G_MID = 5.5e-6
ETA = 1.6 / (2 * 0.9)            # ideal one-stage Dickson pump from V_dd = 0.9 V: 0.889
ADC = 1.67e-12


def test_line_capacitance_by_hand():
    tech = energy_preset("default")
    assert tech.cell_line_cap_f == pytest.approx(3.2e-17)
    assert tech.word_line_cap_f == pytest.approx(C_LINE) and C_LINE == pytest.approx(4.096e-15)
    assert tech.bit_line_cap_f == pytest.approx(C_LINE)
    assert tech.write_supply_efficiency == pytest.approx(ETA, rel=1e-12)


def test_pulse_breakdown_default_by_hand():
    b = pulse_breakdown(energy_preset("default"))
    cell = V_W**2 * G_MID * T_W                      # 0.704 pJ
    line = C_LINE * V_W**2                           # 0.01049 pJ each
    delivered = cell + 2 * line
    assert b["pulse_cell"] == pytest.approx(0.704e-12)
    assert b["pulse_word_line"] == pytest.approx(line) and line == pytest.approx(1.048576e-14)
    assert b["pulse_bit_line"] == pytest.approx(line)
    assert b["pulse_driver_loss"] == pytest.approx(delivered / ETA - delivered)
    assert b["pulse_total"] == pytest.approx(delivered / ETA)
    assert b["verify_cell"] == pytest.approx(V_R**2 * G_MID * T_R)
    assert b["verify_lines"] == pytest.approx(2 * C_LINE * V_R**2)
    assert b["verify_sense"] == pytest.approx(ADC)
    assert b["verify_total"] == pytest.approx(b["verify_cell"] + b["verify_lines"] + ADC)
    # the breakdown is what the ledger is charged: one pulse at G_mid plus one verify read
    s = LedgerSnapshot.from_dict({"update": {"set_pulses": 1, "set_pulse_siemens": G_MID,
                                             "verify_reads": 1}}, DQN_PHASES)
    assert price(s, energy_preset("default"))["tuning"] == pytest.approx(
        b["pulse_total"] + b["verify_total"])


def test_pulse_breakdown_fixed_presets():
    opt = pulse_breakdown(energy_preset("optimistic"))
    assert opt["pulse_cell"] == pytest.approx(0.1e-12)   # replaces V^2 G t
    assert opt["pulse_total"] == pytest.approx((0.1e-12 + 2 * C_LINE * V_W**2) / ETA)
    assert opt["verify_sense"] == pytest.approx(0.99e-12)
    pes = pulse_breakdown(energy_preset("pessimistic"))
    assert pes["pulse_total"] == pes["pulse_cell"] == pytest.approx(10e-12)  # already covers all
    assert pes["pulse_word_line"] == pes["pulse_bit_line"] == pes["pulse_driver_loss"] == 0
    assert pes["verify_total"] == pytest.approx(V_R**2 * G_MID * T_R + 2 * C_LINE * V_R**2 + 20e-12)
    # the tuning divisor scales every term
    tenth = pulse_breakdown(tuning_cost_scaled(energy_preset("default"), 10))
    for k, v in pulse_breakdown(energy_preset("default")).items():
        assert tenth[k] == pytest.approx(v / 10), k


def test_line_terms_follow_the_tile_geometry():
    tech = energy_preset("default")
    big = dataclasses.replace(tech, tile_rows=256, tile_cols=512)
    b = pulse_breakdown(big)
    assert b["pulse_word_line"] == pytest.approx(512 * C_CELL * V_W**2)
    assert b["pulse_bit_line"] == pytest.approx(256 * C_CELL * V_W**2)
    for name in ("default", "optimistic", "pessimistic", "ideal"):
        bundle = preset(name)
        assert (bundle.energy.tile_rows, bundle.energy.tile_cols) == (
            bundle.hardware.tile.rows, bundle.hardware.tile.cols)


# A small fixed ledger: 1000 pulses (sum G = 1000 x G_mid), 4000 verify reads, 1e5 buffer bits.
SMALL = {"update": {"set_pulses": 600, "reset_pulses": 400, "set_pulse_siemens": 600 * G_MID,
                    "reset_pulse_siemens": 400 * G_MID, "verify_reads": 4000,
                    "buffer_bits": 100_000},
         "forward": {"adc_conversions": 2000, "cell_reads": 100_000}}


def test_tuning_share_of_a_small_ledger_moves_as_the_new_terms_predict():
    s = LedgerSnapshot.from_dict(SMALL, DQN_PHASES)
    new = energy_preset("default")
    # the old model: V^2 G t per pulse, cell read + ADC per verify
    old = dataclasses.replace(new, wire_cap_f_per_m=0.0, write_supply_efficiency=1.0)
    other = 100_000 * 0.08e-12 + 2000 * ADC + 100_000 * V_R**2 * G_MID * T_R
    old_tuning = 1000 * V_W**2 * G_MID * T_W + 4000 * (V_R**2 * G_MID * T_R + ADC)
    new_tuning = (1000 * (V_W**2 * G_MID * T_W + 2 * C_LINE * V_W**2) / ETA
                  + 4000 * (V_R**2 * G_MID * T_R + 2 * C_LINE * V_R**2 + ADC))
    e_old, e_new = price(s, old), price(s, new)
    assert e_old["tuning"] == pytest.approx(old_tuning)
    assert e_new["tuning"] == pytest.approx(new_tuning)
    assert e_new["tuning"] - e_old["tuning"] == pytest.approx(
        1000 * (pulse_breakdown(new)["pulse_total"] - V_W**2 * G_MID * T_W)
        + 4000 * 2 * C_LINE * V_R**2)
    # share of the dynamic energy (static power over latency is not a term of this comparison)
    share = lambda e: e["tuning"] / sum(v for c, v in e.items() if c != "static")  # noqa: E731
    assert share(e_old) == pytest.approx(old_tuning / (old_tuning + other))
    assert share(e_new) == pytest.approx(new_tuning / (new_tuning + other))
    assert share(e_new) > share(e_old)


def test_new_fields_validate():
    with pytest.raises(ConfigError, match="write_supply_efficiency"):
        TechnologyPreset(write_supply_efficiency=0.0)
    with pytest.raises(ConfigError, match="write_supply_efficiency"):
        TechnologyPreset(write_supply_efficiency=1.5)
    with pytest.raises(ConfigError, match="wire_cap_f_per_m"):
        TechnologyPreset(wire_cap_f_per_m=-1.0)
    with pytest.raises(ConfigError, match="tile_rows"):
        TechnologyPreset(tile_rows=0)
    with pytest.raises(ConfigError, match="write_fixed_includes_periphery"):
        TechnologyPreset(write_fixed_includes_periphery=1)


def test_sram_bits_price_and_category():
    s = LedgerSnapshot.from_dict({"update": {"sram_bits": 6400}}, DQN_PHASES)
    e = price(s, energy_preset("default"))
    assert e["data_movement"] == pytest.approx(6400 * 10e-12 / 64)   # Horowitz 8 KB SRAM
    assert sum(e.values()) == e["data_movement"]
    assert energy_preset("default").table()["sram_bits_pj"] == pytest.approx(10 / 64)


@pytest.mark.parametrize("rule", ["SGD", "momentum", "Adam"])
def test_optimizer_state_and_residuals_are_charged_as_sram(rule):
    torch.manual_seed(0)
    chip = Chip(hardware_preset("default"), seed=0)
    net = to_rram(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)), chip)
    params = list(net.parameters())
    make = {"SGD": lambda: torch.optim.SGD(params, lr=0.1),
            "momentum": lambda: torch.optim.SGD(params, lr=0.1, momentum=0.9),
            "Adam": lambda: torch.optim.Adam(params, lr=1e-3)}[rule]
    opt = TunedOptimizer(make(), net, chip)
    words = {"SGD": 0, "momentum": 1, "Adam": 2}[rule]
    n = sum(p.numel() for p in params)
    residuals = sum(layer.array.residual.numel() for layer in crossbar_layers(net))
    before = chip.ledger.snapshot()
    net(torch.randn(4, 6)).square().mean().backward()
    opt.step()
    d = chip.ledger.snapshot() - before
    assert d.get("update", "buffer_bits") == 32 * n                      # the gradient in
    assert d.get("update", "sram_bits") == 2 * 32 * (words * n + residuals)  # read + write
