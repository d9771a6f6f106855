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
from rlime.hw.layers import crossbar_layers
from rlime.hw.optim import update_rule
from rlime.hw.probe import desired_parameters
from rlime.drl.mappings import Replay, make_mapping
from rlime.common.timing import PhaseTimer

from .config import DQNConfig
from .qnets import DuelingHead, build_q_network


def _rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


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
        self._build = lambda: build_q_network(obs_shape, n_actions, cfg.network, cfg.hidden,
                                              cfg.dueling)
        q = self._build()
        self._twin: nn.Module | None = None  # float copy of the chip's weights (probes only)
        self._q_probe: dict[str, float] | None = None  # armed: {}; measured: the stats
        self._probe_obs: torch.Tensor | None = None  # the last probed minibatch's observations
        self.q = backend.place(q)
        self.optimizer = backend.optimizer(
            update_rule(cfg.update_rule, self.q.parameters(), cfg.learning_rate, cfg.momentum,
                        cfg.rmsprop_alpha, cfg.rmsprop_eps),
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
        self._charge_combine(n, passes=1, phase="act")
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
            if cfg.advantage_learning:
                target = target - cfg.advantage_learning * self._advantage_gap(batch)
        with self.backend.phase("forward"), timer.phase("train_forward"):
            q_all = self.q(batch["obs"])
            if self._q_probe == {}:  # armed by start_probe
                self._q_probe = self._read_error(batch["obs"], q_all.detach())
            q_taken = q_all.gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
            loss = F.smooth_l1_loss(q_taken, target)
        # TD targets, Huber loss and its gradient: ~10 fp32 ops per sample and action
        self.backend.charge("digital_ops", 10 * cfg.batch_size * self.n_actions, "forward")
        target_passes = 1 + int(cfg.double_dqn) + int(cfg.advantage_learning > 0)
        self._charge_combine(cfg.batch_size, passes=target_passes, phase="target")
        self._charge_combine(cfg.batch_size, passes=1, phase="forward")
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

    def _advantage_gap(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """V(s) - Q(s, a) of the target network on the minibatch's own states, (B,) in Q units:
        what advantage learning (Bellemare et al. 2016, "Increasing the action gap", AAAI; its
        DQN experiments take both terms from the target network) subtracts, times alpha, from
        the Bellman target. At its fixed point a non-greedy action's gap is 1 / (1 - alpha)
        times DQN's, the greedy action's value is unchanged. One more target forward pass
        (charged by the target arrays, phase `target`) and ~3 digital ops a sample."""
        q_now = self.mapping.target_network()(batch["obs"])
        taken = q_now.gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
        self.backend.charge("digital_ops", 3 * batch["actions"].numel(), "target")
        return q_now.max(1).values - taken

    def _charge_combine(self, samples: int, passes: int, phase: str) -> None:
        """The dueling head's digital combination of V and A for `passes` forward passes of
        `samples` observations (nothing without a dueling head)."""
        if self.cfg.dueling:
            ops = DuelingHead.COMBINE_OPS * samples * self.n_actions * passes
            self.backend.charge("digital_ops", ops, phase)

    def sync_target(self) -> None:
        with self.timer.phase("target_sync"):
            self.mapping.sync()

    def start_probe(self) -> None:
        """Record the updates from now on, and the Q-values of the next minibatch
        (`take_probe`); nothing on float."""
        if self.backend.on_chip:
            self.backend.start_probe(self.optimizer)
            self._q_probe = {}

    def take_probe(self) -> dict[str, float]:
        """What the updates since `start_probe` asked of the weights and what the cells did
        (`rlime.hw.probe`), and `_read_error` of the first minibatch ({} on float)."""
        q, self._q_probe = self._q_probe or {}, None
        return {**self.backend.take_probe(self.optimizer), **q}

    @torch.no_grad()
    def _read_error(self, obs: torch.Tensor, q_chip: torch.Tensor) -> dict[str, float]:
        """How the arrays' Q-values differ from exact arithmetic on a minibatch `obs` whose chip
        Q-values are `q_chip` (B, actions), in Q units (scaled rewards). Read error (read
        noise, DAC/ADC quantisation, IR drop: the same weights computed exactly in float):
        `q/read_error_rms`, `q/read_bias` (mean chip - exact: > 0 is overestimation),
        `q/action_gap` (mean exact gap between the best and second-best action), `q/mean_abs`
        (mean |exact Q|: the scale the arrays must represent, against which the gap is
        resolved) and
        `q/greedy_agreement` (fraction of samples whose greedy action is the same). With a
        residual, `q/lag_error_rms`: the exact Q-values of the realised weights against those
        of the weights the update rule holds (realised + residual, `desired_parameters`), the
        error of updates not yet programmed. The experimenter's view: nothing is charged."""
        self._probe_obs = obs
        exact = self._exact_q(dict(self.q.named_parameters()), obs)
        error = q_chip - exact
        top = exact.topk(2, dim=1).values if exact.shape[1] > 1 else exact.repeat(1, 2)
        stats = {"q/read_error_rms": _rms(error), "q/read_bias": float(error.mean()),
                 "q/action_gap": float((top[:, 0] - top[:, 1]).mean()),
                 "q/mean_abs": float(exact.abs().mean()),
                 "q/greedy_agreement": float((q_chip.argmax(1) == exact.argmax(1)).float().mean())}
        if any(layer.array.residual.numel() for layer in crossbar_layers(self.q)):
            stats["q/lag_error_rms"] = _rms(self._exact_q(desired_parameters(self.q), obs) - exact)
        return stats

    def _exact_q(self, params: dict[str, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
        """Q-values (B, actions) of the float network with parameters `params` (by name)."""
        if self._twin is None:
            with torch.random.fork_rng(devices=[]):  # its initial weights are overwritten: the
                self._twin = self._build().to(self.device)  # run's random streams stay as they are
        self._twin.load_state_dict(params)
        return self._twin(obs)

    @torch.no_grad()
    def sync_gap(self) -> dict[str, float]:
        """How far the target network is from the Q network now: its weights, in levels
        (`layer<i>/sync_gap_levels`), and, on the last probed minibatch, its exact Q-values
        against the Q network's (`q/sync_error_rms`, Q units) ({} on float and where the
        target is the Q network itself)."""
        target = self.mapping.target_network()
        if target is self.q:
            return {}
        stats = self.backend.sync_gap(self.q, target)
        if stats and self._probe_obs is not None:
            obs = self._probe_obs
            stats["q/sync_error_rms"] = _rms(self._exact_q(dict(target.named_parameters()), obs)
                                             - self._exact_q(dict(self.q.named_parameters()), obs))
        return stats

    def _networks(self) -> list[nn.Module]:
        """The Q network and the target network (once when they are the same)."""
        return list({id(m): m for m in (self.q, self.mapping.target_network())}.values())

    def cell_pulse_counts(self) -> list[torch.Tensor]:
        """Pulses taken by every cell of the Q and target arrays: a flat int64 counter per
        array (none on float)."""
        return self.backend.cell_pulse_counts(self._networks())

    def dead_cell_fraction(self) -> float:
        """Fraction of Q and target cells that are stuck (faults and worn out); 0 on float."""
        return self.backend.dead_cell_fraction(self._networks())

    def state_dict(self) -> dict:
        return {"q": self.q.state_dict(), "target": self.mapping.target_network().state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": self.rng.bit_generator.state, "probe_obs": self._probe_obs}

    def load_state_dict(self, state: dict) -> None:
        self.q.load_state_dict(state["q"])
        self.mapping.target_network().load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self._probe_obs = state.get("probe_obs")  # older checkpoints: none

