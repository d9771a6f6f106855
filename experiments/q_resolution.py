"""How finely an RRAM MLP Q-network's arrays resolve Q-values, from a run's checkpoint.

    python experiments/q_resolution.py RUN_DIR/checkpoint.pt [...]

On the checkpoint's last probed minibatch (the observations `q/...` probes were taken on) and
its realised weights (the digital biases added), prints per checkpoint:

* mean |Q| and the mean action gap (best minus second-best Q) of the exact network;
* the output layer's ADC step in Q units: per tile, calibrated range x weight full scale x
  the sample's input abs-max / 2^(adc_bits - 1) (`rlime.hw.crossbar.Periphery.convert` and
  `dac`: partial sums are converted in DAC code units, the result scaled back by the input's
  abs-max), and the rms rounding error it alone adds to a Q-value, sqrt(sum_t LSB_t^2 / 12);
* the lag of the realised weights behind the update rule's (realised + residual): its rms
  over all Q-values, and its rms with each sample's mean over actions removed, the part that
  can change which action is greedy.

A simulator's view (true state, nothing charged). MLP Q-networks only
(`agents.qnets.mlp_q_network`).
"""

from __future__ import annotations

import argparse

import torch

from agents.qnets import mlp_q_network
from rlime.hw.config import ConverterConfig


def _layer_indices(q: dict) -> list[int]:
    """Sequential indices of the crossbar layers of a plain MLP's state dict."""
    names = [key[: -len(".array.cell_u")] for key in q if key.endswith(".array.cell_u")]
    if not all(name.isdigit() for name in names):
        raise SystemExit(f"q_resolution: plain MLP Q-networks only; this one has crossbar "
                         f"layers {names} (a dueling head?)")
    return sorted(int(name) for name in names)


def exact_network(q: dict, with_residual: bool = False) -> torch.nn.Sequential:
    """The float MLP (`mlp_q_network`) carrying the checkpoint Q-network `q`'s realised weights
    (+ residual when `with_residual`) and digital biases: what its arrays hold, computed
    exactly."""
    layers = _layer_indices(q)
    if not layers:
        raise ValueError("the checkpoint's Q-network has no crossbar layers")
    weights = {i: q[f"{i}.weight"] for i in layers}
    if with_residual:
        weights = {i: w + q[f"{i}.array.residual"].view_as(w) if q[f"{i}.array.residual"].numel()
                   else w for i, w in weights.items()}
    first, last = weights[layers[0]], weights[layers[-1]]
    net = mlp_q_network(first.shape[1], last.shape[0], [weights[i].shape[0] for i in layers[:-1]])
    net.load_state_dict({**{f"{i}.weight": w for i, w in weights.items()},
                         **{f"{i}.bias": q[f"{i}.bias"] for i in layers}})
    return net


def _forward(q: dict, obs: torch.Tensor, with_residual: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(input of the output layer, Q-values) of `exact_network`."""
    net = exact_network(q, with_residual)
    h = net[:-1](obs)
    return h, net[-1](h)


def resolution(path: str, adc_bits: int) -> dict[str, float]:
    checkpoint = torch.load(path, weights_only=False, map_location="cpu")
    agent = checkpoint["agent"]
    q, obs = agent["q"], agent.get("probe_obs")
    if obs is None or not any(key.endswith(".array.cell_u") for key in q):
        raise SystemExit(f"q_resolution: {path} holds no probed rram Q-network (rram runs with "
                         "run.probe_every > 0 keep one)")
    obs = obs.float()
    with torch.no_grad():
        h, exact = _forward(q, obs, False)
        _, wanted = _forward(q, obs, True)
    last = _layer_indices(q)[-1]
    ranges = q[f"{last}.array.adc_range_forward"]
    scale = float(q[f"{last}.array.weight_scale"])
    lsb = ranges.view(1, -1) * scale * h.abs().amax(1, keepdim=True) / 2 ** (adc_bits - 1)
    top = exact.topk(2, dim=1).values
    lag = wanted - exact
    centred = lag - lag.mean(1, keepdim=True)
    return {"step": checkpoint["step"], "mean_abs_q": float(exact.abs().mean()),
            "action_gap": float((top[:, 0] - top[:, 1]).mean()),
            "adc_lsb_q": float(lsb.mean()),
            "adc_rounding_rms_q": float((lsb.pow(2).sum(1) / 12).sqrt().mean()),
            "lag_rms": float(lag.pow(2).mean().sqrt()),
            "lag_differential_rms": float(centred.pow(2).mean().sqrt())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--adc-bits", type=int, default=ConverterConfig().adc_bits,
                        help="forward ADC bits of the run (default: the default preset's)")
    args = parser.parse_args(argv)
    keys = ("step", "mean_abs_q", "action_gap", "adc_lsb_q", "adc_rounding_rms_q", "lag_rms",
            "lag_differential_rms")
    rows = {path: resolution(path, args.adc_bits) for path in args.checkpoints}
    print("| checkpoint | " + " | ".join(keys) + " |")
    print("| --- |" + " --- |" * len(keys))
    for path, row in rows.items():
        print(f"| {path} | " + " | ".join(f"{row[k]:.4g}" for k in keys) + " |")


if __name__ == "__main__":
    main()
