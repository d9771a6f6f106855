"""rlime's pulse response beside NeuroSim's closed form.

    python experiments/device_fidelity.py [--out device_fidelity.png]

For the cited TaOx/HfOx device (NL 0.04 / -0.63, 128 levels; MLP+NeuroSim V3.0 manual Table II)
and a strongly nonlinear one (NL 2.4 / -4.88), G after n SET pulses from Gmin and after n RESET
pulses from Gmax: rlime's cells (noise-free, pulse by pulse through `PulseModel.step_once`, in
float32) against NeuroSim's curve in float64,

    G(P) = B (1 - exp(-P / A)) + Gmin,  B = (Gmax - Gmin) / (1 - exp(-Pmax / A))

(MLP_NeuroSim_V3.0 formula.cpp NonlinearWeight / Cell.cpp RealDevice::Write), P the pulse
position in [0, Pmax], Pmax = levels - 1, A = Pmax x `neurosim_param_a(label)` per direction;
SET moves P up from 0, RESET moves it down from Pmax on the LTD curve. Prints the largest
deviation per curve (levels) and writes a PNG of the curves (siemens against pulses).
"""

from __future__ import annotations

import argparse
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from rlime.hw.config import DeviceConfig  # noqa: E402
from rlime.hw.device import PulseModel, fresh_cells, neurosim_param_a  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="device_fidelity.png")
    args = parser.parse_args()
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
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
