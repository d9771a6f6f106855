"""Benchmark: RRAM training step vs float PyTorch training step, measured in one process.

    python -m rlime.perf [--preset default] [--scheme write-verify] [--device cpu] [--repeats 5]

A training step is forward + backward + update (float: torch SGD; RRAM: the same SGD rule, then
tuning). Workloads: a 4-512-512-2 MLP at batch 64 and the Nature-DQN CNN (4x84x84, batch 32).
The float reference is timed in PyTorch's default layout and channels-last; the ratio is taken
against the faster of the two. Float and RRAM steps are interleaved in rounds and the median
round is reported, so drift of a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn as nn

from rlime.hw.chip import Chip
from rlime.hw.config import TUNING_SCHEMES, PRESETS, preset
from rlime.hw.layers import to_rram
from rlime.hw.optim import TunedOptimizer


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 2))


def nature_cnn(actions: int = 6) -> nn.Module:
    return nn.Sequential(nn.Conv2d(4, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
                         nn.Conv2d(64, 64, 3, 1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3136, 512), nn.ReLU(), nn.Linear(512, actions))


def _step_fn(net: nn.Module, optimizer, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        optimizer.zero_grad()
        net(x).pow(2).mean().backward()
        optimizer.step()
    return step


def _time(step: Callable[[], None], n: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / n


def measure(name: str, make: Callable[[], nn.Module], x: torch.Tensor, steps: int,
            repeats: int, hw_preset: str, scheme: str, device: torch.device) -> dict:
    torch.manual_seed(0)
    lr = 1e-3
    x = x.to(device)
    float_net = make().to(device)
    candidates = {"float": _step_fn(float_net, torch.optim.SGD(float_net.parameters(), lr=lr), x)}
    if x.dim() == 4:
        cl_net = make().to(device).to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        candidates["float_cl"] = _step_fn(cl_net, torch.optim.SGD(cl_net.parameters(), lr=lr), x_cl)
    cfg = preset(hw_preset).with_overrides({"tuning.scheme": scheme})
    chip = Chip(cfg, device=device)
    rram_net = to_rram(make(), chip)
    candidates["rram"] = _step_fn(rram_net, TunedOptimizer(
        torch.optim.SGD(rram_net.parameters(), lr=lr), rram_net, chip), x)
    for step in candidates.values():  # warm-up
        _time(step, 2, device)
    rounds: dict[str, list[float]] = {k: [] for k in candidates}
    for _ in range(repeats):
        for key, step in candidates.items():
            rounds[key].append(_time(step, steps, device))
    ms = {k: 1e3 * statistics.median(v) for k, v in rounds.items()}
    best_float = min(v for k, v in ms.items() if k.startswith("float"))
    return {"workload": name, **ms, "ratio": ms["rram"] / best_float}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rlime.perf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS))
    parser.add_argument("--scheme", default="write-verify", choices=TUNING_SCHEMES)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (median)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    workloads = [("MLP 4-512-512-2, batch 64", mlp, torch.randn(64, 4), 20),
                 ("Nature CNN 4x84x84, batch 32", nature_cnn, torch.rand(32, 4, 84, 84), 3)]
    print(f"preset={args.preset} scheme={args.scheme} device={device} "
          f"threads={torch.get_num_threads()}")
    print(f"{'workload':32s} {'float ms':>9s} {'float CL ms':>11s} {'rram ms':>9s} {'rram/float':>10s}")
    for name, make, x, steps in workloads:
        r = measure(name, make, x, steps, args.repeats, args.preset, args.scheme, device)
        cl = f"{r['float_cl']:11.2f}" if "float_cl" in r else f"{'-':>11s}"
        print(f"{name:32s} {r['float']:9.2f} {cl} {r['rram']:9.2f} {r['ratio']:10.2f}")
