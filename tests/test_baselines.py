"""Tests for the GPU baseline's launch floor, idle power, band, and the --measure-gpu refusal."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from rlime.cost.baselines import (GPU_PRESETS, compare, dqn_launches, gpu_band, gpu_energy)
from rlime.cost.energy import energy_preset
from rlime.drl.phases import DQN_PHASES
from rlime.harness import perf
from rlime.hw.counts import LedgerSnapshot

# one DQN step of a 4-256-256-2 network: batch-1 act, batch-64 update
M = 4 * 256 + 256 * 256 + 256 * 2


def _step(act_batch: int = 1, batch: int = 64) -> LedgerSnapshot:
    return LedgerSnapshot.from_dict({
        "act": {"mvm_macs": act_batch * M},
        "forward": {"mvm_macs": batch * M},
        "target": {"mvm_macs": batch * M},
        "backward": {"mvm_macs": batch * (M - 4 * 256), "gradient_macs": batch * M},
        "update": {"optimizer_ops": 13 * 70_000, "set_pulses": 1000,
                   "set_pulse_siemens": 1e-2, "verify_reads": 3000},
    }, DQN_PHASES)


def test_launch_counts_follow_the_ledger():
    s = _step()
    n = dqn_launches(s, updates=1, layers=3, minibatch=64, act_batch=1, syncs=0)
    assert n["act"] == 5 + 3 and n["forward"] == 5 + 4 and n["target"] == 5 + 4
    assert n["backward"] == 13 and n["update"] == 10 and n["replay"] == 5
    assert n["target_sync"] == 0 and n["program"] == 0
    ten = dqn_launches(LedgerSnapshot(10 * s.table, DQN_PHASES), 10, 3, 64, syncs=2)
    assert ten["act"] == 10 * n["act"] and ten["target_sync"] == 2 * 6
    with pytest.raises(ValueError):
        dqn_launches(s, -1, 3, 64)


def test_launch_floor_dominates_a_batch1_act_step_and_compute_a_large_batch():
    act_only = LedgerSnapshot.from_dict({"act": {"mvm_macs": M}}, DQN_PHASES)
    for name in GPU_PRESETS:
        g = gpu_energy(act_only, 64, name, 0.3, launches={"act": 8})
        assert g["seconds"] > 5e-6 and g["launch_bound_phases"] == ["act"]
        assert g["seconds"] == pytest.approx(8 * 5e-6)
        # without the floor it was a sub-microsecond roofline
        assert gpu_energy(act_only, 64, name, 0.3)["seconds"] < 1e-6
    big = LedgerSnapshot.from_dict({"forward": {"mvm_macs": 10**11},
                                    "backward": {"mvm_macs": 10**11, "gradient_macs": 10**11}},
                                   DQN_PHASES)
    g = gpu_energy(big, 4096, "v100", 0.3, launches={"forward": 9, "backward": 13})
    assert set(g["compute_bound_phases"]) == {"forward", "backward"}
    assert not g["launch_bound_phases"]


def test_idle_power_is_charged_over_the_launch_bound_time():
    act_only = LedgerSnapshot.from_dict({"act": {"mvm_macs": M}}, DQN_PHASES)
    g = gpu_energy(act_only, 64, "h100-sxm", 0.3, launches={"act": 8})
    p = GPU_PRESETS["h100-sxm"]
    active = g["active_seconds"]
    assert g["idle_j"] == pytest.approx(p.idle_w * (8 * 5e-6 - active))
    t_compute = 2 * M / (0.3 * p.peak_fp32_flops)
    assert g["active_j"] == pytest.approx(p.idle_w * active
                                          + 0.3 * (p.board_power_w - p.idle_w) * t_compute)
    assert g["energy_j"] == pytest.approx(g["idle_j"] + g["active_j"])
    assert g["energy_j"] > p.idle_w * 8 * 5e-6  # at least idle power over the whole time
    # a longer launch latency costs idle power linearly
    slow = gpu_energy(act_only, 64, "h100-sxm", 0.3, launches={"act": 8}, launch_latency_s=1e-5)
    assert slow["idle_j"] == pytest.approx(p.idle_w * (8e-5 - active))
    for q in GPU_PRESETS.values():
        assert 0 < q.idle_w < q.board_power_w and q.idle_source


def test_band_moves_the_right_way_with_utilisation_and_generation():
    s = LedgerSnapshot(1000 * _step().table, DQN_PHASES)
    tech = energy_preset("default")
    launches = dqn_launches(s, 1000, 3, 64)
    c = compare(s, tech, 64, launches=launches, steps=1000)
    band = c["gpu_band"]
    assert band["central"]["gpu"] == "titanx-maxwell" and band["central"]["utilisation"] == 0.3
    assert band["central"]["launch_floor"] and band["central"]["launch_latency_s"] == 5e-6
    assert band["low"] <= band["central"]["gpu_over_rram"] <= band["high"]
    assert c["gpu_over_rram"] == pytest.approx(band["central"]["gpu_over_rram"])
    grid = {(r["gpu"], r["utilisation"]): r["gpu_over_rram"] for r in band["grid"]}
    assert len(grid) == len(GPU_PRESETS) * 3
    for name in GPU_PRESETS:  # less utilisation: more GPU energy
        lo, mid, hi = grid[(name, 0.05)], grid[(name, 0.3)], grid[(name, 1.0)]
        assert lo >= mid * (1 - 1e-12) and mid >= hi * (1 - 1e-12)
    # compute-bound work: a newer generation spends less energy per FLOP at peak
    big = LedgerSnapshot.from_dict({"forward": {"mvm_macs": 10**11, "set_pulses": 10},
                                    "backward": {"mvm_macs": 10**11, "gradient_macs": 10**11}},
                                   DQN_PHASES)
    b = gpu_band(big, 1.0, 4096, utilisations=(1.0,))
    r = {row["gpu"]: row["gpu_over_rram"] for row in b["grid"]}
    assert r["titanx-maxwell"] > r["v100"] > r["h100-sxm"]
    assert b["central"]["launch_floor"] is False


def test_band_is_none_without_rram_energy():
    band = compare(LedgerSnapshot.zeros(DQN_PHASES), energy_preset("default"), 32)["gpu_band"]
    assert band["low"] is None and band["central"]["gpu_over_rram"] is None


def test_measure_gpu_refuses_without_pynvml(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert perf.main(["--measure-gpu"]) == 2
    assert "pynvml" in capsys.readouterr().err


def test_measure_gpu_refuses_without_cuda(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pynvml", types.ModuleType("pynvml"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert perf.main(["--measure-gpu"]) == 2
    assert "CUDA" in capsys.readouterr().err


def test_measure_gpu_refusal_exit_status_from_the_command_line():
    import subprocess
    if torch.cuda.is_available():  # pragma: no cover - only on a CUDA machine
        pytest.skip("a CUDA device is present")
    r = subprocess.run([sys.executable, "-m", "rlime.perf", "--measure-gpu"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and ("pynvml" in r.stderr or "CUDA" in r.stderr)


def test_optimizer_state_in_sram_is_traffic_for_both_baselines():
    from rlime.cost.baselines import asic_energy, gpu_bytes
    base = {"update": {"optimizer_ops": 1000, "buffer_bits": 8000}}
    more = {"update": {"optimizer_ops": 1000, "buffer_bits": 8000, "sram_bits": 64000}}
    a, b = (LedgerSnapshot.from_dict(d, DQN_PHASES) for d in (base, more))
    assert gpu_bytes(b, 32).sum() - gpu_bytes(a, 32).sum() == 64000 / 8
    tech = energy_preset("default")
    asic = asic_energy(b, tech)["edram_j"] - asic_energy(a, tech)["edram_j"]
    assert asic == pytest.approx(64000 * 0.08e-12)
