"""rlime: reinforcement learning trained in memory on a simulated RRAM crossbar (TIME, DAC 2017).

The public API puts any PyTorch network on the simulated chip::

    import torch, torch.nn as nn, rlime

    chip = rlime.Chip(rlime.hardware_preset("default"), seed=0)     # arrays, periphery, ledger
    net = rlime.to_rram(nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)), chip)
    opt = rlime.TunedOptimizer(torch.optim.SGD(net.parameters(), lr=0.05), net, chip)
    ...                                   # forward, loss.backward(), opt.step() as usual
    joules = rlime.price(chip.ledger.snapshot(), rlime.energy_preset("default"))

`to_rram` programs the network's weights into crossbar arrays (conductance pairs); the forward
pass runs as MVMs on them, the backward pass through the transposed arrays, and
`TunedOptimizer.step()` tunes the update into the cells with programming pulses. Every
operation is counted in the chip's `Ledger` (by phase and kind); `price` turns a
`LedgerSnapshot` into joules by category under an energy preset.

Layers, each importing only those below it: `rlime.harness`/`rlime.bench` (runs, suites,
reports) -> `agents`/`envs` -> `rlime.drl` (DQN mappings and phases) -> `rlime.cost` (energy,
baselines, wear) -> `rlime.hw` (device physics, tuning, crossbar arrays, ledger, chip, torch
layers) -> `rlime.common`. Names here load lazily, so `import rlime` alone imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    "Chip": ("rlime.hw.chip", "Chip"),
    "HardwareConfig": ("rlime.hw.config", "HardwareConfig"),
    "DeviceConfig": ("rlime.hw.config", "DeviceConfig"),
    "TileConfig": ("rlime.hw.config", "TileConfig"),
    "ConverterConfig": ("rlime.hw.config", "ConverterConfig"),
    "TuningConfig": ("rlime.hw.config", "TuningConfig"),
    "hardware_preset": ("rlime.hw.config", "preset"),
    "to_rram": ("rlime.hw.layers", "to_rram"),
    "TunedOptimizer": ("rlime.hw.optim", "TunedOptimizer"),
    "Ledger": ("rlime.hw.ledger", "Ledger"),
    "LedgerSnapshot": ("rlime.hw.counts", "LedgerSnapshot"),
    "Phases": ("rlime.hw.counts", "Phases"),
    "TRAINING_PHASES": ("rlime.hw.counts", "TRAINING_PHASES"),
    "energy_preset": ("rlime.cost.energy", "energy_preset"),
    "price": ("rlime.cost.energy", "price"),
    "ConfigError": ("rlime.common.errors", "ConfigError"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'rlime' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
