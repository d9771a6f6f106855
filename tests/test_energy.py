"""Tests for rlime.cost.energy, rlime.cost.baselines, rlime.cost.wear: hand-computed joules, mapping, presets."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from rlime.cost.baselines import (ASIC_PRESETS, GPU_PRESETS, asic_energy, compare, gpu_energy,
                             measure_gpu_energy)
from rlime.common.errors import ConfigError
from rlime.cost.energy import (TechnologyPreset, categories, energy_preset, preset, price,
                               price_by_kind, price_row, price_tables, total, tuning_cost_scaled)
from rlime.drl.phases import DQN_PHASES
from rlime.harness.run_config import resolve
from rlime.hw.config import DeviceConfig, preset as hardware_preset
from rlime.hw.counts import ALL_KINDS, LedgerSnapshot

PHASES = DQN_PHASES.names
CATEGORIES = categories(DQN_PHASES)
from rlime.cost.wear import wear_report

# --- the default preset's table, written out (pJ values from docs/design.md "Energy model") --------
V_W, T_W = 1.6, 50e-9            # write pulse
V_R, T_R = 0.5, 10e-9            # read
G_MID = (1e-6 + 1e-5) / 2        # 5.5e-6 S
READ = V_R**2 * G_MID * T_R      # 1.375e-14 J per cell read
ADC, DAC, SHIFT_ADD = 1.67e-12, 0.39e-12, 0.021e-12
BUFFER, NOC, DRAM = 0.08e-12, 0.08e-12, 20e-12
FP_ADD, FP_MUL, INT_ADD, INT8_MUL = 0.9e-12, 3.7e-12, 0.1e-12, 0.2e-12
SRAM = 10e-12 / 64               # Horowitz 8 KB SRAM, 64-bit access
# lines: 128 cells x 0.2 fF/um x 160 nm = 4.096 fF per word line and per bit line
LINE_C = 128 * 0.2e-15 / 1e-6 * 160e-9
ETA = 1.6 / (2 * 0.9)            # one-stage Dickson pump, 1.6 V from 0.9 V: 0.889
PULSE_LINES = 2 * LINE_C * V_W**2 / ETA   # per pulse, whatever G
VERIFY = READ + 2 * LINE_C * V_R**2 + ADC
# memory-mode bit: 1/9 writes (one pulse at G_mid), 8/9 reads (cell read + ADC / 2^7 sense)
RRAM_WRITE_BIT = (V_W**2 * G_MID * T_W + 2 * LINE_C * V_W**2) / ETA
RRAM_READ_BIT = READ + ADC / 128

LEDGER = {
    "program": {"set_pulses": 100, "set_pulse_siemens": 1e-3, "verify_reads": 200},
    "act": {"mvm_macs": 1000, "dac_conversions": 200, "adc_conversions": 100,
            "cell_reads": 4000, "shift_adds": 100, "digital_ops": 50},
    "forward": {"adc_conversions": 300, "buffer_bits": 1024},
    "target": {"cell_reads": 1000},
    "backward": {"mvm_macs": 500, "dac_conversions": 50, "adc_conversions": 70,
                 "cell_reads": 500, "shift_adds": 70, "gradient_macs": 400,
                 "partial_sum_adds": 20},
    "update": {"set_pulses": 1000, "set_pulse_siemens": 5e-3, "reset_pulses": 500,
               "reset_pulse_siemens": 2e-3, "verify_reads": 3000, "optimizer_ops": 800,
               "buffer_bits": 2048, "sram_bits": 512},
    "target_sync": {"buffer_bits": 4096, "set_pulses": 10, "set_pulse_siemens": 5e-5,
                    "verify_reads": 20, "noc_bit_hops": 100},
    "replay": {"dram_bits": 8000, "rram_memory_write_bits": 100, "rram_memory_read_bits": 800,
               "buffer_bits": 640},
}

# The same ledger priced by hand with the default table.
TUNING_PULSES = (V_W**2 * (1e-3 + 5e-3 + 2e-3) * T_W / ETA  # 1000 SET (5e-3 S), 500 RESET, program
                 + (100 + 1000 + 500) * PULSE_LINES)
TUNING_VERIFY = (200 + 3000) * VERIFY
SYNC_PULSES = V_W**2 * 5e-5 * T_W / ETA + 10 * PULSE_LINES + 20 * VERIFY
EXPECTED = {
    "forward": 200 * DAC + (100 + 300) * ADC + (4000 + 1000) * READ + 100 * SHIFT_ADD,
    "backward": 50 * DAC + 70 * ADC + 500 * READ + 70 * SHIFT_ADD,
    "gradient": 400 * (INT8_MUL + INT_ADD) + 800 * (FP_MUL + FP_ADD) / 2,
    "tuning": TUNING_PULSES + TUNING_VERIFY,
    "target_sync": 4096 * BUFFER + 100 * NOC + SYNC_PULSES,
    "replay": 8000 * DRAM + 100 * RRAM_WRITE_BIT + 800 * RRAM_READ_BIT + 640 * BUFFER,
    "data_movement": (1024 + 2048) * BUFFER + 512 * SRAM,
    "digital": 50 * FP_ADD + 20 * INT_ADD,
}
# static: (ISAAC S&H 1.25 uW + NeuroSim 32 nm LSTP SRAM leakage x 32 bits x 128 x 128 cells) x the
# ledger's latency: 470 ADC conversions x 100 ns / 128, 1610 pulses x 50 ns, 3220 verify reads x
# (10 ns + 100 ns / 128), 1270 digital ops (50 + 400 + 20 + 800) x 1 ns
STATIC_W = 1.25e-6 + 32 * 128 * 128 * 0.9 * (2.08 + 1.23) * 32e-9 * 100.10e-6
EXPECTED["static"] = STATIC_W * (470 * 100e-9 / 128 + 1610 * 50e-9
                                 + 3220 * (10e-9 + 100e-9 / 128) + 1270 * 1e-9)


@pytest.fixture
def snap() -> LedgerSnapshot:
    return LedgerSnapshot.from_dict(LEDGER, DQN_PHASES)


def test_hand_priced_ledger_matches_every_category(snap):
    energy = price(snap, energy_preset("default"))
    assert list(energy) == list(CATEGORIES)
    for category in CATEGORIES:
        assert energy[category] == pytest.approx(EXPECTED[category], rel=1e-12), category


def test_set_pulses_energy_is_v2_g_t_plus_lines_through_the_pump():
    # 1000 SET pulses whose conductances sum to 5e-3 S: 1.6^2 * 5e-3 * 50e-9 J = 6.4e-10 J in
    # the cells, 1000 x 2 x 4.096 fF x 1.6^2 = 2.097e-11 J in the lines, all drawn through the
    # 0.889-efficient pump; plus static power over the 1000 x 50 ns of pulses
    s = LedgerSnapshot.from_dict({"update": {"set_pulses": 1000, "set_pulse_siemens": 5e-3}}, DQN_PHASES)
    assert total(s, energy_preset("default")) == pytest.approx((6.4e-10 + 2.097152e-11) / ETA
                                                               + STATIC_W * 1000 * 50e-9)


def test_categories_sum_to_total(snap):
    for name in ("default", "optimistic", "pessimistic", "ideal"):
        tech = energy_preset(name)
        assert sum(price(snap, tech).values()) == pytest.approx(total(snap, tech), rel=1e-12)
    assert total(snap, energy_preset("default")) == pytest.approx(sum(EXPECTED.values()))


def test_mvm_macs_are_not_priced():
    s = LedgerSnapshot.from_dict({"forward": {"mvm_macs": 10**9}}, DQN_PHASES)
    assert total(s, energy_preset("default")) == 0.0


def test_optimistic_cheaper_with_pulses_and_counts_unchanged(snap):
    before = snap.table.copy()
    default = total(snap, energy_preset("default"))
    optimistic = total(snap, energy_preset("optimistic"))
    assert optimistic < default
    np.testing.assert_array_equal(snap.table, before)  # pricing never touches counts
    assert snap.weight_writes == 100 + 1000 + 500 + 10
    assert snap.writes == 100 + 1000 + 500  # weight programming; sync pulses and replay bits apart
    assert snap.copy_pulses == 10 and snap.memory_write_bits == 100
    # optimistic tuning: 0.1 pJ per pulse whatever G, plus lines, through the pump; verify
    # with the 0.99 pJ 5-bit ADC
    tuning = price(snap, energy_preset("optimistic"))["tuning"]
    assert tuning == pytest.approx((100 + 1000 + 500) * (0.1e-12 / ETA + PULSE_LINES)
                                   + 3200 * (VERIFY - ADC + 0.99e-12))
    # and HBM-class memory for the replay DRAM traffic
    replay = price(LedgerSnapshot.from_dict({"replay": {"dram_bits": 1000}}, DQN_PHASES),
                   energy_preset("optimistic"))["replay"]
    assert replay == pytest.approx(1000 * 3.9e-12)


def test_pessimistic_prices():
    s = LedgerSnapshot.from_dict({"update": {"set_pulses": 7, "set_pulse_siemens": 1e-4},
                                  "forward": {"adc_conversions": 3}}, DQN_PHASES)
    e = price(s, energy_preset("pessimistic"))
    # 10 pJ per pulse, siemens ignored, lines and pump included in it
    assert e["tuning"] == pytest.approx(7 * 10e-12)
    assert e["forward"] == pytest.approx(3 * 20e-12)  # MNSIM convention: 2 mW * 10 ns


def test_ideal_prices_like_default(snap):
    assert total(snap, energy_preset("ideal")) == pytest.approx(
        total(snap, energy_preset("default")), rel=1e-15)


def test_unknown_preset_lists_allowed_names():
    with pytest.raises(ConfigError, match="default, optimistic, pessimistic, ideal"):
        energy_preset("cheap")


def test_preset_validation():
    with pytest.raises(ConfigError, match="adc_j"):
        TechnologyPreset(adc_j=-1.0)
    with pytest.raises(ConfigError, match="g_max_siemens"):
        TechnologyPreset(device=DeviceConfig(g_min_siemens=1e-5, g_max_siemens=1e-6))


def test_each_preset_bundles_its_hardware_and_prices_that_hardware_s_cells():
    for name in ("default", "optimistic", "pessimistic", "ideal"):
        bundle = preset(name)
        assert bundle.hardware == hardware_preset(name) and bundle.energy.name == name
        assert bundle.energy.device is bundle.hardware.device
        assert energy_preset(name) == bundle.energy


def test_cell_energies_follow_the_run_s_device_conductances():
    # --set device.g_max_siemens moves cell-read (and memory-mode) energy, not only pulse energy
    cfg = resolve([("run.env", "CartPole"), ("device.g_max_siemens", 2e-5)])
    tech = energy_preset(cfg.energy_preset, cfg.hardware.device)
    g_mid = (1e-6 + 2e-5) / 2
    assert tech.cell_read_j == pytest.approx(V_R**2 * g_mid * T_R)
    assert tech.verify_read_j == pytest.approx(V_R**2 * g_mid * T_R + 2 * LINE_C * V_R**2 + ADC)
    assert tech.write_pulse_mid_j == pytest.approx((V_W**2 * g_mid * T_W
                                                     + 2 * LINE_C * V_W**2) / ETA)
    s = LedgerSnapshot.from_dict({"forward": {"cell_reads": 1000}}, DQN_PHASES)
    assert total(s, tech) == pytest.approx(1000 * V_R**2 * g_mid * T_R)
    default = resolve([("run.env", "CartPole")])
    assert energy_preset(default.energy_preset, default.hardware.device) == energy_preset("default")


# Independent statement of the mapping: (phase, kind) -> category.
def _expected_category(phase: str, kind: str) -> str:
    if phase in ("target_sync", "replay"):
        return phase
    if kind in ("dac_conversions", "adc_conversions", "cell_reads", "shift_adds", "mvm_macs"):
        return "backward" if phase == "backward" else "forward"
    if kind in ("set_pulses", "reset_pulses", "set_pulse_siemens", "reset_pulse_siemens",
                "verify_reads"):
        return "tuning"
    if kind in ("gradient_macs", "optimizer_ops"):
        return "gradient"
    if kind in ("partial_sum_adds", "digital_ops"):
        return "digital"
    if kind in ("buffer_bits", "dram_bits", "noc_bit_hops", "rram_memory_write_bits",
                "rram_memory_read_bits", "sram_bits"):
        return "data_movement"
    raise AssertionError(f"test does not know kind {kind}")


@pytest.mark.parametrize("phase", PHASES)
def test_each_entry_lands_in_its_category(phase):
    for kind in ALL_KINDS:
        if kind == "mvm_macs":
            continue
        # default prices pulses by their summed siemens; pessimistic prices the pulse count
        tech = energy_preset("pessimistic" if kind in ("set_pulses", "reset_pulses")
                             else "default")
        e = price(LedgerSnapshot.from_dict({phase: {kind: 1.0}}, DQN_PHASES), tech)
        nonzero = [c for c, v in e.items() if v != 0]
        timed = kind in ("adc_conversions", "set_pulses", "reset_pulses", "verify_reads",
                         "gradient_macs", "optimizer_ops", "digital_ops", "partial_sum_adds")
        assert nonzero == [_expected_category(phase, kind)] + ["static"] * timed, (phase, kind, e)


def test_every_ledger_kind_has_a_price():
    m = price_row(energy_preset("default"))
    assert m.shape == (len(ALL_KINDS),)
    assert np.all(np.isfinite(m)) and np.all(m >= 0)


def test_tuning_cost_scaled_divides_tuning_only(snap):
    tech = energy_preset("default")
    base, scaled = price(snap, tech), price(snap, tuning_cost_scaled(tech, 10))
    assert scaled["tuning"] == pytest.approx(base["tuning"] / 10, rel=1e-12)
    # target sync's own pulses and verify reads are tuning too: only they shrink
    assert scaled["target_sync"] == pytest.approx(4096 * BUFFER + 100 * NOC + SYNC_PULSES / 10)
    for c in ("forward", "backward", "gradient", "replay", "data_movement", "digital"):
        assert scaled[c] == base[c], c
    twice = tuning_cost_scaled(tuning_cost_scaled(tech, 10), 10)
    assert price(snap, twice)["tuning"] == pytest.approx(base["tuning"] / 100, rel=1e-12)
    with pytest.raises(ValueError):
        tuning_cost_scaled(tech, 0)


def test_price_tables_is_vectorised(snap):
    tech = energy_preset("default")
    stacked = price_tables(np.stack([snap.table, 2 * snap.table]), tech, DQN_PHASES)
    assert stacked.shape == (2, len(CATEGORIES))
    np.testing.assert_allclose(stacked[1], 2 * stacked[0])
    np.testing.assert_allclose(stacked[0], [EXPECTED[c] for c in CATEGORIES], rtol=1e-12)


def test_price_by_kind_sums_to_total(snap):
    tech = energy_preset("default")
    by_kind = price_by_kind(snap, tech)
    assert sum(v for row in by_kind.values() for v in row.values()) == pytest.approx(
        total(snap, tech))
    assert by_kind["update"]["set_pulse_siemens"] == pytest.approx(V_W**2 * 5e-3 * T_W / ETA)


def test_subtracted_snapshots_price_the_difference(snap):
    tech = energy_preset("default")
    later = LedgerSnapshot(snap.table * 3, DQN_PHASES)
    assert total(later - snap, tech) == pytest.approx(2 * total(snap, tech))


def test_wrong_table_shape_is_rejected():
    with pytest.raises(ValueError, match="expected"):
        LedgerSnapshot(np.zeros((2, 3)), DQN_PHASES)
    with pytest.raises(ValueError, match="expected"):
        price_tables(np.zeros((2, 3)), energy_preset("default"), DQN_PHASES)


# --------------------------------------------------------------------------- wear


def test_wear_report_hand_numbers():
    counts = np.array([[0, 5], [10, 3]])
    r = wear_report(counts, episodes=5, endurance=100)
    assert r["cells"] == 4
    assert r["max_pulses"] == 10 and r["mean_pulses"] == pytest.approx(4.5)
    assert r["max_pulses_per_episode"] == pytest.approx(2.0)
    assert r["mean_pulses_per_episode"] == pytest.approx(0.9)
    assert r["episodes_to_endurance"] == pytest.approx(50.0)   # 100 / 2
    assert r["episodes_remaining"] == pytest.approx(45.0)      # (100 - 10) / 2
    assert wear_report(torch.tensor(counts), 5, 100) == r
    # per-array counters, as the backends hand them over: reduced one by one, same numbers
    assert wear_report([torch.tensor([0, 5]), torch.zeros(0, dtype=torch.int64),
                        torch.tensor([[10], [3]])], 5, 100) == r


def test_wear_report_unwritten_and_worn_out():
    assert wear_report(np.zeros(7), 3, 1e9)["episodes_to_endurance"] == math.inf
    worn = wear_report(np.array([12, 1]), 2, 10)
    assert worn["episodes_remaining"] == 0.0
    with pytest.raises(ValueError):
        wear_report(np.array([1.0]), 0, 10)
    with pytest.raises(ValueError):
        wear_report(np.array([-1.0]), 1, 10)
    with pytest.raises(ValueError):
        wear_report([torch.tensor([1.0, math.nan])], 1, 10)
    with pytest.raises(ValueError):
        wear_report([], 1, 10)


# --------------------------------------------------------------------------- baselines

# A compute-bound training ledger: large batched MVMs, little traffic.
TRAIN = {
    "act": {"mvm_macs": 1_000, "digital_ops": 10},
    "forward": {"mvm_macs": 3_200_000, "digital_ops": 5_000, "buffer_bits": 80_000},
    "target": {"mvm_macs": 3_200_000},
    "backward": {"mvm_macs": 3_000_000, "gradient_macs": 3_200_000},
    "update": {"optimizer_ops": 200_000, "buffer_bits": 3_200_000, "set_pulses": 100,
               "set_pulse_siemens": 5e-4, "verify_reads": 300},
    "target_sync": {"buffer_bits": 3_200_000},
    "replay": {"dram_bits": 100_000, "buffer_bits": 50_000},
}


def _gpu_by_hand(u: float) -> float:
    # Titan X Maxwell; no launch floor: idle 8 W over the time, plus u (TDP - idle) while
    # compute runs
    peak, bw, idle, tdp = 6.6e12 * u, 336.5e9, 8.0, 250.0
    phases = {  # phase: (FLOPs, bytes)
        "act": (2 * 1_000 + 10, 4 * 1_000 / 1),
        "forward": (2 * 3_200_000 + 5_000, 4 * 3_200_000 / 32 + 80_000 / 8),
        "target": (2 * 3_200_000, 4 * 3_200_000 / 32),
        "backward": (2 * 3_000_000 + 2 * 3_200_000, 4 * (3_000_000 + 3_200_000) / 32),
        "update": (200_000, 3_200_000 / 8),
        "target_sync": (0, 3_200_000 / 8),
        "replay": (0, 100_000 / 8),          # replay's buffer staging is not GPU traffic
    }
    return sum(idle * max(f / peak, b / bw) + u * (tdp - idle) * f / peak
               for f, b in phases.values())


def test_gpu_energy_matches_formula_by_hand():
    s = LedgerSnapshot.from_dict(TRAIN, DQN_PHASES)
    g = gpu_energy(s, 32, "titanx-maxwell", utilisation=0.3)
    assert g["energy_j"] == pytest.approx(_gpu_by_hand(0.3), rel=1e-12)
    assert g["flops"] == 2 * 1_000 + 10 + 2 * 3_200_000 + 5_000 + 2 * 3_200_000 \
        + 2 * 3_000_000 + 2 * 3_200_000 + 200_000
    assert g["utilisation"] == 0.3 and g["gpu"]["board_power_w"] == 250.0
    assert set(g["compute_bound_phases"]) == {"forward", "target", "backward"}
    assert "act" in g["memory_bound_phases"]


def test_gpu_utilisation_scales_the_idle_share_of_compute_bound_energy():
    s = LedgerSnapshot.from_dict({"forward": {"mvm_macs": 10**8}, "backward": {
        "mvm_macs": 10**8, "gradient_macs": 10**8}}, DQN_PHASES)
    low = gpu_energy(s, 32, "v100", utilisation=0.2)["energy_j"]
    high = gpu_energy(s, 32, "v100", utilisation=0.4)["energy_j"]
    # by hand: 6e8 FLOP at u * 15.7 TFLOPS, board at 40 W idle + u * (300 - 40) W
    for u, e in ((0.2, low), (0.4, high)):
        assert e == pytest.approx((40.0 + u * 260.0) * 6e8 / (u * 15.7e12), rel=1e-12)
    assert high < low
    with pytest.raises(ValueError):
        gpu_energy(s, 32, "v100", utilisation=0.0)
    with pytest.raises(ValueError, match="titanx-maxwell"):
        gpu_energy(s, 32, "a100")


def test_asic_energy_matches_formula_by_hand():
    s = LedgerSnapshot.from_dict(TRAIN, DQN_PHASES)
    tech = energy_preset("default")
    ops = (2 * 1_000 + 10 + 2 * 3_200_000 + 5_000 + 2 * 3_200_000 + 2 * 3_000_000
           + 2 * 3_200_000 + 200_000)
    op_j = 15.97 / 5.58e12  # DaDianNao: node power / peak 16-bit throughput
    edram = 0.08e-12 * (80_000 + 3_200_000 + 3_200_000 + 50_000)
    off_chip = 20e-12 * 100_000  # the replay memory is off chip
    a = asic_energy(s, tech, "dadiannao")
    assert a["energy_j"] == pytest.approx(op_j * ops + edram + off_chip, rel=1e-12)
    assert a["ops"] == ops


def test_compare_ratios_well_defined():
    s = LedgerSnapshot.from_dict(TRAIN, DQN_PHASES)
    tech = energy_preset("default")
    c = compare(s, tech, 32, gpu="h100-sxm", utilisation=0.5)
    assert c["rram_j"] == pytest.approx(total(s, tech))
    assert c["gpu_over_rram"] == pytest.approx(c["gpu_j"] / c["rram_j"])
    assert c["asic_over_rram"] == pytest.approx(c["asic_j"] / c["rram_j"])
    assert 0 < c["gpu_over_rram"] < math.inf and 0 < c["asic_over_rram"] < math.inf
    assert c["gpu_model"]["gpu"]["name"] == "h100-sxm" and c["utilisation"] == 0.5
    per = compare(s, tech, 32, episodes=4, steps=400)
    assert per["per_episode"]["gpu_j"] == pytest.approx(per["gpu_j"] / 4)
    assert per["per_step"]["rram_j"] == pytest.approx(per["rram_j"] / 400)
    assert "per_episode" not in c
    empty = compare(LedgerSnapshot.zeros(DQN_PHASES), tech, 32)
    assert empty["gpu_over_rram"] is None and empty["asic_over_rram"] is None


def test_baseline_presets_are_sourced_and_positive():
    for p in GPU_PRESETS.values():
        assert p.board_power_w > 0 and p.peak_fp32_flops > 0 and p.memory_bandwidth_bytes_s > 0
        assert p.source
    for a in ASIC_PRESETS.values():
        assert a.op_j > 0 and a.source


def test_measure_gpu_energy_degrades_gracefully():
    calls = []
    m = measure_gpu_energy(lambda: calls.append(1))
    try:
        import pynvml  # noqa: F401
        have_nvml = torch.cuda.is_available()
    except ImportError:
        have_nvml = False
    if not have_nvml:
        assert m.energy_j is None and m.reason and calls == []
    else:  # pragma: no cover - only on a CUDA machine with pynvml
        assert (m.energy_j is not None) or m.reason


def test_tech_is_hashable_for_the_price_cache():
    tech = energy_preset("default")
    assert price_row(tech) is price_row(dataclasses.replace(tech))
