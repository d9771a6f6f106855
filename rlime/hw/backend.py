"""Where a network computes: on the RRAM chip (`RRAMBackend`) or in plain float PyTorch
(`FloatBackend`), behind one interface (`Backend`).

Code above the hardware layer places a float network with `place`, copies it onto fresh
hardware with `copy`, wraps its update rule with `optimizer`, copies one network's weights into
another with `copy_weights`, counts operations with `phase` / `charge` and reads the count with
`snapshot`. The float backend does the float-PyTorch equivalent of each and counts nothing: its
snapshots are zero, it has no cells (no pulses, nothing stuck) and no state to checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Callable, ContextManager, Protocol

import torch
import torch.nn as nn

from rlime.common.errors import lookup
from rlime.hw.chip import Chip
from rlime.hw.config import HardwareConfig
from rlime.hw.layers import CrossbarLayer, copy_to_new_arrays, crossbar_layers, to_rram
from rlime.hw.counts import TRAINING_PHASES, LedgerSnapshot, Phases
from rlime.hw.optim import TunedOptimizer
from rlime.hw.probe import sync_gap_levels

# How the arrays of a copy are brought to the source's levels, and what that is charged:
# program(chip, source layers, destination layers), layer by layer.
ArrayProgram = Callable[[Chip, list[CrossbarLayer], list[CrossbarLayer]], None]


class Backend(Protocol):
    """What agents, mappings and the harness need of a compute backend."""

    on_chip: bool  # True: operations are counted by a chip's ledger (priced, worn, compared)

    def place(self, network: nn.Module) -> nn.Module:
        """The backend's version of a float `network` (RRAM: programmed, phase `program`)."""
        ...

    def copy(self, network: nn.Module) -> nn.Module:
        """A copy of a placed `network` on its own hardware (charged to the current phase)."""
        ...

    def optimizer(self, optimizer: torch.optim.Optimizer, network: nn.Module):
        """`optimizer` of a placed `network`, its result written to the network's hardware."""
        ...

    def copy_weights(self, source: nn.Module, dest: nn.Module, program: ArrayProgram) -> None:
        """Make `dest` (a `copy` of `source`) hold `source`'s weights; arrays via `program`."""
        ...

    def phase(self, name: str) -> ContextManager[None]:
        """Charge operations that name no phase to ledger phase `name` inside the block."""
        ...

    def charge(self, kind: str, count: float, phase: str) -> None:
        """Count `count` operations of ledger `kind` in `phase`."""
        ...

    def snapshot(self) -> LedgerSnapshot:
        """Everything counted so far."""
        ...

    def cell_pulse_counts(self, networks: list[nn.Module]) -> list[torch.Tensor]:
        """Pulses taken by every cell of `networks`: each array's own counter (flat int32, the
        live buffer, not a copy; none off chip)."""
        ...

    def dead_cell_fraction(self, networks: list[nn.Module]) -> float:
        """Fraction of the cells of `networks` that are stuck (faults and worn out)."""
        ...

    def start_probe(self, optimizer) -> None:
        """Have `optimizer` (from `optimizer()`) record the updates it is asked for from now."""
        ...

    def take_probe(self, optimizer) -> dict[str, float]:
        """What the updates since `start_probe` asked and what the cells did,
        {"layer<i>/<stat>": value} (`rlime.hw.probe`; the float backend has none: {})."""
        ...

    def sync_gap(self, source: nn.Module, dest: nn.Module) -> dict[str, float]:
        """{"layer<i>/sync_gap_levels": value}: how far `dest`'s weights are from `source`'s,
        in levels (`rlime.hw.probe.sync_gap_levels`; float: {})."""
        ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def _digital_params(module: nn.Module) -> list[torch.Tensor]:
    """Parameters kept in digital periphery (everything but crossbar weights)."""
    return [p for name, p in module.named_parameters() if not name.endswith("weight")]


class RRAMBackend:
    """Networks on the arrays of one `Chip`; everything counted by its ledger."""

    on_chip = True

    def __init__(self, chip: Chip) -> None:
        self.chip = chip

    def place(self, network: nn.Module) -> nn.Module:
        return to_rram(network, self.chip)

    def copy(self, network: nn.Module) -> nn.Module:
        return copy_to_new_arrays(network, self.chip)

    def optimizer(self, optimizer: torch.optim.Optimizer, network: nn.Module) -> TunedOptimizer:
        return TunedOptimizer(optimizer, network, self.chip)

    def copy_weights(self, source: nn.Module, dest: nn.Module, program: ArrayProgram) -> None:
        program(self.chip, crossbar_layers(source), crossbar_layers(dest))
        for src, dst in zip(_digital_params(source), _digital_params(dest)):
            dst.data.copy_(src.data)  # biases live in digital periphery: a plain copy

    def phase(self, name: str) -> ContextManager[None]:
        return self.chip.ledger.in_phase(name)

    def charge(self, kind: str, count: float, phase: str) -> None:
        self.chip.ledger.add(kind, count, phase)

    def snapshot(self) -> LedgerSnapshot:
        return self.chip.ledger.snapshot()

    def cell_pulse_counts(self, networks: list[nn.Module]) -> list[torch.Tensor]:
        return [layer.cell_pulses for m in networks for layer in crossbar_layers(m)]

    def dead_cell_fraction(self, networks: list[nn.Module]) -> float:
        layers = [layer for m in networks for layer in crossbar_layers(m)]
        stuck = sum(int(layer.cell_stuck.sum()) for layer in layers)
        return stuck / max(sum(layer.cell_stuck.numel() for layer in layers), 1)

    def start_probe(self, optimizer: TunedOptimizer) -> None:
        optimizer.start_probe()

    def take_probe(self, optimizer: TunedOptimizer) -> dict[str, float]:
        return {f"{layer}/{name}": value for layer, stats in optimizer.take_probe().items()
                for name, value in stats.items()}

    def sync_gap(self, source: nn.Module, dest: nn.Module) -> dict[str, float]:
        return {f"layer{i}/sync_gap_levels": sync_gap_levels(src.array, dst.array)
                for i, (src, dst) in enumerate(zip(crossbar_layers(source),
                                                   crossbar_layers(dest)))}

    def state_dict(self) -> dict:
        return self.chip.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.chip.load_state_dict(state)


class FloatBackend:
    """Plain PyTorch on `device`; nothing is counted (zero snapshots over `phases`)."""

    on_chip = False

    def __init__(self, device: torch.device | str = "cpu", phases: Phases = TRAINING_PHASES) -> None:
        self.device = torch.device(device)
        self.phases = phases

    def place(self, network: nn.Module) -> nn.Module:
        return network.to(self.device)

    def copy(self, network: nn.Module) -> nn.Module:
        return copy.deepcopy(network)

    def optimizer(self, optimizer: torch.optim.Optimizer,
                  network: nn.Module) -> torch.optim.Optimizer:
        return optimizer

    def copy_weights(self, source: nn.Module, dest: nn.Module, program: ArrayProgram) -> None:
        dest.load_state_dict(source.state_dict())

    def phase(self, name: str) -> ContextManager[None]:
        return contextlib.nullcontext()

    def charge(self, kind: str, count: float, phase: str) -> None:
        pass

    def snapshot(self) -> LedgerSnapshot:
        return LedgerSnapshot.zeros(self.phases)

    def cell_pulse_counts(self, networks: list[nn.Module]) -> list[torch.Tensor]:
        return []

    def dead_cell_fraction(self, networks: list[nn.Module]) -> float:
        return 0.0

    def start_probe(self, optimizer: torch.optim.Optimizer) -> None:
        pass

    def take_probe(self, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        return {}

    def sync_gap(self, source: nn.Module, dest: nn.Module) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def make_backend(name: str, hardware: HardwareConfig, device: torch.device | str,
                 seed: int, phases: Phases = TRAINING_PHASES) -> Backend:
    """`rram`: a fresh `Chip` of `hardware` seeded with `seed`, its ledger over `phases`;
    `float`: plain PyTorch."""
    kinds = {"rram": lambda: RRAMBackend(Chip(hardware, device, seed=seed, phases=phases)),
             "float": lambda: FloatBackend(device, phases)}
    return lookup(kinds, name, "backend")()
