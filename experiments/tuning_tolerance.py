"""Pulses, reads and precision of open-loop, write-verify and gradual, side by side.

    python experiments/tuning_tolerance.py [--cells 20000] [--events 10] [--seed 0]

Cells start at random levels and are re-programmed `--events` times, each time to a target a
random -4..4 levels from the last one (training-sized moves; a cell's error carries over to the
next event, as in training). For the `default` device (NL 0.04 / -0.63, c2c 3.7 %) and a strongly
nonlinear one (NL 2.4 / -4.88, c2c 1 %) prints per cell per event: pulses, verify reads, the
V^2 G t pulse energy relative to write-verify's (conductance sums), and the programming error
in levels (rms and 99th percentile) over all events, each scheme at its own tolerance
(`rlime.hw.config.SCHEME_TOLERANCE_LEVELS`: write-verify +-2 levels, gradual +-1, chosen with
this on the default device, as was the 100-pulse cap).
"""

from __future__ import annotations

import argparse

import torch

from rlime.hw.chip import Chip
from rlime.hw.config import preset
from rlime.hw.counts import kind_index
from rlime.hw.device import fresh_cells

DEVICES = {"default": {}, "strongly nonlinear": {"device.nonlinearity_up": 2.4,
                                                 "device.nonlinearity_down": -4.88,
                                                 "device.c2c_sigma": 0.01}}
SCHEMES = ("open-loop", "write-verify", "gradual")


def measure(device: dict, scheme: str, cells: int, events: int, seed: int) -> dict:
    cfg = preset("default").with_overrides({**device, "tuning.scheme": scheme})
    chip = Chip(cfg, seed=seed)
    top = cfg.device.levels - 1
    state = fresh_cells(cells, cfg.device, chip.generator, chip.device)
    g = torch.Generator().manual_seed(seed + 1)
    level = torch.randint(0, top + 1, (2 * cells,), generator=g).float()
    chip.tuner.tune(state, level / top)  # the starting point (not measured)
    start, before = chip.ledger.snapshot(), state.pulses.clone()
    errors = []
    for _ in range(events):
        level = (level + torch.randint(-4, 5, level.shape, generator=g).float()).clamp(0, top)
        chip.tuner.tune(state, level / top)
        errors.append(((state.u - level / top) * top).abs())
    bill = chip.ledger.snapshot() - start
    error = torch.cat(errors).double()
    per = 2 * cells * events
    siemens = float(bill.table[:, [kind_index("set_pulse_siemens"),
                                   kind_index("reset_pulse_siemens")]].sum())
    return {"pulses": float((state.pulses - before).double().sum()) / per,
            "reads": bill.count("verify_reads") / per, "siemens": siemens / per,
            "rms": float(error.pow(2).mean().sqrt()),
            "q99": float(torch.quantile(error[: 2**24], 0.99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=20_000, help="weight pairs (2x cells)")
    parser.add_argument("--events", type=int, default=10, help="programming events per cell")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{2 * args.cells} cells, {args.events} events of -4..4 levels")
    print(f"{'device':>19s} {'scheme':>13s} {'pulses':>7s} {'reads':>6s} {'energy':>7s} "
          f"{'rms':>6s} {'q99':>6s}")
    for name, device in DEVICES.items():
        rows = {s: measure(device, s, args.cells, args.events, args.seed) for s in SCHEMES}
        ref = rows["write-verify"]["siemens"]
        for scheme, r in rows.items():
            print(f"{name:>19s} {scheme:>13s} {r['pulses']:7.2f} {r['reads']:6.2f} "
                  f"{r['siemens'] / ref:7.2f} {r['rms']:6.2f} {r['q99']:6.2f}")


if __name__ == "__main__":
    main()
