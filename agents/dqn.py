"""DQN (optionally Double DQN) whose Q-network runs on the RRAM chip or in float.

The two backends share every line of the algorithm: on `rram` the Q-network is the RRAM twin
of the float builder's network (`rlime.layers.to_rram`) and the update rule's result is tuned
into the cells (`rlime.optim.TunedOptimizer`); on `float` it is plain PyTorch. Where the target
network and replay live, and what that costs, is the mapping's business
(`rlime.mappings`).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rlime.hw.chip import Chip
from rlime.hw.layers import crossbar_layers, to_rram
from rlime.drl.mappings import Replay, make_mapping
from rlime.hw.optim import TunedOptimizer
from rlime.common.timing import PhaseTimer

from .config import DQNConfig
from .qnets import build_q_network

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

