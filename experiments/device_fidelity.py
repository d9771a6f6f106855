"""rlime's pulse response beside NeuroSim's closed form, and a measured table beside its fitted
closed forms.

    python -m experiments.device_fidelity [--out device_fidelity.png]
    python -m experiments.device_fidelity --table PATH [--out measured_fit.png]
    python -m experiments.device_fidelity --write-table PATH

Default: for the cited TaOx/HfOx device (NL 0.04 / -0.63, 128 levels; MLP+NeuroSim V3.0 manual
Table II) and a strongly nonlinear one (NL 2.4 / -4.88), G after n SET pulses from Gmin and after
n RESET pulses from Gmax: rlime's cells (noise-free, pulse by pulse through
`PulseModel.step_once`, in float32) against NeuroSim's curve in float64,

    G(P) = B (1 - exp(-P / A)) + Gmin,  B = (Gmax - Gmin) / (1 - exp(-Pmax / A))

(MLP_NeuroSim_V3.0 formula.cpp NonlinearWeight / Cell.cpp RealDevice::Write), P the pulse
position in [0, Pmax], Pmax = levels - 1, A = Pmax x `neurosim_param_a(label)` per direction;
SET moves P up from 0, RESET moves it down from Pmax on the LTD curve. Prints the largest
deviation per curve (levels) and writes a PNG of the curves (siemens against pulses).

--table PATH: a measured-device table (`rlime.hw.measured`) beside the closed forms fitted to it
on its own Gmin, Gmax and levels: `nonlinear` with the NeuroSim label of each direction fitted
by least squares on G(n), and `linear` (label 0). Prints the fitted labels and the rms
deviations (levels) and plots G against pulses and the step against G (with the table's
cycle-to-cycle sigma as a band).

--write-table PATH: write the default preset's closed form as a table (`closed_form_curves`):
how rlime's bundled example `rlime/hw/data/default_preset.csv` is made.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from scipy.optimize import minimize_scalar  # noqa: E402

from rlime.hw import measured  # noqa: E402
from rlime.hw.config import DeviceConfig  # noqa: E402
from rlime.hw.device import (LABEL_RANGE, PulseModel, fresh_cells,  # noqa: E402
                              neurosim_param_a)

DEVICES = {"TaOx/HfOx (0.04 / -0.63)": (0.04, -0.63),
           "strongly nonlinear (2.4 / -4.88)": (2.4, -4.88)}
LEGEND = ("upper center", "center right")  # where each panel has room


def neurosim(cfg: DeviceConfig, label: float, positions: list[float]) -> list[float]:
    """NeuroSim's G (siemens) at pulse positions P (module docstring)."""
    p_max = cfg.levels - 1
    a = neurosim_param_a(label) * p_max
    b = cfg.range_siemens / -math.expm1(-p_max / a)
    return [cfg.g_min_siemens - b * math.expm1(-p / a) for p in positions]


def rlime_curve(cfg: DeviceConfig, up: bool) -> list[float]:
    """G (siemens) of one noise-free cell after 0..Pmax pulses, from Gmin (SET) or Gmax (RESET)."""
    model = PulseModel(cfg)
    cells = fresh_cells(1, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))
    c0u, c1u, c0d, c1d = model.single_pulse_coefficients(cells)
    c0, c1 = (c0u, c1u) if up else (c0d, c1d)
    u = cells.u_min.clone() if up else cells.u_max.clone()
    out = [float(u[0])]
    for _ in range(cfg.levels - 1):
        u = model.step_once(u, c0, c1, cells.u_min, cells.u_max, None, None, (0.0, 0.0))
        out.append(float(u[0]))
    return [cfg.g_min_siemens + cfg.range_siemens * x for x in out]


def closed_form_curves(cfg: DeviceConfig) -> tuple[measured.Curve, measured.Curve]:
    """A closed-form device as a noise-free measurement would record it: G (siemens) after
    0..levels-1 pulses of step scale 1, SET from Gmin and RESET from Gmax (one pulse after
    another on `PulseModel`'s law in float64, kept in the range), each pulse's step sigma the
    model's (additive + relative x |step|, in siemens)."""
    model = PulseModel(cfg)
    additive, relative = model.noise_sigmas()
    curves = []
    for k0, k1, start in ((model.k0_up, model.k1_up, 0.0), (model.k0_down, model.k1_down, 1.0)):
        p = [start]
        for _ in range(cfg.levels - 1):
            p.append(min(max(p[-1] + k0 + k1 * p[-1], 0.0), 1.0))
        sigma = [(additive + relative * abs(b - a)) * cfg.range_siemens for a, b in zip(p, p[1:])]
        curves.append(measured.Curve(tuple(cfg.g_min_siemens + cfg.range_siemens * x for x in p),
                                     tuple(sigma), 1))
    return curves[0], curves[1]


def closed_form_table(cfg: DeviceConfig) -> str:
    """`closed_form_curves` of `cfg` as a table file's text."""
    comment = (f"rlime measured-device table: the {cfg.response} closed form of DeviceConfig(levels="
               f"{cfg.levels}, nonlinearity {cfg.nonlinearity_up} / {cfg.nonlinearity_down}, "
               f"c2c_sigma {cfg.c2c_sigma})\nnoise-free; step_sigma_siemens = the closed form's "
               f"cycle-to-cycle sigma per pulse\nmade by: python -m experiments.device_fidelity "
               f"--write-table PATH")
    return measured.format_table(*closed_form_curves(cfg), comment)


def fitted_label(table: measured.MeasuredTable, up: bool) -> tuple[float, float]:
    """(NeuroSim label, rms deviation in levels) of the nonlinear closed form on the table's
    Gmin, Gmax and levels that fits one direction's mean curve best (least squares on G(n))."""
    curve = table.potentiation if up else table.depression
    base = DeviceConfig(g_min_siemens=table.g_min_siemens, g_max_siemens=table.g_max_siemens,
                        levels=table.levels, nonlinearity_up=0.0, nonlinearity_down=0.0)
    level = base.range_siemens / (base.levels - 1)

    def rms(label: float) -> float:
        cfg = dataclasses.replace(base, **{"nonlinearity_" + ("up" if up else "down"): label})
        fit = closed_form_curves(cfg)[0 if up else 1].siemens
        pairs = list(zip(fit, curve.siemens))
        return math.sqrt(sum((a - b) ** 2 for a, b in pairs) / len(pairs)) / level

    best = minimize_scalar(rms, bounds=(-LABEL_RANGE, LABEL_RANGE), method="bounded",
                           options={"xatol": 1e-5})
    return float(best.x), float(best.fun)


def plot_table(path: str, out: str) -> None:
    """The measured table at `path` beside its fitted closed forms (module docstring)."""
    table = measured.load(path)
    labels = [fitted_label(table, up) for up in (True, False)]
    base = dict(g_min_siemens=table.g_min_siemens, g_max_siemens=table.g_max_siemens,
                levels=table.levels)
    fits = {f"nonlinear (fitted {labels[0][0]:+.3f} / {labels[1][0]:+.3f})":
            closed_form_curves(DeviceConfig(**base, nonlinearity_up=labels[0][0],
                                            nonlinearity_down=labels[1][0])),
            "linear": closed_form_curves(DeviceConfig(**base, response="linear"))}
    print(f"{path}: Gmin {table.g_min_siemens:.4g} S, Gmax {table.g_max_siemens:.4g} S, "
          f"{table.levels} levels")
    for name, (label, rms) in zip(measured.DIRECTIONS, labels):
        print(f"  {name:13s} fitted NeuroSim label {label:+.4f}, rms deviation {rms:.3g} levels")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for index, (name, colour) in enumerate(zip(measured.DIRECTIONS, ("tab:blue", "tab:red"))):
        curve = table.curves[index]
        g = [x * 1e6 for x in curve.siemens]
        left.plot(range(len(g)), g, "o", color=colour, ms=2.5, label=f"{name}: table")
        steps = [(b - a) * 1e6 for a, b in zip(curve.siemens, curve.siemens[1:])]
        band = [s * 1e6 for s in curve.step_sigma]
        right.plot(g[:-1], steps, "o", color=colour, ms=2.5, label=f"{name}: table")
        right.fill_between(g[:-1], [a - b for a, b in zip(steps, band)],
                           [a + b for a, b in zip(steps, band)], color=colour, alpha=0.15)
        for (fit, curves), style in zip(fits.items(), ("-", "--")):
            fg = [x * 1e6 for x in curves[index].siemens]
            left.plot(range(len(fg)), fg, style, color=colour, lw=1.2, label=f"{name}: {fit}")
            right.plot(fg[:-1], [b - a for a, b in zip(fg, fg[1:])], style, color=colour, lw=1.2)
    left.set_xlabel("pulses n")
    left.set_ylabel("conductance G (uS)")
    right.set_xlabel("conductance G (uS)")
    right.set_ylabel("one pulse's step (uS); band: +- its c2c sigma")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=7)
    fig.suptitle(f"Measured table {Path(path).name} beside its fitted closed forms")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def plot_neurosim(out: str) -> None:
    """rlime's closed forms beside NeuroSim's (module docstring)."""
    fig, axes = plt.subplots(1, len(DEVICES), figsize=(11, 4.2), sharey=True)
    print(f"{'device':34s} {'curve':18s} {'max |rlime - NeuroSim| (levels)':>32s}")
    for ax, where, (name, (nl_up, nl_down)) in zip(axes, LEGEND, DEVICES.items()):
        cfg = DeviceConfig(nonlinearity_up=nl_up, nonlinearity_down=nl_down, c2c_sigma=0.0)
        n = list(range(cfg.levels))
        level = cfg.range_siemens / (cfg.levels - 1)
        curves = {"SET from Gmin": (rlime_curve(cfg, True), neurosim(cfg, nl_up, n)),
                  "RESET from Gmax": (rlime_curve(cfg, False),
                                      neurosim(cfg, nl_down, [cfg.levels - 1 - k for k in n]))}
        for (curve, (ours, theirs)), colour in zip(curves.items(), ("tab:blue", "tab:red")):
            worst = max(abs(a - b) for a, b in zip(ours, theirs)) / level
            print(f"{name:34s} {curve:18s} {worst:32.2e}")
            ax.plot(n, [g * 1e6 for g in theirs], color=colour, lw=3, alpha=0.35,
                    label=f"{curve}: NeuroSim")
            ax.plot(n, [g * 1e6 for g in ours], color=colour, ls="--", lw=1.2,
                    label=f"{curve}: rlime (max dev {worst:.1e} levels)")
        ax.set_title(name)
        ax.set_xlabel("pulses n")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc=where)
    axes[0].set_ylabel("conductance G (uS)")
    fig.suptitle("Pulse response: rlime vs NeuroSim closed form (128 levels, Gmin 1 uS, Gmax 10 uS)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="the PNG to write (default: "
                        "device_fidelity.png, or measured_fit.png with --table)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--table", metavar="PATH", help="plot this measured table beside its "
                      "fitted closed forms")
    what.add_argument("--write-table", metavar="PATH", help="write the default preset's closed "
                      "form as a measured table")
    args = parser.parse_args()
    if args.write_table:
        Path(args.write_table).write_text(closed_form_table(DeviceConfig()))
        print(f"wrote {args.write_table}")
    elif args.table:
        plot_table(args.table, args.out or "measured_fit.png")
    else:
        plot_neurosim(args.out or "device_fidelity.png")


if __name__ == "__main__":
    main()
