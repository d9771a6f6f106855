"""One training run (`Trainer`): train DQN in memory and report what learning cost.

The Trainer runs the loop and holds its parts: the backend (`rlime.hw.backend`), the agent and
replay, the ledger attribution (`rlime.harness.attribution`: setup, episodes, evaluation,
abandoned, in progress), the episode log (`rlime.harness.episode_log`: episodes.jsonl,
evals.jsonl, TensorBoard) and summary.json (`rlime.harness.summary`).

Checkpoints (at step 0, every `checkpoint_every` steps, and on SIGINT/SIGTERM) hold everything
needed to continue exactly: cells, counters, ledger, optimizer, replay, random streams, progress,
time split, and the environments themselves where they can be saved (classic control; ALE envs
restart with fresh episodes and the unfinished ones are reported as `abandoned`). With
`run.checkpoint_replay = false` the replay is left out: a resumed run refills it for
`learning_starts` steps before it trains again, and no longer matches an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import pickle
import sys
import time
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.dqn import DQNAgent
from agents.replay import ReplayBuffer
from envs import make_vector_env, resolve_env

from rlime.common.errors import ConfigError
from rlime.common.timing import PhaseTimer
from rlime.cost.energy import energy_preset, price
from rlime.drl.phases import DQN_PHASES
from rlime.harness.attribution import Attribution
from rlime.hw.optim import sram_bits_per_cell
from rlime.harness.episode_log import EpisodeLog
from rlime.harness.run_config import RunConfig
from rlime.harness.run_dir import RunDirectory
from rlime.harness.session import (Interrupted, RecentRate, StopSignals, choose_threads,
                                   nbytes, restore_state, physical_cores, progress_bar, size_text)
from rlime.harness.summary import RunFacts, summarise
from rlime.hw.backend import make_backend

CHECKPOINT_VERSION = 2
REFRESH_S = 1.0    # seconds between progress-bar refreshes
SPS_WINDOW_S = 30.0  # seconds of recent steps the shown and logged SPS average over
SPS_EVERY = 100    # steps between charts/SPS points (CleanRL's cadence)


class Trainer:
    """One training run in one run directory."""

    def __init__(self, cfg: RunConfig, run_dir: RunDirectory, *, progress: bool = True,
                 profile: bool = False) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.progress = progress
        self.device = torch.device(cfg.device)
        self.threads, self.threads_reason = choose_threads(cfg.threads)
        torch.set_num_threads(self.threads)
        try:  # what the env settings cannot apply to (e.g. rescaling unbounded observations)
            self.spec = resolve_env(cfg.env).configured(
                terminal_on_life_loss=cfg.terminal_on_life_loss,
                rescale_observations=cfg.rescale_observations)
            self.envs = make_vector_env(self.spec, cfg.num_envs, cfg.seed,
                                        terminal_on_life_loss=cfg.terminal_on_life_loss)
            self.eval_env = make_vector_env(self.spec, 1, cfg.seed + 100_003, eval_mode=True)
        except ValueError as error:
            raise ConfigError(str(error)) from error
        space = self.envs.single_action_space
        if not hasattr(space, "n"):
            raise ConfigError(f"{self.spec.env_id} has a {type(space).__name__} action space; DQN "
                              f"needs a discrete one (e.g. CartPole, Acrobot, MountainCar, ALE games)")
        obs_space = self.envs.single_observation_space
        self.backend = make_backend(cfg.backend, cfg.hardware, self.device, cfg.seed, DQN_PHASES)
        self.timer = PhaseTimer(self.device, synchronize=profile)
        self.agent = DQNAgent(cfg.agent, obs_space.shape, int(space.n), backend=self.backend,
                              mapping=cfg.mapping, device=self.device, seed=cfg.seed,
                              timer=self.timer)
        frame_stack = self.spec.protocol.get("frame_stack", 1) if self.spec.is_atari else 1
        self.replay = ReplayBuffer(cfg.agent.buffer_size, obs_space.shape, obs_space.dtype,
                                   cfg.num_envs, frame_stack=frame_stack, seed=cfg.seed)
        self.tech = energy_preset(cfg.energy_preset, cfg.hardware.device, cfg.hardware.tile,
                                  sram_bits_per_cell(cfg.agent.update_rule,
                                                     cfg.hardware.tuning.residual))
        self.reward_clip = self.spec.reward_clip
        # progress and attribution state (all of it checkpointed)
        self.step = 0
        self.attribution = Attribution(self.backend.snapshot, cfg.num_envs)  # setup: Q, target
        self.episode_log = EpisodeLog(run_dir, self.tech)
        self.wall_before = 0.0                         # seconds spent in earlier sessions
        self._clock = (time.monotonic(), 0)            # (start time, start step) of this session
        self.rate = RecentRate(SPS_WINDOW_S)
        self.learn_from = cfg.agent.learning_starts    # training rounds run after this step
        self._bar: tqdm | None = None
        self._saved_step: int | None = None            # step of the last checkpoint written
        self.obs = None
        self.last_losses: dict[str, float] = {}
        self.probe_lines = 0                           # lines written to probes.jsonl
        self.probed_at = -1                            # step of the last probed training round
        self.probe_sync = False                        # measure the next target sync
        self._stop = StopSignals()

    # -- the loop -----------------------------------------------------------------------------

    def run(self, session_steps: int | None = None,
            before_step: Callable[["Trainer"], None] | None = None) -> dict[str, Any]:
        """Train to `total_steps`, or pause (checkpointed) after `session_steps` more steps.

        `before_step` is called before every vector step (experiments/throughput.py uses it to
        interleave two runs)."""
        cfg = self.cfg
        stop = cfg.total_steps if session_steps is None else min(cfg.total_steps,
                                                                 self.step + session_steps)
        # events after the checkpoint's step are lost work (those at its step it saw)
        writer = SummaryWriter(str(self.run_dir.path),
                               purge_step=self.step + 1 if self.step else None)
        if self.obs is None:
            self.obs, _ = self.envs.reset(seed=cfg.seed if self.step == 0 else cfg.seed + self.step)
        self._bar = progress_bar(cfg.total_steps, self.step, "step",
                                 f"{self.spec.name} {cfg.backend}", self.progress)
        self._clock = (time.monotonic(), self.step)
        self.rate.add(self.step)
        try:
            with self._stop:
                if self.step == 0:  # a run killed before its first periodic checkpoint can resume
                    self._checkpoint()
                shown = -REFRESH_S
                while self.step < stop:
                    if before_step is not None:
                        before_step(self)
                    self._vector_step(writer)
                    if self.progress and time.monotonic() - shown >= REFRESH_S:
                        self._show()
                        shown = time.monotonic()
                    if self._stop.signal is not None:
                        raise Interrupted()
                self._show()
        finally:
            self._bar.close()
            writer.flush()
            if self._stop.signal is not None and self._saved_step != self.step:
                self._checkpoint()
            writer.close()
        if self._saved_step != self.step:
            self._checkpoint()
        return self.summary()

    def position(self) -> str:
        """Where the run is: "step 400"."""
        return f"step {self.step}"

    def finished(self) -> bool:
        return self.step >= self.cfg.total_steps

    @property
    def wall(self) -> float:
        """Seconds of training over all sessions of this run."""
        return self.wall_before + time.monotonic() - self._clock[0]

    def sps(self) -> float:
        """Environment steps per second, averaged over this session."""
        return (self.step - self._clock[1]) / max(time.monotonic() - self._clock[0], 1e-9)

    def phase(self) -> str:
        """What the run is doing: "filling replay 52k/80k" (no training yet) or "learning"."""
        if self.step > self.learn_from:
            return "learning"
        starts = self.cfg.agent.learning_starts
        return f"filling replay {_count(starts - (self.learn_from - self.step))}/{_count(starts)}"

    def summary(self) -> dict[str, Any]:
        """summary.json as of now."""
        log = self.episode_log
        return summarise(RunFacts(
            cfg=self.cfg, env_id=self.spec.env_id, protocol=self.spec.protocol,
            mapping_info=self.agent.mapping.describe(), steps=self.step,
            episodes=log.episodes, evals=log.evals, ledger=self.attribution.split(),
            tech=self.tech, replay_bytes=self.replay.nbytes,
            replay_bytes_per_transition=self.replay.bytes_per_transition,
            on_chip=self.backend.on_chip, cell_pulse_counts=self.agent.cell_pulse_counts(),
            dead_cell_fraction=self.agent.dead_cell_fraction(), wall_s=self.wall,
            sps=self.sps(), time_split_s=self.timer.seconds, run_dir=str(self.run_dir.path)))

    def _show(self, phase: str | None = None) -> None:
        """Refresh the progress bar: `phase` (default: `self.phase()`), recent SPS and ETA,
        mean return of the last 100 episodes, writes (weight-programming pulses, as
        `LedgerSnapshot.writes`; target-sync pulses and replay bits beside them, labelled, when
        there are any) and energy so far."""
        if not self.progress:
            return
        recent = self.episode_log.recent
        total = self.backend.snapshot()
        energy = sum(price(total, self.tech).values())
        sps = self.rate.rate()
        eta = tqdm.format_interval((self.cfg.total_steps - self.step) / sps) if sps > 0 else "?"
        ret = f"{np.mean(recent):.1f}" if recent else "-"
        self._bar.n = self.step
        writes = f"writes {total.writes:.3g}"
        if total.copy_pulses:
            writes += f", sync {total.copy_pulses:.3g} pulses"
        if total.memory_write_bits:
            writes += f", replay {total.memory_write_bits:.3g} bits"
        self._bar.set_postfix_str(f"{phase or self.phase()} | {sps:.0f} sps, ETA {eta} | "
                                  f"ret {ret} | {writes} | {energy:.3g} J")

    def _vector_step(self, writer: SummaryWriter) -> None:
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
        if self.step > self.learn_from:
            rounds = self.step // a.train_freq - max(before, self.learn_from) // a.train_freq
            # device probes (`rlime.hw.probe`): the first training round after each multiple
            # of probe_every is measured whole (a CartPole round is 128 updates, an Atari one 1)
            every = cfg.probe_every
            probe = rounds and every and self.step // every > self.probed_at // every
            if probe:
                agent.start_probe()
            for _ in range(rounds * a.gradient_steps):
                metrics = agent.train_step(self.replay)
            if probe:
                self.probed_at = self.step
                self._log_probe("update", agent.take_probe(), writer)
                self.probe_sync = True
            if rounds:
                self.last_losses = {k: float(v) for k, v in metrics.items()}
                writer.add_scalar("losses/td_loss", self.last_losses["td_loss"], self.step)
                writer.add_scalar("losses/q_values", self.last_losses["q_values"], self.step)
                writer.add_scalar("charts/epsilon", eps, self.step)
        if self.step // a.target_period > before // a.target_period:
            agent.sync_target()
            if self.probe_sync:
                self.probe_sync = False
                self._log_probe("sync", agent.sync_gap(), writer)
        if info["game_over"].any():
            with self.timer.phase("logging"):
                self._log_episodes(info, eps, writer)
        if self.step // SPS_EVERY > before // SPS_EVERY:
            self.rate.add(self.step)
            writer.add_scalar("charts/SPS", self.rate.rate(), self.step)
        if cfg.eval_episodes and self.step // cfg.eval_every > before // cfg.eval_every:
            self._show(f"evaluating ({cfg.eval_episodes} episodes)")
            with self.timer.phase("evaluation"):
                self.evaluate(writer)
        if self.step // cfg.checkpoint_every > before // cfg.checkpoint_every:
            with self.timer.phase("checkpoint"):
                writer.flush()
                self._checkpoint()

    def _log_probe(self, kind: str, stats: dict[str, float], writer: SummaryWriter) -> None:
        """The device's view of the last update or sync (`rlime.hw.probe`): TensorBoard
        `device/<layer>/<stat>` and a line of `probes.jsonl`; nothing on float."""
        if not stats:
            return
        for name, value in stats.items():
            writer.add_scalar(f"device/{name}", value, self.step)
        self.run_dir.append("probes.jsonl", [{"step": self.step, "kind": kind, **stats}])
        self.probe_lines += 1

    def _log_episodes(self, info: dict, eps: float, writer: SummaryWriter) -> None:
        self.attribution.attribute()
        finished = [(int(i), float(info["game_return"][i]), int(info["game_length"][i]),
                     self.attribution.finish_episode(i))
                    for i in np.flatnonzero(info["game_over"])]
        self.episode_log.log_episodes(writer, self.step, finished, eps,
                                      self.agent.dead_cell_fraction())

    def evaluate(self, writer: SummaryWriter) -> None:
        """Play `eval_episodes` episodes at eval_epsilon on the eval env; cost kept apart."""
        self.attribution.attribute()
        env, returns = self.eval_env, []
        obs, _ = env.reset(seed=self.cfg.seed + 100_003 + self.step)
        while len(returns) < self.cfg.eval_episodes:
            obs, _, _, _, info = env.step(self.agent.act(obs, self.cfg.eval_epsilon))
            returns += [float(r) for r in info["game_return"][info["game_over"]]]
        self.episode_log.log_eval(writer, self.step, returns, self.cfg.eval_epsilon,
                          self.attribution.book_eval())

    # -- checkpoints --------------------------------------------------------------------------

    def _checkpoint(self) -> None:
        """Write checkpoint.pt and summary.json, saying on stderr first what is saved."""
        self.attribution.attribute()
        state = {
            "version": CHECKPOINT_VERSION, "config": self.cfg.to_toml(self.spec),
            "step": self.step, "log": self.episode_log.state_dict(),
            "agent": self.agent.state_dict(),
            "replay": self.replay.state_dict() if self.cfg.checkpoint_replay else None,
            "backend": self.backend.state_dict(), "attribution": self.attribution.state_dict(),
            "probes": [self.probe_lines, self.probe_sync, self.probed_at],
            "wall": self.wall, "time_split_s": dict(self.timer.seconds), "obs": self.obs,
            "envs": save_envs(self.envs), "eval_env": save_envs(self.eval_env),
        }
        tqdm.write(self._checkpoint_line(state), file=sys.stderr)
        self.run_dir.save_checkpoint(state)
        self.run_dir.write_json("summary.json", self.summary())
        self._saved_step = self.step

    def _checkpoint_line(self, state: dict[str, Any]) -> str:
        """'checkpoint at step N -> path: about X MB (replay ..., agent ..., ...)', from the
        bytes of the arrays, tensors and pickles in `state`."""
        sizes = {part: nbytes(value) for part, value in state.items()}
        total = sum(sizes.values())
        replay = (f"replay {size_text(sizes['replay'])}: {len(self.replay):,} transitions"
                  if state["replay"] is not None else "replay not saved (run.checkpoint_replay)")
        envs = sizes["envs"] + sizes["eval_env"]
        other = total - sizes["replay"] - sizes["agent"] - envs
        return (f"checkpoint at step {self.step:,} -> {self.run_dir.checkpoint_file}: about "
                f"{size_text(total)} ({replay}; agent {size_text(sizes['agent'])}; envs {size_text(envs)}; "
                f"other {size_text(other)})")

    def restore(self) -> None:
        state = restore_state(  # the budget and threads may change on resume
            self.run_dir, self.device, CHECKPOINT_VERSION, "checkpoint",
            lambda text: dataclasses.replace(RunConfig.from_toml(text), total_steps=self.cfg.total_steps,
                                             threads=self.cfg.threads), self.cfg,
            {"agent": self.agent, "backend": self.backend, "attribution": self.attribution})
        self.step, self.wall_before = state["step"], state["wall"]
        if state["replay"] is not None:
            self.replay.load_state_dict(state["replay"])
        else:  # saved without its replay: refill it before training again
            self.learn_from = self.step + self.cfg.agent.learning_starts
        self.timer.seconds.clear()  # the time split continues that of the earlier sessions
        self.timer.seconds.update(state.get("time_split_s", {}))  # older checkpoints: none
        self.episode_log.load_state_dict(state["log"])
        self.probe_lines, self.probe_sync, self.probed_at = state.get(  # older: none
            "probes", (0, False, -1))
        self.run_dir.truncate_jsonl("probes.jsonl", self.probe_lines)
        envs = load_envs(state["envs"])
        if envs is not None:
            self.envs, self.obs = envs, state["obs"]
            self.eval_env = load_envs(state["eval_env"]) or self.eval_env
        else:  # environments that cannot be saved restart; unfinished episodes are abandoned
            self.attribution.abandon_running()
            self.obs = None


def save_envs(envs) -> bytes | None:
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


def load_envs(blob: bytes | None):
    return pickle.loads(blob) if blob is not None else None


def _count(n: int) -> str:
    """A step count for the progress bar: 300, 1000, 52k."""
    return f"{n // 1000}k" if n >= 10_000 else str(n)
