"""`python -m rlime.train --env CartPole`: train DQN in memory and report what learning cost.

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

import argparse
import dataclasses
import math
import pickle
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.dqn import DQNAgent, NumericalFailure
from agents.replay import ReplayBuffer
from envs import make_vector_env, resolve_env

from rlime.hw.chip import Chip
from rlime.hw.config import ConfigError, PRESETS, TUNING_SCHEMES
from rlime.cost.energy import CATEGORIES, energy_preset, price
from rlime.hw.ledger import LedgerSnapshot
from rlime.drl.mappings import MAPPINGS
from rlime.harness.run_config import BACKENDS, RunConfig, parse_override, resolve
from rlime.harness.run_dir import RunDirectory, RunDirError, atomic_write_bytes
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
        self.chip = Chip(cfg.hardware, self.device, seed=cfg.seed) if cfg.backend == "rram" else None
        self.timer = PhaseTimer(self.device, synchronize=profile)
        self.agent = DQNAgent(cfg.agent, obs_space.shape, int(space.n), chip=self.chip,
                              mapping=cfg.mapping, device=self.device, seed=cfg.seed,
                              timer=self.timer)
        frame_stack = self.spec.protocol.get("frame_stack", 1) if self.spec.is_atari else 1
        self.replay = ReplayBuffer(cfg.agent.buffer_size, obs_space.shape, obs_space.dtype,
                                   cfg.num_envs, frame_stack=frame_stack, seed=cfg.seed)
        self.tech = energy_preset(cfg.energy_preset)
        self.reward_clip = self.spec.reward_clip
        n, shape = cfg.num_envs, LedgerSnapshot.zeros().table.shape
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
        return self.chip.ledger.snapshot() if self.chip is not None else LedgerSnapshot.zeros()

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
            ledger = LedgerSnapshot(self.env_tables[i].copy())
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
        cost = LedgerSnapshot(now - self.last)
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
        self.setup = LedgerSnapshot(state["setup"])
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


# -- command line ------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rlime.train",
        description="Train a DQN agent in memory on a simulated RRAM crossbar and report the "
                    "reward curve next to the programming pulses and energy of every episode.")
    p.add_argument("--env", help="short name (CartPole, Pong, Breakout, ...) or Gymnasium id")
    p.add_argument("--backend", choices=BACKENDS, help="rram (default) or float")
    p.add_argument("--mapping", choices=MAPPINGS, help="DRL mapping (default time)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="hardware preset (default default)")
    p.add_argument("--energy-preset", help="technology preset for pricing (default: --preset)")
    p.add_argument("--scheme", choices=TUNING_SCHEMES, help="tuning scheme override")
    p.add_argument("--total-steps", type=int, help="environment steps (summed over envs)")
    p.add_argument("--seed", type=int, help="random seed (default 1)")
    p.add_argument("--num-envs", type=int, help="parallel environments")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--run-dir", help="output directory (default runs/<env>-<backend>-<mapping>-s<seed>)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    p.add_argument("--eval-every", type=int, help="steps between evaluation rounds")
    p.add_argument("--eval-episodes", type=int, help="episodes per evaluation round (0 = none)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--double-dqn", action="store_true", default=None, help="use Double DQN")
    p.add_argument("--update-rule", choices=("sgd", "momentum", "adam"), help="update rule")
    p.add_argument("--learning-rate", "--lr", type=float, help="learning rate")
    p.add_argument("--terminal-on-life-loss", action="store_true", default=None,
                   help="Atari: a lost life ends the training episode (not the logged game)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="any other setting, e.g. device.c2c_sigma=0.01, agent.gamma=0.98, "
                        "tuning.max_pulses=30, run.eval_epsilon=0.01 (repeatable)")
    p.add_argument("--session-steps", type=int, metavar="N",
                   help="pause after N more steps with a checkpoint (continue with --resume)")
    p.add_argument("--profile", action="store_true",
                   help="time phases exactly on CUDA (synchronises the device; slower)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> tuple[RunConfig, Path]:
    spec = resolve_env(args.env)
    flags = {"backend": args.backend, "mapping": args.mapping, "preset": args.preset,
             "energy_preset": args.energy_preset, "total_steps": args.total_steps,
             "seed": args.seed, "num_envs": args.num_envs,
             "device": args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
             "eval_every": args.eval_every, "eval_episodes": args.eval_episodes,
             "checkpoint_every": args.checkpoint_every, "double_dqn": args.double_dqn,
             "update_rule": args.update_rule, "learning_rate": args.learning_rate,
             "terminal_on_life_loss": args.terminal_on_life_loss}
    overrides = [parse_override(text) for text in args.set]
    if args.scheme:
        overrides.append(("tuning.scheme", args.scheme))
    cfg = resolve(spec, args.env, flags, overrides)
    default_dir = Path("runs") / f"{spec.name}-{cfg.backend}-{cfg.mapping}-s{cfg.seed}"
    return cfg, Path(args.run_dir) if args.run_dir else default_dir


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        trainer = _prepare(parser, args)
    except (ConfigError, RunDirError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        summary = trainer.run(args.session_steps)
    except Interrupted:
        print(f"\ninterrupted at step {trainer.step}; checkpoint saved. Continue with:\n"
              f"  python -m rlime.train --resume {trainer.run_dir.path}", file=sys.stderr)
        return 130
    except NumericalFailure as err:
        print(f"\nerror at step {trainer.step}: {err}\nThe last good checkpoint in "
              f"{trainer.run_dir.path} was kept.", file=sys.stderr)
        return 3
    finally:
        trainer.run_dir.release()
    print(format_summary(summary))
    if trainer.step < trainer.cfg.total_steps:
        print(f"paused at step {trainer.step} of {trainer.cfg.total_steps}; continue with:\n"
              f"  python -m rlime.train --resume {trainer.run_dir.path}")
    return 0


def _prepare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Trainer:
    if args.resume:
        run_dir = RunDirectory(args.resume)
        if not run_dir.config_file.exists():
            raise RunDirError(f"{run_dir.path} holds no config.toml; there is no run to resume")
        cfg = RunConfig.from_toml(run_dir.config_file.read_text())
        if args.total_steps is not None:  # the one thing a resume may change: the budget
            cfg = dataclasses.replace(cfg, total_steps=args.total_steps)
        run_dir.claim()
        trainer = Trainer(cfg, run_dir, progress=not args.no_progress, profile=args.profile)
        trainer.restore()
        return trainer
    if not args.env:
        parser.error("--env is required (or --resume DIR)")
    cfg, path = config_from_args(args)
    run_dir = RunDirectory(path)
    if run_dir.config_file.exists():
        raise RunDirError(f"{path} already holds a run (config.toml); continue it with "
                          f"--resume {path}, or choose another --run-dir")
    run_dir.claim()
    trainer = Trainer(cfg, run_dir, progress=not args.no_progress, profile=args.profile)
    atomic_write_bytes(run_dir.config_file, cfg.to_toml(trainer.spec).encode())
    return trainer


def format_summary(summary: dict[str, Any]) -> str:
    rows = [("env", summary["env_id"]), ("backend / mapping", f"{summary['backend']} / {summary['mapping']}"),
            ("steps", f"{summary['steps']:,}"), ("episodes", f"{summary['episodes']:,}"),
            ("final score (last 100)", _num(summary["final_score"])),
            ("eval score (last)", _num(summary["eval_score"])),
            ("total writes", f"{summary['writes_total']:,}"),
            ("writes / episode", _num(summary["writes_per_episode"])),
            ("total energy", f"{summary['energy_j_total']:.4g} J"),
            ("energy / episode", f"{_num(summary['energy_j_per_episode'])} J"),
            ("wall time / SPS", f"{summary['wall_s']:.0f} s / {summary['sps']:.0f}"),
            ("run directory", summary["run_dir"])]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _num(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"
