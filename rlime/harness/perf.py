"""Benchmark: RRAM training step vs float PyTorch training step, measured in one process.

    python -m rlime.perf [--preset default] [--scheme write-verify] [--device cpu] [--repeats 5]
                         [--workloads mlp,cnn,tiny] [--split]
    python -m rlime.perf --measure-gpu [--gpu h100-sxm] [--steps 1000]

A training step is forward + backward + update (float: torch SGD; RRAM: the same SGD rule, then
tuning). Workloads (--workloads): a 4-512-512-2 MLP at batch 64 (`mlp`), the Nature-DQN CNN
(4x84x84, batch 32: `cnn`), and a 4-8-8-2 MLP at batch 2 (`tiny`: almost no arithmetic, so its
times are each backend's fixed cost per step: Python, dispatches, bookkeeping). The float
reference is timed in PyTorch's default layout and channels-last; the ratio is taken against
the faster of the two. Float and RRAM steps are interleaved in rounds and the median round is
reported, so drift of a shared machine hits both alike. --split times the step's parts the
same way: the forward pass alone (no autograd), forward + backward, and the whole step; their
differences are the backward pass and the update.

--measure-gpu runs the float DQN training step (CartPole-sized Q network 4-256-256-2, batch 64:
target forward, Q forward, Huber loss, backward, gradient clipping, Adam) on CUDA, measures its
energy with NVML (`rlime.cost.baselines.measure_gpu_energy`) and prints joules per step beside
the GPU model's (`gpu_energy` with the launch floor) for the same step. Without CUDA or pynvml
it refuses with exit status 2 and says why.
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


def tiny_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))


WORKLOADS = {  # name: (label, network, input, steps per timed round)
    "mlp": ("MLP 4-512-512-2, batch 64", mlp, lambda: torch.randn(64, 4), 20),
    "cnn": ("Nature CNN 4x84x84, batch 32", nature_cnn, lambda: torch.rand(32, 4, 84, 84), 3),
    "tiny": ("MLP 4-8-8-2, batch 2", tiny_mlp, lambda: torch.randn(2, 4), 200),
}
PARTS = ("forward", "forward+backward", "step")  # what `_step_fn` times, by --split


def _step_fn(net: nn.Module, optimizer, x: torch.Tensor, part: str = "step"
             ) -> Callable[[], None]:
    """One call of `part` (one of `PARTS`) of a training step on x."""
    def forward() -> None:
        with torch.no_grad():
            net(x)

    def step() -> None:
        optimizer.zero_grad()
        net(x).pow(2).mean().backward()
        if part == "step":
            optimizer.step()
    return forward if part == "forward" else step


def seconds_per_call(step: Callable[[], object], n: int, device: torch.device) -> float:
    """Wall-clock seconds per call of `step`, over n calls (CUDA synchronised around them)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / n


def measure(make: Callable[[], nn.Module], x: torch.Tensor, steps: int, repeats: int,
            hw_preset: str, scheme: str, device: torch.device,
            parts: tuple[str, ...] = ("step",)) -> dict[str, dict]:
    """{part: {"float": ms, ["float_cl": ms,] "rram": ms, "ratio": rram / faster float}}, the
    median over `repeats` interleaved rounds of `steps` calls each."""
    torch.manual_seed(0)
    lr = 1e-3
    x = x.to(device)
    float_net = make().to(device)
    nets = {"float": (float_net, torch.optim.SGD(float_net.parameters(), lr=lr), x)}
    if x.dim() == 4:
        cl_net = make().to(device).to(memory_format=torch.channels_last)
        nets["float_cl"] = (cl_net, torch.optim.SGD(cl_net.parameters(), lr=lr),
                            x.contiguous(memory_format=torch.channels_last))
    cfg = preset(hw_preset).with_overrides({"tuning.scheme": scheme})
    chip = Chip(cfg, device=device)
    rram_net = to_rram(make(), chip)
    nets["rram"] = (rram_net, TunedOptimizer(torch.optim.SGD(rram_net.parameters(), lr=lr),
                                             rram_net, chip), x)
    candidates = {(key, part): _step_fn(net, optimizer, inputs, part)
                  for part in parts for key, (net, optimizer, inputs) in nets.items()}
    for step in candidates.values():  # warm-up
        seconds_per_call(step, 2, device)
    rounds: dict[tuple[str, str], list[float]] = {k: [] for k in candidates}
    for _ in range(repeats):
        for key, step in candidates.items():
            rounds[key].append(seconds_per_call(step, steps, device))
    result: dict[str, dict] = {}
    for part in parts:
        ms = {key: 1e3 * statistics.median(v) for (key, p), v in rounds.items() if p == part}
        best_float = min(v for k, v in ms.items() if k.startswith("float"))
        result[part] = {**ms, "ratio": ms["rram"] / best_float}
    return result


def dqn_step_ledger(obs_dim: int = 4, hidden: tuple[int, ...] = (256, 256), actions: int = 2,
                    batch: int = 64):
    """A one-update DQN ledger (no acting) of the float step `measure_gpu` runs, for the model."""
    from rlime.drl.phases import DQN_PHASES
    from rlime.hw.counts import LedgerSnapshot

    widths = (obs_dim, *hidden, actions)
    macs = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
    first = widths[0] * widths[1]
    outputs = sum(widths[1:])
    return LedgerSnapshot.from_dict({
        "forward": {"mvm_macs": batch * macs, "digital_ops": batch * (2 * outputs + 10 * actions)},
        "target": {"mvm_macs": batch * macs, "digital_ops": batch * 2 * outputs},
        "backward": {"mvm_macs": batch * (macs - first), "gradient_macs": batch * macs},
        "update": {"optimizer_ops": 3 * params + 10 * params},  # clipping, Adam
    }, DQN_PHASES), len(widths) - 1


def measure_gpu(gpu: str, steps: int) -> int:
    """Measured vs modelled GPU joules per float DQN step; 2 (with why) without CUDA/pynvml."""
    import copy
    import sys

    import torch.nn.functional as F

    from rlime.cost.baselines import dqn_launches, gpu_energy, measure_gpu_energy

    try:
        import pynvml  # noqa: F401  # type: ignore[import-not-found]
    except ImportError:
        print("rlime.perf: --measure-gpu needs pynvml (pip install nvidia-ml-py); it is not "
              "installed, so no GPU energy can be measured", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("rlime.perf: --measure-gpu needs a CUDA device; torch sees none, so no GPU energy "
              "can be measured", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    batch, hidden = 64, (256, 256)
    torch.manual_seed(0)
    q = nn.Sequential(nn.Linear(4, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                      nn.Linear(256, 2)).to(device)
    target = copy.deepcopy(q).requires_grad_(False)
    opt = torch.optim.Adam(q.parameters(), lr=1e-3)
    obs, next_obs = torch.randn(batch, 4, device=device), torch.randn(batch, 4, device=device)
    actions = torch.randint(0, 2, (batch,), device=device)
    rewards, dones = torch.ones(batch, device=device), torch.zeros(batch, device=device)

    def step() -> None:
        with torch.no_grad():
            y = rewards + 0.99 * (1 - dones) * target(next_obs).max(1).values
        loss = F.smooth_l1_loss(q(obs).gather(1, actions.unsqueeze(1)).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(q.parameters(), 10.0)
        opt.step()

    def run() -> None:
        for _ in range(steps):
            step()

    for _ in range(20):  # warm-up (cuBLAS handles, allocator)
        step()
    m = measure_gpu_energy(run)
    if m.energy_j is None:
        print(f"rlime.perf: GPU energy could not be measured: {m.reason}", file=sys.stderr)
        return 2
    ledger, layers = dqn_step_ledger(hidden=hidden, batch=batch)
    launches = dqn_launches(ledger, 1, layers, batch)
    launches["act"] = 0.0
    model = gpu_energy(ledger, batch, gpu, launches=launches)
    print(f"device {torch.cuda.get_device_name(device)}: {steps} float DQN steps "
          f"(4-256-256-2, batch {batch}, Adam)")
    print(f"  measured (NVML): {m.energy_j / steps:.4e} J/step, {1e6 * m.seconds / steps:.1f} "
          f"us/step, {m.energy_j / m.seconds:.1f} W average")
    print(f"  model ({gpu}, utilisation {model['utilisation']:g}, launch "
          f"{model['launch_latency_s'] * 1e6:g} us x {model['launches']:g} kernels): "
          f"{model['energy_j']:.4e} J/step, {1e6 * model['seconds']:.1f} us/step")
    return 0


def main(argv: list[str] | None = None) -> int | None:
    parser = argparse.ArgumentParser(prog="python -m rlime.perf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS))
    parser.add_argument("--scheme", default="write-verify", choices=TUNING_SCHEMES)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--workloads", default="mlp,cnn",
                        help=f"comma-separated, of {', '.join(WORKLOADS)} (default mlp,cnn)")
    parser.add_argument("--split", action="store_true",
                        help="also time the forward pass alone and forward + backward")
    parser.add_argument("--measure-gpu", action="store_true",
                        help="measure the float DQN step's energy with NVML (CUDA + pynvml)")
    parser.add_argument("--gpu", default="h100-sxm", help="GPU preset of the model shown "
                        "beside the measurement (rlime.cost.baselines.GPU_PRESETS)")
    parser.add_argument("--steps", type=int, default=1000, help="steps measured (--measure-gpu)")
    args = parser.parse_args(argv)
    if args.measure_gpu:
        from rlime.cost.baselines import GPU_PRESETS
        if args.gpu not in GPU_PRESETS:
            parser.error(f"--gpu {args.gpu!r}: choose one of {', '.join(GPU_PRESETS)}")
        if args.steps < 1:
            parser.error("--steps must be >= 1")
        return measure_gpu(args.gpu, args.steps)
    device = torch.device(args.device)
    chosen = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in chosen if w not in WORKLOADS]
    if unknown or not chosen:
        parser.error(f"--workloads {args.workloads!r}: a comma-separated list of "
                     f"{', '.join(WORKLOADS)}")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    parts = PARTS if args.split else ("step",)
    print(f"preset={args.preset} scheme={args.scheme} device={device} "
          f"threads={torch.get_num_threads()}")
    print(f"{'workload':32s} {'part':>16s} {'float ms':>9s} {'float CL ms':>11s} {'rram ms':>9s} "
          f"{'rram/float':>10s}")
    for key in chosen:
        name, make, x, steps = WORKLOADS[key]
        result = measure(make, x(), steps, args.repeats, args.preset, args.scheme, device, parts)
        for part, r in result.items():
            cl = f"{r['float_cl']:11.2f}" if "float_cl" in r else f"{'-':>11s}"
            print(f"{name:32s} {part:>16s} {r['float']:9.2f} {cl} {r['rram']:9.2f} "
                  f"{r['ratio']:10.2f}")
