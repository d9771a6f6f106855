"""One training run (`Trainer`): train DQN in memory and report what learning cost.

Every finished episode gets a line in `episodes.jsonl` with its return next to the programming
pulses written and the energy spent (by category) while it ran; TensorBoard gets the same on the
global-step axis. Hardware cost is attributed to episodes by time: the ledger difference between
two episode ends is shared equally by the parallel envs that were running; evaluation rounds
are accounted separately (`evals.jsonl`), initial programming as `setup` in `summary.json`.

Checkpoints (every `checkpoint_every` steps, and on SIGINT/SIGTERM) hold everything needed to
continue exactly: cells, counters, ledger, optimizer, replay, random streams, progress, and the
environments themselves where they can be saved (classic control; ALE envs restart with fresh
episodes and the unfinished ones are reported as `abandoned`).
"""

from __future__ import annotations

import dataclasses
import pickle
import signal
import time
from collections import deque
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.dqn import DQNAgent
from agents.replay import ReplayBuffer
from envs import make_vector_env, resolve_env

from rlime.hw.chip import Chip
from rlime.common.errors import ConfigError
from rlime.cost.energy import energy_preset, price
from rlime.drl.phases import DQN_PHASES
from rlime.hw.ledger import LedgerSnapshot
from rlime.harness.run_config import RunConfig
from rlime.harness.run_dir import RunDirectory, RunDirError
from rlime.common.timing import PhaseTimer
from rlime.harness.summary import summarise

CHECKPOINT_VERSION = 1


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; the run stopped at a checkpoint."""


class Trainer:
    """One training run in one run directory."""

    def __init__(self, cfg: RunConfig, run_dir: RunDirectory, *, progress: bool = True,
                 profile: bool = False) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.progress = progress
        self.spec = resolve_env(cfg.env).configured(
            terminal_on_life_loss=cfg.terminal_on_life_loss)
        self.device = torch.device(cfg.device)
        self.envs = make_vector_env(self.spec, cfg.num_envs, cfg.seed,
                                    terminal_on_life_loss=cfg.terminal_on_life_loss)
        self.eval_env = make_vector_env(self.spec, 1, cfg.seed + 100_003, eval_mode=True)
        space = self.envs.single_action_space
        if not hasattr(space, "n"):
            raise ConfigError(f"{self.spec.env_id} has a {type(space).__name__} action space; DQN "
                              f"needs a discrete one (e.g. CartPole, Acrobot, MountainCar, ALE games)")
        obs_space = self.envs.single_observation_space
        self.chip = Chip(cfg.hardware, self.device, seed=cfg.seed, phases=DQN_PHASES) if cfg.backend == "rram" else None
        self.timer = PhaseTimer(self.device, synchronize=profile)
        self.agent = DQNAgent(cfg.agent, obs_space.shape, int(space.n), chip=self.chip,
                              mapping=cfg.mapping, device=self.device, seed=cfg.seed,
                              timer=self.timer)
        frame_stack = self.spec.protocol.get("frame_stack", 1) if self.spec.is_atari else 1
        self.replay = ReplayBuffer(cfg.agent.buffer_size, obs_space.shape, obs_space.dtype,
                                   cfg.num_envs, frame_stack=frame_stack, seed=cfg.seed)
        self.tech = energy_preset(cfg.energy_preset, cfg.hardware.device)
        self.reward_clip = self.spec.reward_clip
        n, shape = cfg.num_envs, LedgerSnapshot.zeros(DQN_PHASES).table.shape
        # progress and attribution state (all of it checkpointed)
        self.step = 0
        self.episodes: list[dict[str, Any]] = []      # kept in memory for the summary
        self.evals: list[dict[str, Any]] = []
        self.setup = self._snapshot()                 # initial programming of Q and target
        self.last = self.setup.table.copy()           # ledger at the last attribution point
        self.env_tables = np.zeros((n,) + shape)      # unfinished episodes' share, per env
        self.abandoned = np.zeros(shape)
        self.eval_table = np.zeros(shape)
        self.wall_before = 0.0                         # seconds spent in earlier sessions
        self._clock = (time.monotonic(), 0)            # (start time, start step) of this session
        self.obs = None
        self.last_losses: dict[str, float] = {}
        self._stop_signal: int | None = None

    # -- ledger attribution -------------------------------------------------------------------

    def _snapshot(self) -> LedgerSnapshot:
        return self.chip.ledger.snapshot() if self.chip is not None else LedgerSnapshot.zeros(DQN_PHASES)

    def _attribute(self) -> None:
        """Share the ledger difference since the last call equally among the running envs."""
        now = self._snapshot().table
        self.env_tables += (now - self.last) / self.cfg.num_envs
        self.last = now

    # -- the loop -----------------------------------------------------------------------------

    def run(self, session_steps: int | None = None,
            before_step: Callable[["Trainer"], None] | None = None) -> dict[str, Any]:
        """Train to `total_steps`, or pause (checkpointed) after `session_steps` more steps.

        `before_step` is called before every vector step (experiments/throughput.py uses it to
        interleave two runs)."""
        cfg = self.cfg
        stop = cfg.total_steps if session_steps is None else min(cfg.total_steps,
                                                                 self.step + session_steps)
        writer = SummaryWriter(str(self.run_dir.path), purge_step=self.step or None)
        recent = deque((e["return"] for e in self.episodes[-100:]), maxlen=100)
        if self.obs is None:
            self.obs, _ = self.envs.reset(seed=cfg.seed if self.step == 0 else cfg.seed + self.step)
        bar = tqdm(total=cfg.total_steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not self.progress, desc=f"{self.spec.name} {cfg.backend}")
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        self._clock = (time.monotonic(), self.step)
        try:
            while self.step < stop:
                if before_step is not None:
                    before_step(self)
                self._vector_step(writer, recent)
                if self.progress and self.step % (50 * cfg.num_envs) < cfg.num_envs:
                    bar.n = self.step
                    bar.set_postfix(self._postfix(recent), refresh=True)
                if self._stop_signal is not None:
                    raise Interrupted()
            bar.n = self.step
            bar.refresh()
        finally:
            bar.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            writer.flush()
            if self._stop_signal is not None:
                self._checkpoint()
            writer.close()
        self._checkpoint()
        return summarise(self)

    def _on_signal(self, signum: int, frame) -> None:
        self._stop_signal = signum

    @property
    def wall(self) -> float:
        """Seconds of training over all sessions of this run."""
        return self.wall_before + time.monotonic() - self._clock[0]

    def sps(self) -> float:
        """Environment steps per second in this session."""
        return (self.step - self._clock[1]) / max(time.monotonic() - self._clock[0], 1e-9)

    def _postfix(self, recent) -> dict[str, str]:
        total = self._snapshot()
        energy = sum(price(total, self.tech).values())
        return {"ret": f"{np.mean(recent):.1f}" if recent else "-",
                "sps": f"{self.sps():.0f}",
                "writes": f"{total.writes:.3g}", "energy": f"{energy:.3g}J"}

    def _vector_step(self, writer: SummaryWriter, recent: deque) -> None:
        cfg, agent = self.cfg, self.agent
        eps = cfg.agent.epsilon(self.step, cfg.total_steps)
        actions = agent.act(self.obs, eps)
        with self.timer.phase("env"):
            next_obs, rewards, terminated, truncated, info = self.envs.step(actions)
        learn_rewards = (np.clip(rewards, *self.reward_clip) if self.reward_clip else rewards)
        agent.store(self.replay, self.obs, actions, learn_rewards.astype(np.float32), next_obs,
                    terminated, truncated, ~info["autoreset"])
        self.obs = next_obs
        before, self.step = self.step, self.step + cfg.num_envs
        a = cfg.agent
        if self.step > a.learning_starts:
            rounds = self.step // a.train_freq - max(before, a.learning_starts) // a.train_freq
            for _ in range(rounds * a.gradient_steps):
                metrics = agent.train_step(self.replay)
            if rounds:
                self.last_losses = {k: float(v) for k, v in metrics.items()}
                writer.add_scalar("losses/td_loss", self.last_losses["td_loss"], self.step)
                writer.add_scalar("losses/q_values", self.last_losses["q_values"], self.step)
                writer.add_scalar("charts/epsilon", eps, self.step)
        if self.step // a.target_period > before // a.target_period:
            agent.sync_target()
        if info["game_over"].any():
            with self.timer.phase("logging"):
                self._log_episodes(info, eps, writer, recent)
        if cfg.eval_episodes and self.step // cfg.eval_every > before // cfg.eval_every:
            with self.timer.phase("evaluation"):
                self._evaluate(writer)
        if self.step // cfg.checkpoint_every > before // cfg.checkpoint_every:
            with self.timer.phase("checkpoint"):
                writer.add_scalar("charts/SPS", self.sps(), self.step)
                writer.flush()
                self._checkpoint()

    def _log_episodes(self, info: dict, eps: float, writer: SummaryWriter, recent: deque) -> None:
        self._attribute()
        dead = self.agent.dead_cell_fraction()
        writer.add_scalar("device/dead_cell_fraction", dead, self.step)
        records = []
        for i in np.flatnonzero(info["game_over"]):
            ledger = LedgerSnapshot(self.env_tables[i].copy(), DQN_PHASES)
            self.env_tables[i] = 0.0
            energy = price(ledger, self.tech)
            record = {"episode": len(self.episodes), "step": self.step, "env": int(i),
                      "return": float(info["game_return"][i]),
                      "length": int(info["game_length"][i]),
                      "writes": int(round(ledger.writes)),
                      "weight_writes": int(round(ledger.weight_writes)),
                      "replay_writes": int(round(ledger.count("rram_memory_write_bits"))),
                      "energy_j": sum(energy.values()),
                      "energy": energy, "epsilon": eps, "dead_cell_fraction": dead,
                      "ledger": ledger.as_dict()}
            records.append(record)
            self.episodes.append(record)
            recent.append(record["return"])
            writer.add_scalar("charts/episodic_return", record["return"], self.step)
            writer.add_scalar("charts/episodic_length", record["length"], self.step)
            writer.add_scalar("device/episode_writes", record["writes"], self.step)
            writer.add_scalar("device/episode_weight_writes", record["weight_writes"], self.step)
            writer.add_scalar("device/episode_energy_j", record["energy_j"], self.step)
            for category, joules in energy.items():
                writer.add_scalar(f"energy/{category}", joules, self.step)
        self.run_dir.append("episodes.jsonl", records)

    def _evaluate(self, writer: SummaryWriter) -> None:
        """Play `eval_episodes` episodes at eval_epsilon on the eval env; cost kept apart."""
        self._attribute()
        env, returns = self.eval_env, []
        obs, _ = env.reset(seed=self.cfg.seed + 100_003 + self.step)
        while len(returns) < self.cfg.eval_episodes:
            obs, _, _, _, info = env.step(self.agent.act(obs, self.cfg.eval_epsilon))
            returns += [float(r) for r in info["game_return"][info["game_over"]]]
        now = self._snapshot().table
        cost = LedgerSnapshot(now - self.last, DQN_PHASES)
        self.eval_table += cost.table
        self.last = now
        record = {"step": self.step, "mean_return": float(np.mean(returns)), "returns": returns,
                  "epsilon": self.cfg.eval_epsilon, "energy_j": sum(price(cost, self.tech).values()),
                  "ledger": cost.as_dict()}
        self.evals.append(record)
        self.run_dir.append("evals.jsonl", [record])
        writer.add_scalar("eval/episodic_return", record["mean_return"], self.step)

    # -- checkpoints --------------------------------------------------------------------------

    def _checkpoint(self) -> None:
        self._attribute()
        state = {
            "version": CHECKPOINT_VERSION, "config": self.cfg.to_toml(self.spec),
            "step": self.step, "episodes": len(self.episodes), "evals": len(self.evals),
            "agent": self.agent.state_dict(), "replay": self.replay.state_dict(),
            "chip": self.chip.state_dict() if self.chip is not None else None,
            "setup": self.setup.table, "last": self.last, "env_tables": self.env_tables,
            "abandoned": self.abandoned, "eval_table": self.eval_table, "wall": self.wall,
            "obs": self.obs, "envs": _save_envs(self.envs), "eval_env": _save_envs(self.eval_env),
        }
        self.run_dir.save_checkpoint(state)
        self.run_dir.write_json("summary.json", summarise(self))

    def restore(self) -> None:
        state = self.run_dir.load_checkpoint(self.device)
        if state.get("version") != CHECKPOINT_VERSION or "agent" not in state:
            raise RunDirError(f"{self.run_dir.checkpoint_file} is not an rlime checkpoint of "
                              f"version {CHECKPOINT_VERSION}")
        saved = dataclasses.replace(RunConfig.from_toml(state["config"]),
                                    total_steps=self.cfg.total_steps)
        if saved != self.cfg:
            raise RunDirError(f"{self.run_dir.checkpoint_file} belongs to a different configuration "
                              f"than {self.run_dir.config_file}; restore the matching config.toml "
                              f"or start a new run")
        self.agent.load_state_dict(state["agent"])
        self.replay.load_state_dict(state["replay"])
        if self.chip is not None:
            self.chip.load_state_dict(state["chip"])
        self.step, self.wall_before = state["step"], state["wall"]
        self.setup = LedgerSnapshot(state["setup"], DQN_PHASES)
        self.last, self.env_tables = state["last"], state["env_tables"]
        self.abandoned, self.eval_table = state["abandoned"], state["eval_table"]
        self.run_dir.truncate_jsonl("episodes.jsonl", state["episodes"])
        self.run_dir.truncate_jsonl("evals.jsonl", state["evals"])
        self.episodes = self.run_dir.read_jsonl("episodes.jsonl")
        self.evals = self.run_dir.read_jsonl("evals.jsonl")
        envs = _load_envs(state["envs"])
        if envs is not None:
            self.envs, self.obs = envs, state["obs"]
            self.eval_env = _load_envs(state["eval_env"]) or self.eval_env
        else:  # environments that cannot be saved restart; unfinished episodes are abandoned
            self.abandoned = self.abandoned + self.env_tables.sum(0)
            self.env_tables[:] = 0.0
            self.obs = None


def _save_envs(envs) -> bytes | None:
    """Pickled vector env (its factory closures left out), or None when it cannot be saved."""
    inner = envs.env
    factories = getattr(inner, "env_fns", None)
    try:
        if factories is not None:
            inner.env_fns = None
        return pickle.dumps(envs)
    except (TypeError, AttributeError, pickle.PicklingError):
        return None
    finally:
        if factories is not None:
            inner.env_fns = factories


def _load_envs(blob: bytes | None):
    return pickle.loads(blob) if blob is not None else None
