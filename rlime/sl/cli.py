"""The command line of `python -m rlime.sl`: flags -> SLConfig -> an SLTrainer in its run
directory (the lifecycle and exit codes are the train command's, `rlime.harness.session`).

    python -m rlime.sl --dataset digits [--network lenet] [--update-mode time] [--epochs N]
    python -m rlime.sl --dataset mnist --data DIR
    python -m rlime.sl --resume DIR [--epochs N]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from rlime.common.errors import ConfigError
from rlime.harness.pipeline import add_flags, settings_from_args, settings_help
from rlime.harness.session import open_run, run_command
from rlime.sl.config import SCHEMA, SLConfig, default_keys, describe, resolve
from rlime.sl.trainer import NumericalFailure, SLTrainer

RESUME_KEYS = ("run.epochs", "run.threads")  # the flags --resume takes from the command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rlime.sl",
        description="Train a classifier in memory on the simulated RRAM chip (the layers, "
                    "update modes, tuning and energy model of rlime.train) and report test "
                    "accuracy next to the programming pulses and energy of every epoch, and "
                    "the GPU and ASIC (DaDianNao) energy of the same training. Every flag "
                    "below is a shorthand for one --set setting.")
    keys = default_keys()
    add_flags(p, SCHEMA, "run.dataset",
              lambda key: SCHEMA.default_text(key, keys, "per dataset", "experiments/sl_defaults.toml"))
    p.add_argument("--run-dir", help="output directory (default "
                                     "runs/sl-<dataset>-<network>-<backend>-s<seed>)")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the run in DIR from its checkpoint (--epochs and --threads "
                        "may change); a run without one starts over")
    p.add_argument("--session-steps", type=int, metavar="N",
                   help="pause after N more minibatch steps with a checkpoint (continue with "
                        "--resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> tuple[SLConfig, Path]:
    cfg = resolve(settings_from_args(args, SCHEMA))
    name = f"sl-{cfg.dataset}-{cfg.train.network}-{cfg.backend}-s{cfg.seed}"
    return cfg, Path(args.run_dir) if args.run_dir else Path("runs") / name


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.help_settings:
        try:
            given = getattr(args, "run.dataset") is not None
            cfg = config_from_args(args)[0] if given else SLConfig(dataset="digits")
        except (ConfigError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        where = ("values for --dataset and the flags given" if given else
                 "built-in defaults; give --dataset (and flags) to see a run's values")
        print(settings_help(describe(cfg), where))
        return 0
    return run_command(lambda: _prepare(parser, args), command="rlime.sl",
                       session=args.session_steps, failures=(NumericalFailure,),
                       summary_text=format_summary)


def _prepare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> SLTrainer:
    if not args.resume and not getattr(args, "run.dataset"):
        parser.error("--dataset is required (or --resume DIR)")

    def on_resume(cfg: SLConfig) -> SLConfig:
        changes = {key.partition(".")[2]: SCHEMA.parse_value(key, getattr(args, key))
                   for key in RESUME_KEYS if getattr(args, key) is not None}
        return dataclasses.replace(cfg, **changes)

    return open_run(resume=args.resume, new=lambda: config_from_args(args),
                    load=SLConfig.from_toml, on_resume=on_resume,
                    make=lambda cfg, run_dir: SLTrainer(cfg, run_dir, progress=not args.no_progress),
                    config_text=lambda cfg, trainer: cfg.to_toml(trainer.protocol()))


def format_summary(summary: dict[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f} %"

    def num(value: float | None, unit: str = "") -> str:
        return "-" if value is None else f"{value:.4g}{unit}"

    rows = [("dataset / network", f"{summary['dataset']} / {summary['network']}"),
            ("backend / preset / mode", f"{summary['backend']} / {summary['preset']} / "
                                        f"{summary['update_mode']}"),
            ("epochs / steps", f"{summary['epochs']} / {summary['steps']:,}"),
            ("test accuracy (last / best)", f"{pct(summary['test_accuracy'])} / "
                                            f"{pct(summary['best_test_accuracy'])}"),
            ("writes total (weight pulses)", f"{summary['writes_total']:,}"),
            ("writes / epoch", num(summary["writes_per_epoch"])),
            ("energy total", num(summary["energy_j_total"], " J")),
            ("energy / epoch", num(summary["energy_j_per_epoch"], " J"))]
    baselines = summary.get("baselines")
    if baselines:
        rows += [("GPU / RRAM (Titan X, u 0.3)", num(baselines["gpu_over_rram"], "x")),
                 ("ASIC / RRAM (DaDianNao)", num(baselines["asic_over_rram"], "x"))]
    rows += [("wall time", f"{summary['wall_s']:.0f} s"), ("run directory", summary["run_dir"])]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
