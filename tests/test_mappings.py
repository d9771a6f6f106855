"""DRL mappings: replay and target-sync costs of `separate`, `time` and `shared` worked by hand
on small shapes, and the promise that a mapping changes cost, not learning."""

from __future__ import annotations

import dataclasses

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from agents.replay import ReplayBuffer
from rlime.hw.backend import FloatBackend, RRAMBackend
from rlime.hw.chip import Chip
from rlime.hw.config import DeviceConfig, HardwareConfig, TuningConfig, preset
from rlime.hw.layers import crossbar_layers, program_weights, to_rram
from rlime.drl.phases import DQN_PHASES
from rlime.drl.mappings import make_mapping
from rlime.harness.cli import main

LEVELS = 16  # 15 pulses span the range: counts stay small enough to reason about


def exact_chip() -> Chip:
    """Noise-free linear cells, exact open-loop tuning, no residual: pulses = level changes."""
    cfg = HardwareConfig(
        device=DeviceConfig(levels=LEVELS, response="linear", nonlinearity_up=0,
                            nonlinearity_down=0, c2c_sigma=0.0),
        forward=preset("ideal").forward, backward=preset("ideal").backward,
        tuning=TuningConfig(scheme="open-loop", residual=False))
    return Chip(cfg, seed=0, phases=DQN_PHASES)


def q_network(chip: Chip) -> nn.Module:
    torch.manual_seed(0)
    return to_rram(nn.Linear(3, 2), chip)


def delta(chip: Chip, fn) -> dict:
    before = chip.ledger.snapshot()
    fn()
    return (chip.ledger.snapshot() - before).as_dict()


def move_q_cells(chip: Chip, q: nn.Module, levels: dict[int, int]) -> None:
    """Move the listed Q weights (flat index -> signed level change) by tuning."""
    layer = crossbar_layers(q)[0]
    step = float(layer.weight_scale) / (LEVELS - 1)
    current = layer.weight.detach().reshape(-1).clone()
    desired = current.clone()
    for i, change in levels.items():
        desired[i] += change * step
    with chip.ledger.in_phase("update"):
        program_weights(chip, [(layer, desired, current)])


def same_weights(a, b) -> None:
    """Equal up to float32 rounding (1/15 of the range is not exact in binary)."""
    torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=1e-6)


def level_map(layer) -> torch.Tensor:
    return torch.round(layer.cell_u * (LEVELS - 1))


def test_time_sync_programs_only_the_cells_that_differ():
    chip = exact_chip()
    q = q_network(chip)
    mapping = make_mapping("time", q, RRAMBackend(chip))
    target = crossbar_layers(mapping.target_network())[0]
    same_weights(target, crossbar_layers(q)[0])  # programmed at setup
    # two weights move up by 2 levels: positive weights change their G+ cell, negative ones
    # their G- cell (or both when the sign flips); count the cells that now differ by hand
    move_q_cells(chip, q, {0: 2, 3: -1})
    differ = level_map(crossbar_layers(q)[0]) != level_map(target)
    k = int(differ.sum())
    level_steps = int((level_map(crossbar_layers(q)[0]) - level_map(target)).abs().sum())
    pulses_before = target.cell_pulses.clone()
    cost = delta(chip, mapping.sync)["target_sync"]
    assert k >= 2
    assert int(((target.cell_pulses - pulses_before) > 0).sum()) == k  # k cells programmed
    assert cost.get("set_pulses", 0) + cost.get("reset_pulses", 0) == level_steps
    assert cost["verify_reads"] == 2 * 12  # read Q and target: 2 arrays x 6 weights x 2 cells
    same_weights(target, crossbar_layers(q)[0])
    # nothing differs any more: a second sync reads but writes nothing
    again = delta(chip, mapping.sync)["target_sync"]
    assert again == {"verify_reads": 24}


def test_time_sync_charges_one_read_per_cell_with_a_verified_scheme():
    """The comparison read of a tuned target cell is the read its write-verify starts from:
    reads = every Q and target cell once + one verify read after each pulse."""
    cfg = exact_chip().cfg
    verified = TuningConfig(scheme="write-verify", tolerance_levels=0.4, residual=False)
    chip = Chip(dataclasses.replace(cfg, tuning=verified),
                seed=0, phases=DQN_PHASES)
    q = q_network(chip)
    mapping = make_mapping("time", q, RRAMBackend(chip))
    move_q_cells(chip, q, {0: 2, 3: -1})
    cost = delta(chip, mapping.sync)["target_sync"]
    pulses = cost.get("set_pulses", 0) + cost.get("reset_pulses", 0)
    assert pulses >= 2
    assert cost["verify_reads"] == 2 * 12 + pulses


def test_separate_sync_resets_and_reprograms_every_cell():
    chip = exact_chip()
    q = q_network(chip)
    mapping = make_mapping("separate", q, RRAMBackend(chip))
    target = crossbar_layers(mapping.target_network())[0]
    move_q_cells(chip, q, {1: 1})
    q_levels = level_map(crossbar_layers(q)[0])
    pulses_before = target.cell_pulses.clone()
    cost = delta(chip, mapping.sync)["target_sync"]
    cells, weights = 12, 6
    word = math.ceil(math.log2(LEVELS)) + 1  # level index + sign
    assert cost["verify_reads"] == cells             # every Q cell read out
    assert cost["buffer_bits"] == weights * word     # through the buffer
    assert cost["noc_bit_hops"] == weights * word    # and one hop to the target arrays
    # one RESET per cell, then each cell programmed up from Gmin to its Q level
    assert cost["reset_pulses"] == cells
    assert cost["set_pulses"] == int(q_levels.sum())
    assert torch.all(target.cell_pulses - pulses_before >= 1)  # every cell was written
    same_weights(target, crossbar_layers(q)[0])


def test_shared_has_no_target_arrays_and_never_syncs():
    chip = exact_chip()
    q = q_network(chip)
    before_setup = chip.ledger.snapshot()
    mapping = make_mapping("shared", q, RRAMBackend(chip))
    assert mapping.target_network() is q
    assert (chip.ledger.snapshot() - before_setup).as_dict() == {}  # no target to program
    move_q_cells(chip, q, {0: 3})
    assert delta(chip, mapping.sync) == {}
    assert not mapping.describe()["is_dqn"] and not mapping.describe()["target_arrays"]


def _transitions(n: int, rng: np.random.Generator):
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    return (obs, rng.integers(2, size=n), rng.standard_normal(n).astype(np.float32),
            obs + 1, np.zeros(n, bool), np.zeros(n, bool))


@pytest.mark.parametrize("name,write_kind,read_kind", [
    ("time", "rram_memory_write_bits", "rram_memory_read_bits"),
    ("shared", "rram_memory_write_bits", "rram_memory_read_bits"),
    ("separate", "dram_bits", "dram_bits")])
def test_replay_store_and_sample_are_charged_where_the_replay_lives(name, write_kind, read_kind):
    chip = exact_chip()
    mapping = make_mapping(name, q_network(chip), RRAMBackend(chip))
    replay = ReplayBuffer(100, (4,), np.float32, num_envs=3, seed=0)
    rng = np.random.default_rng(0)
    valid = np.array([True, False, True])
    cost = delta(chip, lambda: mapping.store(replay, *_transitions(3, rng), valid))["replay"]
    stored_bits = round(8 * replay.bytes_per_transition * 2)  # two valid transitions
    assert cost == {write_kind: stored_bits}
    for _ in range(5):
        mapping.store(replay, *_transitions(3, rng), None)
    holder = {}
    cost = delta(chip, lambda: holder.update(mapping.sample(replay, 4, "cpu")))["replay"]
    # obs + next_obs (4 float32 each), action int64, reward float32, done float32 per sample
    batch_bits = 8 * 4 * (16 + 16 + 8 + 4 + 4)
    assert batch_bits == 8 * sum(t.numel() * t.element_size() for t in holder.values())
    if write_kind == read_kind:
        assert cost == {"dram_bits": batch_bits, "buffer_bits": batch_bits}
    else:
        assert cost == {read_kind: batch_bits, "buffer_bits": batch_bits}


def test_float_backend_mapping_copies_without_charging():
    torch.manual_seed(0)
    q = nn.Linear(3, 2)
    mapping = make_mapping("separate", q, FloatBackend())
    with torch.no_grad():
        q.weight.add_(1.0)
    mapping.sync()
    assert torch.equal(mapping.target_network().weight, q.weight)


FAST = ["--env", "CartPole", "--no-progress", "--preset", "ideal", "--total-steps", "900",
        "--set", "agent.hidden=[16, 16]", "--set", "agent.learning_starts=200",
        "--set", "agent.train_freq=20", "--set", "agent.gradient_steps=2",
        "--set", "agent.target_period=100", "--eval-episodes", "0", "--checkpoint-every", "900"]


def _run(tmp_path, mapping):
    run_dir = tmp_path / mapping
    assert main(FAST + ["--mapping", mapping, "--run-dir", str(run_dir)]) == 0
    episodes = [json.loads(x) for x in (run_dir / "episodes.jsonl").read_text().splitlines()]
    return episodes, json.loads((run_dir / "summary.json").read_text())


@pytest.mark.slow  # two 900-step runs; test_shared_is_labelled_... is the fast end-to-end one
def test_ideal_separate_and_time_learn_identically_at_different_cost(tmp_path):
    sep, sep_summary = _run(tmp_path, "separate")
    tim, tim_summary = _run(tmp_path, "time")
    assert [(e["step"], e["return"]) for e in sep] == [(e["step"], e["return"]) for e in tim]
    # same learning, different bill: separate resets and reprograms every target cell
    sep_sync = sep_summary["energy_by_category"]["target_sync"]
    tim_sync = tim_summary["energy_by_category"]["target_sync"]
    assert sep_sync > tim_sync > 0
    assert sep_summary["ledger"]["total"]["replay"].get("dram_bits", 0) > 0
    assert "dram_bits" not in tim_summary["ledger"]["total"]["replay"]
    assert sep_summary["mapping_info"]["is_dqn"] and tim_summary["mapping_info"]["is_dqn"]


def test_shared_is_labelled_a_different_algorithm(tmp_path):
    shared, summary = _run(tmp_path, "shared")
    assert shared and summary["mapping_info"] == {
        "name": "shared", "replay": "RRAM memory subarrays", "target_arrays": False,
        "is_dqn": False}
    assert "target_sync" not in summary["ledger"]["total"]
