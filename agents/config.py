"""DQN hyperparameters (`DQNConfig`): the `[agent]` table of a run's configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from rlime.common.errors import require
from rlime.common.settings import build
from rlime.hw.optim import check_learning

NETWORKS = ("mlp", "nature_cnn", "minatar_cnn")


@dataclass(frozen=True)
class DQNConfig:
    """DQN hyperparameters; step counts are environment steps summed over parallel envs."""

    network: str = "mlp"           # mlp, nature_cnn for Atari frames, minatar_cnn for MinAtar
    hidden: tuple[int, ...] = (256, 256)  # hidden-layer widths
    dueling: bool = False          # mlp: separate value and advantage heads (Wang et al. 2016)
    update_rule: str = "adam"      # sgd, momentum, adam or rmsprop (centered, as DQN's)
    learning_rate: float = 1e-3    # step size of the update rule
    momentum: float = 0.9          # update_rule "momentum", and rmsprop's gradient momentum
    rmsprop_alpha: float = 0.95    # rmsprop: squared-gradient momentum
    rmsprop_eps: float = 0.01      # rmsprop: added to the RMS denominator ("min squared gradient")
    gamma: float = 0.99            # discount
    reward_scale: float = 1.0      # rewards are multiplied by this for learning (Q in scaled units)
    batch_size: int = 64           # transitions per minibatch
    buffer_size: int = 100_000     # replay capacity (transitions)
    learning_starts: int = 1000    # env steps before the first update
    train_freq: int = 4            # a training round every train_freq env steps ...
    gradient_steps: int = 1        # ... of this many minibatch updates
    target_period: int = 1000      # target sync every target_period env steps
    double_dqn: bool = False       # Double DQN targets
    advantage_learning: float = 0.0  # alpha of Bellemare et al. 2016's operator, 0 = plain DQN
    eps_start: float = 1.0         # exploration rate at step 0 ...
    eps_end: float = 0.05          # ... and after its linear decay
    eps_fraction: float = 0.1      # of total steps over which epsilon decays linearly ...
    eps_decay_steps: int = 0       # ... or, if > 0, over this many env steps
    max_grad_norm: float = 10.0    # 0 = no clipping
    sources: tuple[str, ...] = field(default=())  # where the values come from (documentation)

    def __post_init__(self) -> None:
        check_learning(self, "agent", NETWORKS)
        require(0 < self.rmsprop_alpha < 1, "agent.rmsprop_alpha", self.rmsprop_alpha,
                "it must be in (0, 1)")
        require(self.rmsprop_eps > 0, "agent.rmsprop_eps", self.rmsprop_eps, "it must be > 0")
        require(self.eps_decay_steps >= 0, "agent.eps_decay_steps", self.eps_decay_steps,
                "it must be an integer >= 0 (0: decay over eps_fraction of total steps)")
        require(0 < self.gamma <= 1, "agent.gamma", self.gamma, "it must be in (0, 1]")
        require(0 <= self.advantage_learning < 1, "agent.advantage_learning",
                self.advantage_learning,
                "it must be in [0, 1) (0: the Bellman target of DQN; Bellemare et al. use 0.9)")
        require(self.reward_scale > 0, "agent.reward_scale", self.reward_scale, "it must be > 0")
        for name in ("batch_size", "buffer_size", "train_freq", "gradient_steps", "target_period"):
            require(getattr(self, name) >= 1, f"agent.{name}", getattr(self, name),
                    "it must be an integer >= 1")
        require(self.learning_starts >= 0, "agent.learning_starts", self.learning_starts,
                "it must be an integer >= 0")
        require(self.buffer_size >= self.batch_size, "agent.buffer_size", self.buffer_size,
                f"it must be >= batch_size ({self.batch_size})")
        for name in ("eps_start", "eps_end"):
            require(0 <= getattr(self, name) <= 1, f"agent.{name}", getattr(self, name),
                    "it must be a probability in [0, 1]")
        require(0 < self.eps_fraction <= 1, "agent.eps_fraction", self.eps_fraction,
                "it must be in (0, 1]")
        require(self.max_grad_norm >= 0, "agent.max_grad_norm", self.max_grad_norm,
                "it must be >= 0")

    @classmethod
    def from_dict(cls, data: dict) -> "DQNConfig":
        """From an `[agent]` table: values type-checked, lists as tuples, unknown keys refused."""
        return build(cls, "agent", data)

    def epsilon(self, step: int, total_steps: int) -> float:
        """Linearly decayed exploration rate at env step `step`."""
        span = self.eps_decay_steps or self.eps_fraction * total_steps
        frac = min(1.0, step / max(1.0, span))
        return self.eps_start + frac * (self.eps_end - self.eps_start)
