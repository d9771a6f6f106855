"""The command line of `python -m rlime.train`: flags -> RunConfig -> a Trainer in its run directory.

Exit codes: 0 done (or paused after --session-steps), 2 bad input (nothing is started), 3 a
numerical failure (the last good checkpoint is kept), 130 interrupted (checkpoint saved).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

import torch

from envs import resolve_env

from rlime.common.errors import ConfigError
from rlime.common.files import atomic_write
from rlime.drl.mappings import MAPPINGS
from rlime.harness.run_config import BACKENDS, RunConfig, parse_override, resolve
from rlime.harness.run_dir import RunDirectory, RunDirError
from rlime.harness.train import Interrupted, Trainer
from rlime.hw.config import PRESETS, TUNING_SCHEMES
from agents.dqn import NumericalFailure


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
    atomic_write(run_dir.config_file, cfg.to_toml(trainer.spec))
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
