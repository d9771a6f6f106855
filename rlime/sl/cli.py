"""The command line of `python -m rlime.sl`: flags -> SLConfig -> an SLTrainer in its run
directory (the lifecycle and exit codes are the train command's, `rlime.harness.session`).

    python -m rlime.sl --dataset digits [--network lenet] [--update-mode time] [--epochs N]
    python -m rlime.sl --dataset mnist --data DIR
    python -m rlime.sl --resume DIR [--epochs N]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rlime.harness.pipeline import settings_from_args, settings_help
from rlime.harness.session import command_main, command_parser
from rlime.sl.config import SCHEMA, SLConfig, default_keys, describe, resolve
from rlime.sl.trainer import NumericalFailure, SLTrainer

RESUME_KEYS = ("run.epochs", "run.threads")  # the flags --resume takes from the command line


def build_parser() -> argparse.ArgumentParser:
    return command_parser(
        "python -m rlime.sl", "Train a classifier in memory on the simulated RRAM chip (the "
        "layers, update modes, tuning and energy model of rlime.train) and report test accuracy "
        "next to the programming pulses and energy of every epoch, and the GPU and ASIC "
        "(DaDianNao) energy of the same training.", SCHEMA, "run.dataset", default_keys(),
        "per dataset", "experiments/sl_defaults.toml",
        "runs/sl-<dataset>-<network>-<backend>-s<seed>", "--epochs", "minibatch steps")


def config_from_args(args: argparse.Namespace) -> tuple[SLConfig, Path]:
    cfg = resolve(settings_from_args(args, SCHEMA))
    name = f"sl-{cfg.dataset}-{cfg.train.network}-{cfg.backend}-s{cfg.seed}"
    return cfg, Path(args.run_dir) if args.run_dir else Path("runs") / name


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def help_text(given: bool) -> str:
        cfg = config_from_args(args)[0] if given else SLConfig(dataset="digits")
        return settings_help(describe(cfg), "values for --dataset and the flags given" if given
                             else "built-in defaults; give --dataset (and flags) to see a "
                                  "run's values")

    return command_main(
        parser, args, required="run.dataset", help_text=help_text,
        new=lambda: config_from_args(args), load=SLConfig.from_toml, resume_keys=RESUME_KEYS,
        parse_value=SCHEMA.parse_value,
        make=lambda cfg, run_dir: SLTrainer(cfg, run_dir, progress=not args.no_progress),
        config_text=lambda cfg, trainer: cfg.to_toml(trainer.protocol()), command="rlime.sl",
        failures=(NumericalFailure,), summary_text=format_summary)


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
