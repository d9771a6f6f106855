"""Tests for rlime.hw.ledger: the Ledger API, and the operation counts RRAM layers charge, worked out
by hand from the periphery model (docs/design.md) (bit-serial DAC: an n-bit input takes ceil(n / dac_bits)
array cycles, each driving every row of every column tile and converting every column of every
row tile; both cells of each differential pair are read; tile partial sums added digitally)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from rlime.hw.chip import Chip
from rlime.hw.config import preset
from rlime.hw.layers import RRAMConv2d, RRAMLinear, to_rram
from rlime.drl.phases import DQN_PHASES
from rlime.hw.counts import ALL_KINDS, CONDUCTANCE_KINDS, KINDS, TRAINING_PHASES, LedgerSnapshot, Phases
from rlime.hw.ledger import Ledger

PHASES = DQN_PHASES.names

# --------------------------------------------------------------------------- Ledger API


def test_add_and_add_tensor_both_land_in_the_current_phase():
    ledger = Ledger(DQN_PHASES)
    assert ledger.phase == "forward"
    ledger.add("cell_reads", 7)
    ledger.add_tensor("set_pulses", torch.tensor(3.0))
    ledger.add_tensor("set_pulses", torch.tensor(2, dtype=torch.int64))
    ledger.add("cell_reads", 5, phase="act")
    snap = ledger.snapshot()
    assert snap.get("forward", "cell_reads") == 7
    assert snap.get("act", "cell_reads") == 5
    assert snap.get("forward", "set_pulses") == 5
    assert snap.count("cell_reads") == 12
    assert snap.count("cell_reads", phases=("act",)) == 5
    assert snap.writes == 5
    # a kind held both ways sums both stores
    ledger.add("reset_pulses", 4, phase="update")
    ledger.add_tensor("reset_pulses", torch.tensor(6.0), phase="update")
    assert ledger.snapshot().get("update", "reset_pulses") == 10
    assert ledger.snapshot().writes == 15


def test_in_phase_charges_that_phase_and_restores_even_on_error():
    ledger = Ledger(DQN_PHASES)
    with ledger.in_phase("target"):
        ledger.add("adc_conversions", 2)
        with ledger.in_phase("backward"):
            ledger.add("adc_conversions", 3)
        ledger.add("adc_conversions", 4)
    assert ledger.phase == "forward"
    with pytest.raises(RuntimeError):
        with ledger.in_phase("replay"):
            raise RuntimeError("boom")
    assert ledger.phase == "forward"
    snap = ledger.snapshot()
    assert snap.get("target", "adc_conversions") == 6
    assert snap.get("backward", "adc_conversions") == 3


@pytest.mark.parametrize("call, allowed", [
    (lambda l: l.add("cell_reads", 1, phase="warmup"), PHASES),
    (lambda l: l.add("cell_writes", 1), ALL_KINDS),
    (lambda l: l.add_tensor("pulses", torch.tensor(1.0)), ALL_KINDS),
    (lambda l: l.in_phase("training").__enter__(), PHASES),
    (lambda l: l.snapshot().get("forward", "nope"), ALL_KINDS),
    (lambda l: LedgerSnapshot.from_dict({"nowhere": {"cell_reads": 1}}, DQN_PHASES), PHASES),
    (lambda l: l.snapshot().count("pulses"), ALL_KINDS),
    (lambda l: l.snapshot().count("set_pulses", phases=("training",)), PHASES),
])
def test_unknown_phase_or_kind_raises_value_error_listing_allowed_names(call, allowed):
    ledger = Ledger(DQN_PHASES)
    with pytest.raises(ValueError) as err:
        call(ledger)
    msg = str(err.value)
    for name in allowed:
        assert name in msg


def test_phase_axis_is_the_workloads_vocabulary():
    """A network trained by backpropagation has no DQN phases; snapshots of different phase
    axes do not mix, and a bad role is refused naming the roles."""
    ledger = Ledger()
    assert ledger.phases == TRAINING_PHASES
    assert ledger.snapshot().table.shape == (4, len(ALL_KINDS))
    with pytest.raises(ValueError, match="act"):
        ledger.add("cell_reads", 1, phase="act")
    with pytest.raises(ValueError, match="different phases"):
        ledger.snapshot() - Ledger(DQN_PHASES).snapshot()
    assert DQN_PHASES.with_role("copy", "storage") == ("target_sync", "replay")
    with pytest.raises(ValueError, match="inference"):
        Phases((("act", "acting"),))


def test_snapshot_is_frozen_and_differences_give_what_happened_since():
    ledger = Ledger(DQN_PHASES)
    ledger.add("dac_conversions", 10)
    before = ledger.snapshot()
    ledger.add("dac_conversions", 5)
    ledger.add_tensor("verify_reads", torch.tensor(8.0), phase="update")
    after = ledger.snapshot()
    assert before.get("forward", "dac_conversions") == 10  # unchanged by later adds
    diff = after - before
    assert diff.get("forward", "dac_conversions") == 5
    assert diff.get("update", "verify_reads") == 8
    assert np.array_equal((diff + before).table, after.table)
    assert np.array_equal(LedgerSnapshot.zeros(DQN_PHASES).table, np.zeros_like(after.table))


def test_as_dict_from_dict_round_trip():
    ledger = Ledger(DQN_PHASES)
    ledger.add("cell_reads", 123456789012, phase="forward")
    ledger.add("gradient_macs", 42, phase="backward")
    ledger.add_tensor("set_pulses", torch.tensor(17.0), phase="update")
    ledger.add_tensor("set_pulse_siemens", torch.tensor(3.25e-5, dtype=torch.float64),
                      phase="update")
    snap = ledger.snapshot()
    data = snap.as_dict()
    assert data == {"forward": {"cell_reads": 123456789012},
                    "backward": {"gradient_macs": 42},
                    "update": {"set_pulses": 17, "set_pulse_siemens": pytest.approx(3.25e-5)}}
    assert isinstance(data["update"]["set_pulses"], int)
    assert isinstance(data["update"]["set_pulse_siemens"], float)
    assert np.array_equal(LedgerSnapshot.from_dict(data, DQN_PHASES).table, snap.table)


def test_state_dict_round_trip_and_shape_check():
    ledger = Ledger(DQN_PHASES)
    ledger.add("buffer_bits", 99, phase="replay")
    ledger.add_tensor("reset_pulses", torch.tensor(4.0), phase="target_sync")
    fresh = Ledger(DQN_PHASES)
    fresh.add("buffer_bits", 1)  # overwritten by the load
    fresh.load_state_dict(ledger.state_dict())
    assert np.array_equal(fresh.snapshot().table, ledger.snapshot().table)
    with pytest.raises(ValueError):
        fresh.load_state_dict({"table": np.zeros((2, 2))})


def test_conductance_kinds_are_separate_from_counts():
    assert set(CONDUCTANCE_KINDS).isdisjoint(KINDS)
    assert ALL_KINDS == KINDS + CONDUCTANCE_KINDS


# --------------------------------------------------------------------------- layer counts

# default preset, both directions: input_bits = 8 on 1-bit DACs -> 8 array cycles per vector
CYCLES = 8
BITS = 8


def _chip(**overrides) -> Chip:
    # MVM counts do not depend on the tuning scheme; open-loop programs the initial weights
    # fastest (the default periphery is kept)
    cfg = preset("default").with_overrides({"tuning.scheme": "open-loop", **overrides})
    assert cfg.forward.cycles() == CYCLES and cfg.backward.cycles() == CYCLES
    return Chip(cfg, seed=0, phases=DQN_PHASES)


def _diff(chip: Chip, fn) -> LedgerSnapshot:
    before = chip.ledger.snapshot()
    fn()
    return chip.ledger.snapshot() - before


def _only_phases(diff: LedgerSnapshot, phases: tuple[str, ...]) -> None:
    for p, phase in enumerate(PHASES):
        if phase not in phases:
            assert not diff.table[p].any(), f"unexpected charges in phase {phase}"


def test_linear_200_to_300_counts_by_hand():
    torch.manual_seed(0)
    chip = _chip()
    layer = to_rram(nn.Linear(200, 300), chip)
    assert isinstance(layer, RRAMLinear)
    batch = 4
    x = torch.randn(batch, 200, requires_grad=True)

    # 128 x 128 tiles: in = 200 rows -> ceil(200/128) = 2 row tiles; out = 300 columns ->
    # ceil(300/128) = 3 column tiles.
    fwd = _diff(chip, lambda: layer(x))
    _only_phases(fwd, ("forward",))
    assert fwd.writes == 0
    expect_fwd = {
        # rows x col tiles x cycles x batch = 200 x 3 x 8 x 4 = 19 200
        "dac_conversions": 200 * 3 * CYCLES * batch,
        # cols x row tiles x cycles x batch = 300 x 2 x 8 x 4 = 19 200
        "adc_conversions": 300 * 2 * CYCLES * batch,
        "shift_adds": 300 * 2 * CYCLES * batch,  # one per ADC conversion
        # pair x rows x cols x cycles x batch = 2 x 200 x 300 x 8 x 4 = 3 840 000
        "cell_reads": 2 * 200 * 300 * CYCLES * batch,
        # (row tiles - 1) x out x batch = 1 x 300 x 4 = 1 200
        "partial_sum_adds": (2 - 1) * 300 * batch,
        # input and output vectors, 8 bits a value: (200 + 300) x 8 x 4 = 16 000
        "buffer_bits": (200 + 300) * BITS * batch,
        "digital_ops": 300 * batch,  # bias add
    }
    assert expect_fwd["dac_conversions"] == 19_200 and expect_fwd["cell_reads"] == 3_840_000
    for kind, value in expect_fwd.items():
        assert fwd.get("forward", kind) == value, kind
    assert fwd.get("forward", "gradient_macs") == 0

    y = layer(x)
    bwd = _diff(chip, lambda: y.sum().backward())
    _only_phases(bwd, ("backward",))
    # transposed, roles swapped: each of the 300 error values drives its column line in each of
    # the 2 row tiles the line crosses; each of the 200 row lines is sensed in each of the 3
    # column tiles; the 3 column tiles' partial sums are added digitally.
    expect_bwd = {
        "dac_conversions": 300 * 2 * CYCLES * batch,      # 300 x 2 x 8 x 4 = 19 200
        "adc_conversions": 200 * 3 * CYCLES * batch,      # 200 x 3 x 8 x 4 = 19 200
        "shift_adds": 200 * 3 * CYCLES * batch,
        "cell_reads": 2 * 300 * 200 * CYCLES * batch,     # 3 840 000
        "partial_sum_adds": (3 - 1) * 200 * batch,        # (col tiles - 1) x in x batch = 1 600
        "buffer_bits": (300 + 200) * BITS * batch,        # 16 000
        "gradient_macs": batch * 200 * 300,               # outer products: 4 x 200 x 300 = 240 000
    }
    for kind, value in expect_bwd.items():
        assert bwd.get("backward", kind) == value, kind
    assert bwd.writes == 0
    assert x.grad is not None and layer.weight.grad is not None


def test_linear_backward_without_input_gradient_charges_only_the_weight_gradient():
    torch.manual_seed(0)
    chip = _chip()
    layer = to_rram(nn.Linear(200, 300), chip)
    y = layer(torch.randn(4, 200))  # the input needs no gradient: no transposed MVM
    bwd = _diff(chip, lambda: y.sum().backward())
    assert bwd.get("backward", "gradient_macs") == 4 * 200 * 300
    for kind in ("dac_conversions", "adc_conversions", "cell_reads", "partial_sum_adds"):
        assert bwd.get("backward", kind) == 0


def test_snapshot_difference_is_one_forward():
    torch.manual_seed(1)
    chip = _chip()
    layer = to_rram(nn.Linear(200, 300), chip)
    x = torch.randn(4, 200)
    first = _diff(chip, lambda: layer(x))
    second = _diff(chip, lambda: layer(x))
    assert np.array_equal(first.table, second.table)
    assert first.get("forward", "cell_reads") == 2 * 200 * 300 * CYCLES * 4
    # and the phase follows the ledger: the same forward under "act"
    with chip.ledger.in_phase("act"):
        act = _diff(chip, lambda: layer(x))
    assert act.get("act", "cell_reads") == first.get("forward", "cell_reads")
    assert act.get("forward", "cell_reads") == 0


@pytest.mark.parametrize("tile,row_tiles", [(128, 1), (16, 3)])
def test_conv2d_counts_per_output_position(tile, row_tiles):
    # Conv2d 3 -> 5 channels, 3x3 kernel, padding 1, 6x6 input: 6x6 = 36 output positions, each
    # an MVM of 3*3*3 = 27 im2col rows by 5 columns. Channel-aligned row tiles hold
    # floor(tile / 9) whole channels: 128 -> all 3 channels in 1 row tile; 16 -> 1 channel per
    # tile, 3 row tiles. 5 outputs fit one column tile either way.
    torch.manual_seed(2)
    chip = _chip(**{"tile.rows": tile, "tile.cols": tile})
    layer = to_rram(nn.Conv2d(3, 5, 3, padding=1), chip)
    assert isinstance(layer, RRAMConv2d)
    batch, pos, rows, cols = 2, 36, 27, 5
    x = torch.randn(batch, 3, 6, 6, requires_grad=True)
    fwd = _diff(chip, lambda: layer(x))
    _only_phases(fwd, ("forward",))
    expect_fwd = {
        "dac_conversions": rows * 1 * CYCLES * pos * batch,           # 15 552
        "adc_conversions": cols * row_tiles * CYCLES * pos * batch,   # 2 880 x row tiles
        "shift_adds": cols * row_tiles * CYCLES * pos * batch,
        "cell_reads": 2 * rows * cols * CYCLES * pos * batch,         # 155 520
        "partial_sum_adds": (row_tiles - 1) * cols * pos * batch,     # 0 or 720
        "buffer_bits": (rows + cols) * BITS * pos * batch,
        "digital_ops": cols * pos * batch,                            # bias add
    }
    for kind, value in expect_fwd.items():
        assert fwd.get("forward", kind) == value, kind
    y = layer(x)
    bwd = _diff(chip, lambda: y.sum().backward())
    _only_phases(bwd, ("backward",))
    expect_bwd = {
        # the errors drive the 5 column lines of every row tile; 27 row lines sensed, 1 col tile
        "dac_conversions": cols * row_tiles * CYCLES * pos * batch,
        "adc_conversions": rows * 1 * CYCLES * pos * batch,
        "cell_reads": 2 * rows * cols * CYCLES * pos * batch,
        "partial_sum_adds": 0,                                        # (1 column tile - 1) x ...
        "gradient_macs": batch * pos * rows * cols,                   # 9 720
    }
    for kind, value in expect_bwd.items():
        assert bwd.get("backward", kind) == value, kind


def test_programming_is_charged_to_phase_program():
    torch.manual_seed(3)
    chip = _chip(**{"tuning.scheme": "write-verify"})
    before = chip.ledger.snapshot()
    layer = to_rram(nn.Linear(20, 10), chip)
    diff = chip.ledger.snapshot() - before
    _only_phases(diff, ("program",))
    assert diff.writes == int(layer.cell_pulses.sum()) > 0
    # write-verify: one initial read per programmed cell plus one per pulse
    assert diff.count("verify_reads") >= diff.writes


# ------------------------------------------------------------------ what "writes" counts


def test_writes_split_into_weight_programming_copy_pulses_and_memory_bits_exactly():
    # every phase of the DQN axis gets pulses and memory-mode bits, so each category is seen to
    # take exactly its share and nothing is lost or counted twice
    rng = np.random.default_rng(0)
    data = {p: {"set_pulses": int(rng.integers(1, 10**6)),
                "reset_pulses": int(rng.integers(1, 10**6)),
                "rram_memory_write_bits": int(rng.integers(1, 10**9))}
            for p in DQN_PHASES.names}
    snap = LedgerSnapshot.from_dict(data, DQN_PHASES)
    pulses = {p: row["set_pulses"] + row["reset_pulses"] for p, row in data.items()}
    bits = sum(row["rram_memory_write_bits"] for row in data.values())
    assert snap.writes == sum(v for p, v in pulses.items() if p != "target_sync")
    assert snap.copy_pulses == pulses["target_sync"]
    assert snap.memory_write_bits == bits
    assert snap.writes + snap.copy_pulses == snap.weight_writes == sum(pulses.values())
    assert snap.pulses() == snap.weight_writes and snap.pulses(("program", "update")) == (
        pulses["program"] + pulses["update"])
    # the split follows the phase roles, not DQN's names: a copy-role phase of another
    # vocabulary is a copy too, and an axis without one has no copy pulses
    other = Phases((("init", "program"), ("learn", "update"), ("mirror", "copy")))
    s = LedgerSnapshot.from_dict({"init": {"set_pulses": 3}, "learn": {"reset_pulses": 4},
                                  "mirror": {"set_pulses": 5, "rram_memory_write_bits": 6}}, other)
    assert (s.writes, s.copy_pulses, s.memory_write_bits, s.weight_writes) == (7, 5, 6, 12)
    t = LedgerSnapshot.from_dict({"update": {"set_pulses": 2}}, TRAINING_PHASES)
    assert (t.writes, t.copy_pulses, t.memory_write_bits) == (2, 0, 0)
    # a realistic DQN episode: update pulses are the writes; syncs and replay bits are apart
    episode = LedgerSnapshot.from_dict({
        "update": {"set_pulses": 600, "reset_pulses": 400},
        "target_sync": {"set_pulses": 70, "reset_pulses": 30},
        "replay": {"rram_memory_write_bits": 10**7}}, DQN_PHASES)
    assert (episode.writes, episode.copy_pulses, episode.memory_write_bits) == (1000, 100, 10**7)
    assert LedgerSnapshot.zeros(DQN_PHASES).writes == 0
