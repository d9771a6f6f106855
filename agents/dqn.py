"""DQN (optionally Double DQN) whose Q-network runs on the RRAM chip or in float.

The two backends share every line of the algorithm (`rlime.hw.backend`): on `rram` the
Q-network is the RRAM twin of the float builder's network and the update rule's result is tuned
into the cells; on `float` it is plain PyTorch. Where the target network and replay live, and
what that costs, is the mapping's business (`rlime.drl.mappings`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rlime.hw.backend import Backend
from rlime.hw.optim import update_rule
from rlime.drl.mappings import Replay, make_mapping
from rlime.common.timing import PhaseTimer

from .config import DQNConfig
from .qnets import build_q_network

class NumericalFailure(RuntimeError):
    """A Q-value or loss became NaN/infinite."""


class DQNAgent:
    """Q-network, target (via the mapping), update rule and exploration."""

    def __init__(self, cfg: DQNConfig, obs_shape: tuple[int, ...], n_actions: int, *,
                 backend: Backend, mapping: str, device: torch.device | str, seed: int,
                 timer: PhaseTimer | None = None) -> None:
        self.cfg = cfg
        self.timer = timer or PhaseTimer(device)
        self.n_actions = n_actions
        self.backend = backend
        self.device = torch.device(device)
        torch.manual_seed(seed)  # the float initialisation of the Q-network
        q = build_q_network(obs_shape, n_actions, cfg.network, cfg.hidden)
        self.q = backend.place(q)
        self.optimizer = backend.optimizer(
            update_rule(cfg.update_rule, self.q.parameters(), cfg.learning_rate, cfg.momentum),
            self.q)
        self.n_params = sum(p.numel() for p in self.q.parameters())
        self.mapping = make_mapping(mapping, self.q, backend)
        self.rng = np.random.default_rng(seed)

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
        with self.backend.phase("act"):
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
        with torch.no_grad(), self.backend.phase("target"), timer.phase("train_forward"):
            next_q = self.mapping.target_network()(batch["next_obs"])
            if cfg.double_dqn:
                best = self.q(batch["next_obs"]).argmax(1, keepdim=True)
                next_value = next_q.gather(1, best).squeeze(1)
            else:
                next_value = next_q.max(1).values
            target = cfg.reward_scale * batch["rewards"] + cfg.gamma * (1.0 - batch["dones"]) * next_value
        with self.backend.phase("forward"), timer.phase("train_forward"):
            q_all = self.q(batch["obs"])
            q_taken = q_all.gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
            loss = F.smooth_l1_loss(q_taken, target)
        # TD targets, Huber loss and its gradient: ~10 fp32 ops per sample and action
        self.backend.charge("digital_ops", 10 * cfg.batch_size * self.n_actions, "forward")
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
                # the norm, a compare and a scale per parameter
                self.backend.charge("optimizer_ops", 3 * self.n_params, "update")
            self.optimizer.step()
        return {"td_loss": loss.detach(), "q_values": q_taken.detach().mean()}

    def sync_target(self) -> None:
        with self.timer.phase("target_sync"):
            self.mapping.sync()

    def _networks(self) -> list[nn.Module]:
        """The Q network and the target network (once when they are the same)."""
        return list({id(m): m for m in (self.q, self.mapping.target_network())}.values())

    def cell_pulse_counts(self) -> torch.Tensor:
        """Pulses taken by every cell of the Q and target arrays (flat int64; empty on float)."""
        return self.backend.cell_pulse_counts(self._networks())

    def dead_cell_fraction(self) -> float:
        """Fraction of Q and target cells that are stuck (faults and worn out); 0 on float."""
        return self.backend.dead_cell_fraction(self._networks())

    def state_dict(self) -> dict:
        return {"q": self.q.state_dict(), "target": self.mapping.target_network().state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.q.load_state_dict(state["q"])
        self.mapping.target_network().load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]

