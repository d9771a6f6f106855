"""Write-verify precision and cost per (tolerance, pulse cap) on a hardware preset.

    python experiments/tuning_tolerance.py [--preset default] [--cells 50000] [--events 10]

Cells start at random levels and are re-programmed `--events` times, each time to a target a
random -4..4 levels from the last one (training-sized moves; a cell's error carries over to the
next event, as in training). Prints the programming error in levels (quantiles and rms, over all
events) and pulses per cell per event. This is how the `default` preset's tuning tolerance and
pulse cap were chosen (see rlime/config.py, TuningConfig).
"""

from __future__ import annotations

import argparse

import torch

from rlime.hw.chip import Chip
from rlime.hw.config import PRESETS, preset
from rlime.hw.device import fresh_cells

GRID = [(1.0, 20), (1.0, 100), (1.5, 100), (2.0, 20), (2.0, 50), (2.0, 100), (3.0, 100)]


def measure(hw_preset: str, tolerance: float, max_pulses: int, cells: int, events: int,
            seed: int) -> dict:
    cfg = preset(hw_preset).with_overrides({"tuning.scheme": "write-verify",
                                            "tuning.tolerance_levels": tolerance,
                                            "tuning.max_pulses": max_pulses})
    chip = Chip(cfg, seed=seed)
    top = cfg.device.levels - 1
    state = fresh_cells(cells, cfg.device, chip.generator, chip.device)
    g = torch.Generator().manual_seed(seed + 1)
    level = torch.randint(0, top + 1, (2 * cells,), generator=g).float()
    state.u = level / top
    errors = []
    for _ in range(events):
        level = (level + torch.randint(-4, 5, level.shape, generator=g).float()).clamp(0, top)
        chip.tuner.tune(state, level / top)
        errors.append(((state.u - level / top) * top).abs())
    error = torch.cat(errors).double()
    q = torch.quantile(error[: 2**24], torch.tensor([0.5, 0.9, 0.99, 0.999], dtype=torch.float64))
    return {"tolerance": tolerance, "max_pulses": max_pulses, "quantiles": q.tolist(),
            "rms": float(error.pow(2).mean().sqrt()),
            "pulses": float(state.pulses.double().mean()) / events}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS))
    parser.add_argument("--cells", type=int, default=50_000, help="weight pairs (2x cells)")
    parser.add_argument("--events", type=int, default=10, help="programming events per cell")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"preset {args.preset}: {2 * args.cells} cells, {args.events} events of -4..4 levels")
    print(f"{'tolerance':>9s} {'cap':>4s} {'err q50':>8s} {'q90':>6s} {'q99':>6s} {'q99.9':>6s} "
          f"{'rms':>6s} {'pulses/event':>12s}")
    for tolerance, cap in GRID:
        r = measure(args.preset, tolerance, cap, args.cells, args.events, args.seed)
        q = "".join(f"{x:7.1f}" for x in r["quantiles"])
        print(f"{tolerance:9.1f} {cap:4d} {q} {r['rms']:6.2f} {r['pulses']:12.2f}")


if __name__ == "__main__":
    main()
