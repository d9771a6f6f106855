"""DQN hyperparameters (`DQNConfig`): the `[agent]` table of a run's configuration."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from rlime.common.errors import ConfigError

UPDATE_RULES = ("sgd", "momentum", "adam")
NETWORKS = ("mlp", "nature_cnn")


def _check(ok: bool, name: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"agent.{name} = {value!r} is not allowed: {allowed}")


@dataclass(frozen=True)
class DQNConfig:
    """DQN hyperparameters; step counts are environment steps summed over parallel envs."""

    network: str = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    update_rule: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9          # only for update_rule "momentum"
    gamma: float = 0.99
    reward_scale: float = 1.0      # rewards are multiplied by this for learning (Q in scaled units)
    batch_size: int = 64
    buffer_size: int = 100_000
    learning_starts: int = 1000
    train_freq: int = 4            # a training round every train_freq env steps ...
    gradient_steps: int = 1        # ... of this many minibatch updates
    target_period: int = 1000      # target sync every target_period env steps
    double_dqn: bool = False
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_fraction: float = 0.1      # of total steps over which epsilon decays linearly
    max_grad_norm: float = 10.0    # 0 = no clipping
    sources: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        _check(self.network in NETWORKS, "network", self.network, f"one of {', '.join(NETWORKS)}")
        _check(len(self.hidden) >= 1 and all(isinstance(h, int) and h > 0 for h in self.hidden),
               "hidden", self.hidden, "a non-empty list of positive layer widths")
        _check(self.update_rule in UPDATE_RULES, "update_rule", self.update_rule,
               f"one of {', '.join(UPDATE_RULES)}")
        _check(self.learning_rate > 0, "learning_rate", self.learning_rate, "it must be > 0")
        _check(0 <= self.momentum < 1, "momentum", self.momentum, "it must be in [0, 1)")
        _check(0 < self.gamma <= 1, "gamma", self.gamma, "it must be in (0, 1]")
        _check(self.reward_scale > 0, "reward_scale", self.reward_scale, "it must be > 0")
        for name in ("batch_size", "buffer_size", "train_freq", "gradient_steps", "target_period"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, name, value, "it must be an integer >= 1")
        _check(isinstance(self.learning_starts, int) and self.learning_starts >= 0,
               "learning_starts", self.learning_starts, "it must be an integer >= 0")
        _check(self.buffer_size >= self.batch_size, "buffer_size", self.buffer_size,
               f"it must be >= batch_size ({self.batch_size})")
        for name in ("eps_start", "eps_end"):
            value = getattr(self, name)
            _check(0 <= value <= 1, name, value, "it must be a probability in [0, 1]")
        _check(0 < self.eps_fraction <= 1, "eps_fraction", self.eps_fraction, "it must be in (0, 1]")
        _check(self.max_grad_norm >= 0, "max_grad_norm", self.max_grad_norm, "it must be >= 0")

    @classmethod
    def from_dict(cls, data: dict) -> "DQNConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown agent setting(s) {sorted(unknown)}; allowed: "
                              f"{', '.join(sorted(names))}")
        values = dict(data)
        for key in ("hidden", "sources"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def epsilon(self, step: int, total_steps: int) -> float:
        """Linearly decayed exploration rate at env step `step`."""
        frac = min(1.0, step / max(1.0, self.eps_fraction * total_steps))
        return self.eps_start + frac * (self.eps_end - self.eps_start)
