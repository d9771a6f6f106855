"""The command line of `python -m rlime.train`: flags -> RunConfig -> a Trainer in its run directory.

Exit codes (`rlime.harness.session`): 0 done (or paused after --session-steps), 2 bad input
(nothing is started), 3 a numerical failure (the last good checkpoint is kept), 130
interrupted (checkpoint saved).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from envs import resolve_env

from rlime.harness.pipeline import settings_from_args, settings_help as pipeline_help
from rlime.harness.run_config import (SCHEMA, RunConfig, describe, env_default_keys, parse_value,
                                      resolve)
from rlime.harness.session import command_main, command_parser
from rlime.harness.train import Trainer
from agents.dqn import NumericalFailure

RESUME_KEYS = ("run.total_steps", "run.threads")  # the flags --resume takes from the command line


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "python -m rlime.train", "Train a DQN agent in memory on a simulated RRAM crossbar and "
        "report the reward curve next to the programming pulses and energy of every episode.",
        SCHEMA, "run.env", env_default_keys(), "per env", "experiments/hyperparams.toml",
        "runs/<env>-<backend>-<mapping>-s<seed>", "--total-steps", "steps")
    p.add_argument("--profile", action="store_true",
                   help="time phases exactly on CUDA (synchronises the device; slower)")
    return p


def config_from_args(args: argparse.Namespace) -> tuple[RunConfig, Path]:
    cfg = resolve(settings_from_args(args, SCHEMA))
    default_dir = Path("runs") / f"{resolve_env(cfg.env).name}-{cfg.backend}-{cfg.mapping}-s{cfg.seed}"
    return cfg, Path(args.run_dir) if args.run_dir else default_dir


def settings_help(cfg: RunConfig, env_given: bool) -> str:
    where = (f"values for --env {cfg.env} and the flags given" if env_given else
             "built-in defaults; give --env (and flags) to see a run's values")
    return pipeline_help(describe(cfg), where)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return command_main(
        parser, args, required="run.env",
        help_text=lambda given: settings_help(config_from_args(args)[0] if given
                                              else RunConfig(env="-"), given),
        new=lambda: config_from_args(args), load=RunConfig.from_toml, resume_keys=RESUME_KEYS,
        parse_value=parse_value,
        make=lambda cfg, run_dir: Trainer(cfg, run_dir, progress=not args.no_progress,
                                          profile=args.profile),
        config_text=lambda cfg, trainer: cfg.to_toml(trainer.spec), command="rlime.train",
        failures=(NumericalFailure,), summary_text=format_summary)


def format_summary(summary: dict[str, Any]) -> str:
    rows = [("env", summary["env_id"]), ("backend / mapping", f"{summary['backend']} / {summary['mapping']}"),
            ("steps", f"{summary['steps']:,}"), ("episodes", f"{summary['episodes']:,}"),
            ("final score (last 100)", _num(summary["final_score"])),
            ("eval score (last)", _num(summary["eval_score"])),
            ("total writes (weight pulses)", f"{summary['writes_total']:,}"),
            ("writes / episode", _num(summary["writes_per_episode"])),
            ("target-sync pulses / episode", _num(summary["target_sync_pulses_per_episode"])),
            ("replay write bits / episode", _num(summary["replay_write_bits_per_episode"])),
            ("total energy", f"{summary['energy_j_total']:.4g} J"),
            ("energy / episode", f"{_num(summary['energy_j_per_episode'])} J"),
            ("wall time / SPS", f"{summary['wall_s']:.0f} s / {summary['sps']:.0f}"),
            ("run directory", summary["run_dir"])]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _num(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"
