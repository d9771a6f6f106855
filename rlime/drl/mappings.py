"""DRL mappings: where DQN's target network and replay memory live, and what that costs.

The DQN agent talks to one small interface -- `store`, `sample`, `target_network`, `sync` --
and the mapping charges everything it causes to the ledger in its own phase (`replay`,
`target_sync`; target forward passes are charged by the arrays themselves in phase `target`).
Charges go through the backend (`rlime.hw.backend`): on the float backend mappings only move
data and nothing is counted.

* ``separate`` (baseline): target network on its own arrays; a sync reads every Q weight out
  through the buffer (one read + sense per Q cell, weight words through the buffer and one
  network hop), RESETs every target cell to Gmin (one full RESET pulse per cell through the
  pulse model, `PulseModel.full_reset`: each cell lands at its own Gmin plus one pulse's
  cycle-to-cycle noise, wears by one pulse; the controller believes it at Gmin), then programs
  every target cell to the Q level with the chip's tuning scheme. Replay in off-chip DRAM: every
  stored transition and every sampled minibatch crosses the DRAM interface.
* ``time`` (default; TIME's DRL-specific mapping as rlime defines it): replay in RRAM
  memory-mode subarrays of the same bank (no off-chip traffic); target arrays share the Q
  periphery by time-multiplexing and are synced in-bank differentially: both arrays are read
  and compared, and only target cells whose level differs are tuned; the comparison read of
  a tuned target cell is the read its write-verify starts from (charged once).
* ``shared``: no target arrays; the target values come from the Q arrays as they are before
  the current update (target period 1). No sync writes, half the weight arrays -- a different
  algorithm from DQN (learning is less stable), labelled as such. Replay as in ``time``.

Replay bits: a stored transition costs the buffer's own bytes per transition; a sampled
minibatch costs the bytes of the batch delivered to the periphery (plus the same bits written
into the on-chip buffer).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn

from rlime.common.errors import lookup
from rlime.hw.backend import Backend
from rlime.hw.chip import Chip
from rlime.hw.layers import sync_weights

MAPPINGS = ("time", "separate", "shared")


class Replay(Protocol):
    """What a mapping needs of a replay buffer (agents.replay.ReplayBuffer is one)."""

    bytes_per_transition: float

    def add(self, obs, actions, rewards, next_obs, terminated, truncated, valid=None) -> None: ...

    def sample(self, batch_size: int, device: Any = "cpu") -> dict[str, torch.Tensor]: ...


class Mapping:
    """Base class; see the module docstring for what each mapping does and charges."""

    name = ""
    replay_write, replay_read = "rram_memory_write_bits", "rram_memory_read_bits"
    is_dqn = True                     # False: a different algorithm (no separate target)

    def __init__(self, q: nn.Module, backend: Backend) -> None:
        self.q = q
        self.backend = backend
        self.target = self._make_target()

    def _make_target(self) -> nn.Module:
        with self.backend.phase("program"):
            target = self.backend.copy(self.q)
        target.requires_grad_(False)
        return target

    def store(self, replay: Replay, obs, actions, rewards, next_obs, terminated, truncated,
              valid: np.ndarray | None = None) -> None:
        replay.add(obs, actions, rewards, next_obs, terminated, truncated, valid=valid)
        stored = len(actions) if valid is None else int(np.count_nonzero(valid))
        bits = int(round(8 * replay.bytes_per_transition * stored))
        self.backend.charge(self.replay_write, bits, "replay")

    def sample(self, replay: Replay, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
        batch = replay.sample(batch_size, device)
        bits = 8 * sum(t.numel() * t.element_size() for t in batch.values())
        self.backend.charge(self.replay_read, bits, "replay")
        self.backend.charge("buffer_bits", bits, "replay")
        return batch

    def target_network(self) -> nn.Module:
        return self.target

    def sync(self) -> None:
        with self.backend.phase("target_sync"):
            self.backend.copy_weights(self.q, self.target, self._sync_arrays)

    def _sync_arrays(self, chip: Chip, q_layers, target_layers) -> None:
        """Program the target arrays to the Q arrays' levels, charging what this mapping costs."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What to record in config.toml and the leaderboard."""
        return {"name": self.name,
                "replay": "off-chip DRAM" if self.replay_write == "dram_bits" else "RRAM memory subarrays",
                "target_arrays": self.target is not self.q, "is_dqn": self.is_dqn}


def _cells(layers) -> int:
    return sum(layer.cell_u.numel() for layer in layers)


def _weight_bits(chip: Chip) -> int:
    """Bits of one weight word read out of the arrays: the level index plus a sign bit."""
    return math.ceil(math.log2(chip.cfg.device.levels)) + 1


class SeparateMapping(Mapping):
    name = "separate"
    replay_write = replay_read = "dram_bits"

    def _sync_arrays(self, chip: Chip, q_layers, target_layers) -> None:
        ledger = chip.ledger
        cells = _cells(q_layers)
        ledger.add("verify_reads", cells)  # read every Q cell out
        words = sum(layer.weight.numel() for layer in q_layers) * _weight_bits(chip)
        ledger.add("buffer_bits", words)
        ledger.add("noc_bit_hops", words)
        model = chip.pulse_model
        for layer in target_layers:  # one full RESET pulse per target cell
            cells = layer.array.cells
            counts = model.full_reset(cells, chip.generator)
            layer.cell_u, layer.cell_pulses, layer.cell_stuck = cells.u, cells.pulses, cells.stuck
            layer.cell_belief = layer.cell_u_min.clone()
            ledger.add("reset_pulses", counts.reset_pulses)
            ledger.add_tensor("reset_pulse_siemens", counts.reset_siemens)
            layer.weight.data = layer.realised()
        sync_weights(chip, q_layers, target_layers)


class TimeMapping(Mapping):
    name = "time"

    def _sync_arrays(self, chip: Chip, q_layers, target_layers) -> None:
        # read both arrays in-bank and compare levels; tune only cells that differ, the
        # comparison read of a tuned cell being the read its verify starts from
        chip.ledger.add("verify_reads", _cells(q_layers) + _cells(target_layers))
        sync_weights(chip, q_layers, target_layers, read_taken=True)


class SharedMapping(Mapping):
    name = "shared"
    is_dqn = False

    def _make_target(self) -> nn.Module:
        return self.q

    def target_network(self) -> nn.Module:
        return self.q

    def sync(self) -> None:
        """Nothing to do: the target is the Q arrays themselves."""


def make_mapping(name: str, q: nn.Module, backend: Backend) -> Mapping:
    kinds = {"time": TimeMapping, "separate": SeparateMapping, "shared": SharedMapping}
    return lookup(kinds, name, "mapping")(q, backend)
