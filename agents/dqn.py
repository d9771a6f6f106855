"""DQN (optionally Double DQN) whose Q-network runs on the RRAM chip or in float.

The two backends share every line of the algorithm: on `rram` the Q-network is the RRAM twin
of the float builder's network (`rlime.layers.to_rram`) and the update rule's result is tuned
into the cells (`rlime.optim.TunedOptimizer`); on `float` it is plain PyTorch. Where the target
network and replay live, and what that costs, is the mapping's business
(`rlime.mappings`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rlime.hw.chip import Chip
from rlime.common.errors import ConfigError
from rlime.hw.layers import crossbar_layers, to_rram
from rlime.drl.mappings import Replay, make_mapping
from rlime.hw.optim import TunedOptimizer
from rlime.common.timing import PhaseTimer

from .qnets import build_q_network

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


def _optimizer(cfg: DQNConfig, params) -> torch.optim.Optimizer:
    if cfg.update_rule == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate)
    momentum = cfg.momentum if cfg.update_rule == "momentum" else 0.0
    return torch.optim.SGD(params, lr=cfg.learning_rate, momentum=momentum)


class NumericalFailure(RuntimeError):
    """A Q-value or loss became NaN/infinite."""


class DQNAgent:
    """Q-network, target (via the mapping), update rule and exploration."""

    def __init__(self, cfg: DQNConfig, obs_shape: tuple[int, ...], n_actions: int, *,
                 chip: Chip | None, mapping: str, device: torch.device | str, seed: int,
                 timer: PhaseTimer | None = None) -> None:
        self.cfg = cfg
        self.timer = timer or PhaseTimer(device)
        self.n_actions = n_actions
        self.chip = chip
        self.device = torch.device(device)
        torch.manual_seed(seed)  # the float initialisation of the Q-network
        q = build_q_network(obs_shape, n_actions, cfg.network, cfg.hidden)
        if chip is None:
            self.q = q.to(self.device)
            self.optimizer = _optimizer(cfg, self.q.parameters())
        else:
            self.q = to_rram(q, chip)
            self.optimizer = TunedOptimizer(_optimizer(cfg, self.q.parameters()), self.q, chip)
        self.n_params = sum(p.numel() for p in self.q.parameters())
        self.mapping = make_mapping(mapping, self.q, chip)
        self.rng = np.random.default_rng(seed)

    def _phase(self, name: str):
        return self.chip.ledger.in_phase(name) if self.chip is not None else contextlib.nullcontext()

    def _charge(self, kind: str, count: int, phase: str) -> None:
        if self.chip is not None:
            self.chip.ledger.add(kind, count, phase)

    @torch.no_grad()
    def act(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        with self.timer.phase("acting"):
            return self._act(obs, epsilon)

    def _act(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        """Epsilon-greedy actions for a batch of observations (one per env)."""
        n = obs.shape[0]
        explore = self.rng.random(n) < epsilon
        random_actions = self.rng.integers(self.n_actions, size=n)
        if explore.all():
            return random_actions
        with self._phase("act"):
            q = self.q(torch.as_tensor(obs, device=self.device))
        greedy = q.argmax(1).cpu().numpy()
        return np.where(explore, random_actions, greedy)

    def store(self, replay: Replay, obs, actions, rewards, next_obs, terminated, truncated,
              valid) -> None:
        with self.timer.phase("replay"):
            self.mapping.store(replay, obs, actions, rewards, next_obs, terminated, truncated,
                               valid)

    def train_step(self, replay: Replay) -> dict[str, torch.Tensor]:
        """One minibatch update; returns detached `td_loss` and mean `q_values`."""
        cfg, timer = self.cfg, self.timer
        with timer.phase("replay"):
            batch = self.mapping.sample(replay, cfg.batch_size, self.device)
        with torch.no_grad(), self._phase("target"), timer.phase("train_forward"):
            next_q = self.mapping.target_network()(batch["next_obs"])
            if cfg.double_dqn:
                best = self.q(batch["next_obs"]).argmax(1, keepdim=True)
                next_value = next_q.gather(1, best).squeeze(1)
            else:
                next_value = next_q.max(1).values
            target = cfg.reward_scale * batch["rewards"] + cfg.gamma * (1.0 - batch["dones"]) * next_value
        with self._phase("forward"), timer.phase("train_forward"):
            q_all = self.q(batch["obs"])
            q_taken = q_all.gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
            loss = F.smooth_l1_loss(q_taken, target)
        # TD targets, Huber loss and its gradient: ~10 fp32 ops per sample and action
        self._charge("digital_ops", 10 * cfg.batch_size * self.n_actions, "forward")
        if not torch.isfinite(loss):
            raise NumericalFailure(
                f"the TD loss became {loss.item()} (mean Q {q_all.mean().item():.4g}); the "
                f"Q-network diverged -- lower the learning rate or enable gradient clipping")
        with timer.phase("train_backward"):
            self.optimizer.zero_grad()
            loss.backward()
        with timer.phase("update"):  # the update rule, and tuning on rram
            if cfg.max_grad_norm > 0:
                nn.utils.clip_grad_norm_(self.q.parameters(), cfg.max_grad_norm)
                self._charge("optimizer_ops", 3 * self.n_params, "update")  # norm, compare, scale
            self.optimizer.step()
        return {"td_loss": loss.detach(), "q_values": q_taken.detach().mean()}

    def sync_target(self) -> None:
        with self.timer.phase("target_sync"):
            self.mapping.sync()

    def _arrays(self) -> list:
        modules = {id(m): m for m in (self.q, self.mapping.target_network())}.values()
        return [layer for m in modules for layer in crossbar_layers(m)]

    def cell_pulse_counts(self) -> torch.Tensor:
        """Pulses taken by every cell of the Q and target arrays (flat int64; empty on float)."""
        counts = [layer.cell_pulses for layer in self._arrays()]
        return torch.cat(counts) if counts else torch.zeros(0, dtype=torch.int64)

    def dead_cell_fraction(self) -> float:
        """Fraction of Q and target cells that are stuck (faults and worn out); 0 on float."""
        layers = self._arrays()
        if not layers:
            return 0.0
        stuck = sum(int(layer.cell_stuck.sum()) for layer in layers)
        return stuck / sum(layer.cell_stuck.numel() for layer in layers)

    def state_dict(self) -> dict:
        return {"q": self.q.state_dict(), "target": self.mapping.target_network().state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.q.load_state_dict(state["q"])
        self.mapping.target_network().load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]

