"""Can the chip keep a policy it did not find? A float run's checkpoint continued on RRAM.

    python experiments/warm_start.py FLOAT_RUN_DIR --out DIR [--steps 20000]
                                     [--set SECTION.KEY=VALUE ...]

Builds an RRAM run of the float run's configuration (backend rram; `--preset` a hardware preset
of its own, e.g. `ideal`, and the hardware settings given with `--set`, e.g. `tile.weight_headroom=32` for a conductance range wide enough for
float's weights; nothing else changed),
programs the float checkpoint's Q-network into its Q arrays through the run's tuning scheme
(phase `program`) and syncs its target arrays (phase `target_sync`) -- both part of the new
run's setup cost -- and gives it the float checkpoint's Adam state, step, replay and
environments (so its exploration schedule continues where float's was). It then plays the
run's `eval_episodes` on the chip at once (the readout of the float policy: printed, and
logged as the new run's first line of evals.jsonl) and trains on the chip for `--steps` more
steps, evaluating every `eval_every` as any run does. DIR is an ordinary run directory
(`python -m rlime.train --resume DIR` continues it; `experiments/probe_summary.py` reads it).

Where float learned and RRAM from scratch did not, this separates the two halves of learning:
a chip that holds (or improves) the float policy here can represent and keep it, and its
failure from scratch is in finding it.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter

from experiments.readout_policy import play_exact
from rlime.common.errors import ConfigError
from rlime.common.files import atomic_write
from rlime.harness.attribution import Attribution
from rlime.harness.cli import format_summary
from rlime.harness.run_config import SCHEMA, RunConfig
from rlime.harness.run_dir import RunDirectory, RunDirError
from rlime.harness.train import Trainer, load_envs
from rlime.hw.config import SECTIONS as HARDWARE_SECTIONS, preset
from rlime.hw.layers import CrossbarLayer, program_weights
from rlime.hw.probe import level_of


def programming_error(layer: CrossbarLayer, asked: torch.Tensor) -> float:
    """RMS of the layer's realised weights less `asked`, in conductance levels."""
    return float(((layer.realised() - asked.view_as(layer.weight)) / level_of(layer.array))
                 .pow(2).mean().sqrt())


def hardware_overrides(texts: list[str]) -> dict[str, Any]:
    """{'section.key': value} of `--set` texts; only the hardware's sections may change."""
    overrides = dict(SCHEMA.parse_override(text) for text in texts)
    for key in overrides:
        if key.partition(".")[0] not in HARDWARE_SECTIONS:
            raise ConfigError(f"--set {key}: only hardware settings may change here (sections "
                              f"{', '.join(HARDWARE_SECTIONS)}); the agent's are the float run's")
    return overrides


def warm_started(float_dir: Path, out: Path, steps: int, hardware: dict[str, Any] | None = None,
                 chip_preset: str | None = None) -> Trainer:
    """An RRAM trainer in `out` (claimed, config.toml written) at the float checkpoint's step,
    its Q arrays programmed to the checkpoint's Q weights; `chip_preset`: the hardware preset
    (and its energy prices) in place of the float run's; `hardware`: settings
    (`hardware_overrides`) over it."""
    source = RunDirectory(float_dir)
    cfg = RunConfig.from_toml(source.config_file.read_text())
    if cfg.backend != "float":
        raise SystemExit(f"{float_dir} is a {cfg.backend} run, not a float one; give a float run's directory")
    state = source.load_checkpoint()
    if state["replay"] is None:
        raise SystemExit(f"{source.checkpoint_file} holds no replay (run.checkpoint_replay = false)")
    if chip_preset is not None:
        cfg = dataclasses.replace(cfg, preset=chip_preset, energy_preset=chip_preset,
                                  hardware=preset(chip_preset))
    cfg = dataclasses.replace(cfg, backend="rram", total_steps=state["step"] + steps,
                              hardware=cfg.hardware.with_overrides(hardware or {}))
    run_dir = RunDirectory(out)
    if run_dir.config_file.exists():
        raise SystemExit(f"{out} already holds a run; choose another --out")
    trainer = Trainer(cfg, run_dir)
    run_dir.claim()
    atomic_write(run_dir.config_file, cfg.to_toml(trainer.spec))
    agent, chip = trainer.agent, trainer.backend.chip
    weights = state["agent"]["q"]
    layers = [(name, m) for name, m in agent.q.named_modules() if isinstance(m, CrossbarLayer)]
    with chip.ledger.in_phase("program"):
        program_weights(chip, [(m, weights[f"{name}.weight"].reshape(-1).to(m.weight.device),
                                m.weight.detach().reshape(-1).clone()) for name, m in layers])
    for name, m in layers:
        m.array.residual.zero_()  # what was programmed is the start, as for to_rram
        if m.bias is not None:
            m.bias.data.copy_(weights[f"{name}.bias"])
    for name, m in layers:
        asked = weights[f"{name}.weight"].to(m.weight.device)
        print(f"{name}: programmed to the float weights within {programming_error(m, asked):.2f} "
              f"levels rms; {float((asked.abs() > m.array.weight_scale).float().mean()):.4f} of "
              f"them beyond the array's range (+-{float(m.array.weight_scale):.3g})")
    agent.sync_target()
    agent.optimizer.load_state_dict(state["agent"]["optimizer"])
    trainer.attribution = Attribution(trainer.backend.snapshot, cfg.num_envs)  # setup: all above
    trainer.step = state["step"]
    trainer.replay.load_state_dict(state["replay"])
    envs = load_envs(state["envs"])
    if envs is None:
        raise SystemExit(f"{float_dir}'s environments cannot be restored (classic control only)")
    trainer.envs, trainer.obs = envs, state["obs"]
    return trainer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("float_run", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="the new RRAM run's directory")
    parser.add_argument("--steps", type=int, default=20_000, help="steps to train on the chip")
    parser.add_argument("--preset", help="the chip's hardware preset (default: the float run's)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a hardware setting over the float run's (repeatable)")
    args = parser.parse_args(argv)
    if args.steps <= 0:
        parser.error(f"--steps must be a positive number of steps, got {args.steps}")
    try:
        trainer = warm_started(args.float_run, args.out, args.steps, hardware_overrides(args.set),
                               args.preset)
    except (ConfigError, RunDirError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        writer = SummaryWriter(str(trainer.run_dir.path))
        trainer.evaluate(writer)  # the float policy read out on the chip, before any update
        writer.close()
        first = trainer.run_dir.read_jsonl("evals.jsonl")[-1]["returns"]
        exact = play_exact(trainer.agent.q.state_dict(), trainer.cfg.env, trainer.cfg.seed,
                           len(first), trainer.cfg.eval_epsilon)
        print(f"float policy of step {trainer.step}, {len(first)} episodes: mean return "
              f"{statistics.fmean(first):.1f} on the chip, {statistics.fmean(exact):.1f} with "
              f"its programmed weights computed exactly (no converters, no read noise)")
        summary = trainer.run()
    finally:
        trainer.run_dir.release()
    print(f"after {args.steps} steps on the chip:")
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
