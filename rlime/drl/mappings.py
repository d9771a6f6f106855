"""DRL mappings: where DQN's target network and replay memory live, and what that costs.

The DQN agent talks to one small interface -- `store`, `sample`, `target_network`, `sync` --
and the mapping charges everything it causes to the ledger in its own phase (`replay`,
`target_sync`; target forward passes are charged by the arrays themselves in phase `target`).
On the float backend (no chip) mappings only move data; nothing is charged.

* ``separate`` (baseline): target network on its own arrays; a sync reads every Q weight out
  through the buffer (one read + sense per Q cell, weight words through the buffer and one
  network hop), RESETs every target cell to Gmin (one full RESET pulse per cell), then programs
  every target cell to the Q level with the chip's tuning scheme. Replay in off-chip DRAM: every
  stored transition and every sampled minibatch crosses the DRAM interface.
* ``time`` (default; TIME's DRL-specific mapping as rlime defines it): replay in RRAM
  memory-mode subarrays of the same bank (no off-chip traffic); target arrays share the Q
  periphery by time-multiplexing and are synced in-bank differentially: both arrays are read
  and compared, and only target cells whose level differs are tuned.
* ``shared``: no target arrays; the target values come from the Q arrays as they are before
  the current update (target period 1). No sync writes, half the weight arrays -- a different
  algorithm from DQN (learning is less stable), labelled as such. Replay as in ``time``.

Replay bits: a stored transition costs the buffer's own bytes per transition; a sampled
minibatch costs the bytes of the batch delivered to the periphery (plus the same bits written
into the on-chip buffer).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn

from rlime.hw.chip import Chip
from rlime.hw.layers import copy_to_new_arrays, crossbar_layers, sync_weights

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

    def __init__(self, q: nn.Module, chip: Chip | None) -> None:
        self.q = q
        self.chip = chip
        self.target = self._make_target()

    def _make_target(self) -> nn.Module | None:
        if self.chip is None:
            target = copy.deepcopy(self.q)
        else:
            with self.chip.ledger.in_phase("program"):
                target = copy_to_new_arrays(self.q, self.chip)
        target.requires_grad_(False)
        return target

    def _charge(self, kind: str, count: int, phase: str) -> None:
        if self.chip is not None:
            self.chip.ledger.add(kind, count, phase)

    def store(self, replay: Replay, obs, actions, rewards, next_obs, terminated, truncated,
              valid: np.ndarray | None = None) -> None:
        replay.add(obs, actions, rewards, next_obs, terminated, truncated, valid=valid)
        stored = len(actions) if valid is None else int(np.count_nonzero(valid))
        self._charge(self.replay_write, int(round(8 * replay.bytes_per_transition * stored)),
                     "replay")

    def sample(self, replay: Replay, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
        batch = replay.sample(batch_size, device)
        bits = 8 * sum(t.numel() * t.element_size() for t in batch.values())
        self._charge(self.replay_read, bits, "replay")
        self._charge("buffer_bits", bits, "replay")
        return batch

    def target_network(self) -> nn.Module:
        return self.target

    def sync(self) -> None:
        if self.chip is None:
            self.target.load_state_dict(self.q.state_dict())
            return
        with self.chip.ledger.in_phase("target_sync"):
            self._sync_arrays(crossbar_layers(self.q), crossbar_layers(self.target))
        for src, dst in zip(self._digital_params(self.q), self._digital_params(self.target)):
            dst.data.copy_(src.data)  # biases live in digital periphery: a plain copy

    @staticmethod
    def _digital_params(module: nn.Module) -> list[torch.Tensor]:
        return [p for name, p in module.named_parameters() if not name.endswith("weight")]

    def _sync_arrays(self, q_layers, target_layers) -> None:
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

    def _sync_arrays(self, q_layers, target_layers) -> None:
        ledger, chip = self.chip.ledger, self.chip
        cells = _cells(q_layers)
        ledger.add("verify_reads", cells)  # read every Q cell out
        words = sum(layer.weight.numel() for layer in q_layers) * _weight_bits(chip)
        ledger.add("buffer_bits", words)
        ledger.add("noc_bit_hops", words)
        cfg = chip.cfg.device
        for layer in target_layers:  # one full RESET pulse per target cell
            u = layer.cell_u
            ledger.add_tensor("reset_pulse_siemens", (cfg.g_min_siemens + cfg.range_siemens * u).sum())
            layer.cell_u = torch.where(layer.cell_stuck, u, layer.cell_u_min)
            layer.cell_pulses += 1
            if math.isfinite(cfg.endurance_pulses):
                layer.cell_stuck |= layer.cell_pulses >= cfg.endurance_pulses
            layer.weight.data = layer.realised()
        ledger.add("reset_pulses", cells)
        sync_weights(chip, q_layers, target_layers)


class TimeMapping(Mapping):
    name = "time"

    def _sync_arrays(self, q_layers, target_layers) -> None:
        # read both arrays in-bank and compare levels; tune only cells that differ
        self.chip.ledger.add("verify_reads", _cells(q_layers) + _cells(target_layers))
        sync_weights(self.chip, q_layers, target_layers)


class SharedMapping(Mapping):
    name = "shared"
    is_dqn = False

    def _make_target(self) -> nn.Module:
        return self.q

    def target_network(self) -> nn.Module:
        return self.q

    def sync(self) -> None:
        """Nothing to do: the target is the Q arrays themselves."""


def make_mapping(name: str, q: nn.Module, chip: Chip | None) -> Mapping:
    kinds = {"separate": SeparateMapping, "time": TimeMapping, "shared": SharedMapping}
    if name not in kinds:
        raise ValueError(f"unknown mapping {name!r}; choose one of {', '.join(MAPPINGS)}")
    return kinds[name](q, chip)
