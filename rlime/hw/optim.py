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

UPDATE_RULES = ("sgd", "momentum", "adam")   # `update_rule` names


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
}


def sram_bits_per_cell(rule: str, residual: bool) -> float:
    """Periphery SRAM bits per cell for update rule `rule` ("sgd", "momentum" or "adam"): its
    state words and the residual accumulator, 32 bits each per weight, two cells a weight."""
    names = {"sgd": "SGD", "momentum": "SGD+momentum", "adam": "Adam"}
    return 32 * (_RULE_COST[names[rule]][1] + int(residual)) / 2


def update_rule(name: str, params, learning_rate: float,
                momentum: float = 0.0) -> torch.optim.Optimizer:
    """The torch optimizer of update rule `name` ("sgd", "momentum" or "adam"), whose hardware
    cost `TunedOptimizer` charges."""
    if name == "adam":
        return torch.optim.Adam(params, lr=learning_rate)
    if name not in ("sgd", "momentum"):
        raise ValueError(f"unknown update rule {name!r}; choose sgd, momentum or adam")
    return torch.optim.SGD(params, lr=learning_rate, momentum=momentum if name == "momentum" else 0.0)


def _rule(optimizer: torch.optim.Optimizer) -> str:
    name = type(optimizer).__name__
    if name == "SGD" and any(g.get("momentum", 0) for g in optimizer.param_groups):
        return "SGD+momentum"
    if name in ("Adam", "AdamW"):
        return "Adam"
    if name == "SGD":
        return "SGD"
    raise ValueError(f"update rule {name} has no hardware cost model; use torch.optim.SGD "
                     f"(with or without momentum) or torch.optim.Adam")


class TunedOptimizer:
    """Optimizer-like wrapper: `zero_grad()`, `step()`, `state_dict()`, `load_state_dict()`."""

    def __init__(self, optimizer: torch.optim.Optimizer, model: nn.Module, chip: Chip):
        self.optimizer = optimizer
        self.chip = chip
        self.layers = crossbar_layers(model)
        self.rule = _rule(optimizer)
        self._params = sum(p.numel() for g in optimizer.param_groups for p in g["params"])

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
            program_weights(self.chip, [(layer, layer.weight.detach().reshape(-1), now)
                                        for layer, now in zip(self.layers, current)])

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)
