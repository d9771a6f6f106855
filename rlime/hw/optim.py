"""The update step on RRAM: a torch optimizer's rule computed digitally, then tuned into cells.

`TunedOptimizer` wraps any `torch.optim` optimizer (SGD, the paper's rule; momentum or Adam
with their state held in periphery SRAM). `step()` lets the wrapped optimizer compute the
desired weights, then programs every crossbar layer towards them in one tuning pass; the
realised conductances become the weights. Digital parameters (biases) are updated as usual.
Charged to phase `update`: the update rule's fp32 ops, the gradient brought in through the
buffer, the state held in periphery SRAM (`sram_bits`: optimizer moments and the residual
accumulators, each 32-bit word read and written once per step), and every pulse and verify read.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from rlime.common.errors import require
from rlime.common.settings import check_types
from rlime.hw.chip import Chip
from rlime.hw.layers import crossbar_layers, program_weights
from rlime.hw.probe import update_stats

UPDATE_RULES = ("sgd", "momentum", "adam", "rmsprop")   # `update_rule` names


def check_learning(cfg, section: str, networks: tuple[str, ...]) -> None:
    """The checks a trained network's settings share (a DQN agent's, a classifier's): every
    field's type, the network among `networks`, hidden widths, update rule, learning rate and
    momentum; ConfigError naming `section.key`."""
    check_types(cfg, section)
    require(cfg.network in networks, f"{section}.network", cfg.network,
            f"one of {', '.join(networks)}")
    require(len(cfg.hidden) >= 1 and all(h > 0 for h in cfg.hidden), f"{section}.hidden",
            cfg.hidden, "a non-empty list of positive layer widths")
    require(cfg.update_rule in UPDATE_RULES, f"{section}.update_rule", cfg.update_rule,
            f"one of {', '.join(UPDATE_RULES)}")
    require(cfg.learning_rate > 0, f"{section}.learning_rate", cfg.learning_rate, "it must be > 0")
    require(0 <= cfg.momentum < 1, f"{section}.momentum", cfg.momentum, "it must be in [0, 1)")


# fp32 ops per parameter per step and state words per parameter, by update rule.
_RULE_COST = {  # (ops, state words)
    "SGD": (2, 0),          # w -= lr * g
    "SGD+momentum": (4, 1),  # b = mu b + g; w -= lr b
    "Adam": (12, 2),        # two moment updates, bias corrections, sqrt, divide
    # centered, with momentum: v = a v + (1-a) g^2, m = a m + (1-a) g, d = sqrt(v - m^2) + eps,
    # b = mu b + g / d, w -= lr b
    "RMSprop": (15, 3),
}


def sram_bits_per_cell(rule: str, residual: bool) -> float:
    """Periphery SRAM bits per cell for update rule `rule` (one of `UPDATE_RULES`): its
    state words and the residual accumulator, 32 bits each per weight, two cells a weight."""
    names = {"sgd": "SGD", "momentum": "SGD+momentum", "adam": "Adam", "rmsprop": "RMSprop"}
    return 32 * (_RULE_COST[names[rule]][1] + int(residual)) / 2


def update_rule(name: str, params, learning_rate: float, momentum: float = 0.0,
                alpha: float = 0.95, eps: float = 0.01) -> torch.optim.Optimizer:
    """The torch optimizer of update rule `name` ("sgd", "momentum", "adam" or "rmsprop":
    DQN's centered RMSProp with gradient momentum `momentum`, squared-gradient momentum
    `alpha` and `eps` added to the RMS; Mnih et al. 2015, MinAtar), whose hardware cost
    `TunedOptimizer` charges."""
    if name == "adam":
        return torch.optim.Adam(params, lr=learning_rate)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=learning_rate, alpha=alpha, eps=eps,
                                   momentum=momentum, centered=True)
    if name not in ("sgd", "momentum"):
        raise ValueError(f"unknown update rule {name!r}; choose {', '.join(UPDATE_RULES)}")
    return torch.optim.SGD(params, lr=learning_rate, momentum=momentum if name == "momentum" else 0.0)


def _rule(optimizer: torch.optim.Optimizer) -> str:
    name = type(optimizer).__name__
    if name == "SGD" and any(g.get("momentum", 0) for g in optimizer.param_groups):
        return "SGD+momentum"
    if name in ("Adam", "AdamW"):
        return "Adam"
    if name == "RMSprop":
        return "RMSprop"
    if name == "SGD":
        return "SGD"
    raise ValueError(f"update rule {name} has no hardware cost model; use torch.optim.SGD "
                     f"(with or without momentum), torch.optim.Adam or torch.optim.RMSprop")


class TunedOptimizer:
    """Optimizer-like wrapper: `zero_grad()`, `step()`, `state_dict()`, `load_state_dict()`.

    `start_probe()` makes the steps from then on record what the update rule asked of every
    crossbar weight; `take_probe()` returns what was asked and what the cells did since
    (`rlime.hw.probe.update_stats`, uncharged: the experimenter's view), {"layer<i>": stats},
    and stops recording.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, model: nn.Module, chip: Chip):
        self.optimizer = optimizer
        self.chip = chip
        self.layers = crossbar_layers(model)
        self.rule = _rule(optimizer)
        self._params = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
        self._probe: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        ledger = self.chip.ledger
        with ledger.in_phase("update"):
            ops, words = _RULE_COST[self.rule]
            ledger.add("optimizer_ops", ops * self._params)
            # the gradient comes in through the periphery buffer (one 32-bit word a parameter);
            # the rule's state (momentum b, Adam's m and v: `words` 32-bit words a parameter)
            # and the residual accumulators (one 32-bit word a cell) live in periphery SRAM:
            # each word read once and written once a step
            residuals = sum(layer.array.residual.numel() for layer in self.layers)
            ledger.add("buffer_bits", 32 * self._params)
            sram = 2 * 32 * (words * self._params + residuals)
            if sram:
                ledger.add("sram_bits", sram)
            current = [layer.weight.detach().reshape(-1).clone() for layer in self.layers]
            self.optimizer.step()
            desired = [layer.weight.detach().reshape(-1) for layer in self.layers]
            if self._probe is not None:
                for asked, want, now in zip(self._probe[1], desired, current):
                    asked.add_(want).sub_(now)
            program_weights(self.chip, [(layer, want, now)
                                        for layer, want, now in zip(self.layers, desired, current)])

    def start_probe(self) -> None:
        """Record, from the next step on, the change every update asks of each weight."""
        self._probe = ([layer.weight.detach().reshape(-1).clone() for layer in self.layers],
                       [torch.zeros_like(layer.weight).reshape(-1) for layer in self.layers])

    def take_probe(self) -> dict[str, dict[str, float]]:
        """{"layer<i>": `update_stats`} of the steps since `start_probe()` ({} if none)."""
        if self._probe is None:
            return {}
        (before, asked), self._probe = self._probe, None
        return {f"layer{i}": update_stats(layer.array, a, torch.sub(
                    layer.weight.detach().reshape(-1), b, out=b))
                for i, (layer, b, a) in enumerate(zip(self.layers, before, asked))}

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)
