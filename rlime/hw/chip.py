"""One simulated RRAM accelerator: configuration, ledger, random stream, periphery and tuner.

Every RRAM layer of a network (Q and target alike) points at the same `Chip`, so one ledger
counts everything. Deep-copying a module that holds a chip shares the chip (a copy of a network
is placed on the same accelerator), it does not clone it.
"""

from __future__ import annotations

import torch

from rlime.hw.config import HardwareConfig
from rlime.hw.counts import TRAINING_PHASES, Phases
from rlime.hw.crossbar import Periphery
from rlime.hw.device import PulseModel
from rlime.hw.ledger import Ledger
from rlime.hw.tuning import Tuner


class Chip:
    """`phases`: the ledger's phase axis, the workload's vocabulary (`TRAINING_PHASES` for a
    network trained by backpropagation; `rlime.drl.phases.DQN_PHASES` for DQN)."""

    def __init__(self, cfg: HardwareConfig, device: torch.device | str = "cpu", seed: int = 0,
                 phases: Phases = TRAINING_PHASES):
        self.cfg = cfg
        self.device = torch.device(device)
        self.ledger = Ledger(phases, self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.pulse_model = PulseModel(cfg.device)
        self.tuner = Tuner(cfg.tuning, self.pulse_model, self.generator, self.ledger)
        read_sigma = cfg.device.read_noise_sigma
        self.forward_periphery = Periphery(cfg.forward, read_sigma, self.generator)
        self.backward_periphery = Periphery(cfg.backward, read_sigma, self.generator)

    def __deepcopy__(self, memo: dict) -> "Chip":
        return self

    def state_dict(self) -> dict:
        return {"ledger": self.ledger.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.ledger.load_state_dict(state["ledger"])
        self.generator.set_state(state["generator"])
