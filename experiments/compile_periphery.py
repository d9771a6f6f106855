"""Does `torch.compile` make the ADC conversion faster than what rlime runs today?

    python experiments/compile_periphery.py [--device cpu] [--repeats 5] [--calls 300]

Times one ADC conversion (`Periphery.convert`: calibrated per-tile range, read/ADC noise off,
8-bit rounding, digital sum over tiles, per-sample scale) of partial sums shaped like the
perf workloads' layers, three ways, interleaved in rounds (median per call, microseconds):

* `shipped`: `Periphery.convert` as rlime runs it (on CPU the fused numba loop of
  `rlime.hw.converter_loops`; on CUDA tensor ops);
* `eager`: the same conversion in tensor ops (`Periphery.compiled` False);
* `compiled`: those tensor ops under `torch.compile(fullgraph=True)`, compiled once per shape
  before timing (the compile time is printed).

Each call converts a fresh copy of the partial sums (the conversion overwrites its input), the
copy included in all three. The largest difference of `eager` and `compiled` from `shipped` is
printed in units of the result's largest magnitude: the tile sums may differ in the last float32
bit (their order of addition differs), anything beyond 1e-6 is a defect (exit status 1). On CPU this is the check that justified keeping numba (README, Speed: "tried
and dropped"); on a GPU it says whether compiling the tensor path is worth it there.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from rlime.harness.perf import seconds_per_call
from rlime.hw.config import ConverterConfig
from rlime.hw.crossbar import Periphery

TOLERANCE = 1e-6  # largest difference from shipped, relative to the result's largest magnitude
# (label, partial sums (T, B, n) of a linear layer's row tiles)
SHAPES = (
    ("4-8-8-2 fc2, batch 2", (1, 2, 8)),
    ("4-512-512-2 fc2, batch 64", (4, 64, 512)),
    ("Nature CNN fc1, batch 32", (25, 32, 512)),
)


def _no_read_noise() -> torch.Tensor:
    raise AssertionError("read noise is off: its variance is never needed")


def compare(shape: tuple[int, int, int], device: torch.device, repeats: int, calls: int
            ) -> tuple[dict[str, float], float, dict[str, float]]:
    """({way: median us per call}, compile seconds, {eager, compiled: max |difference| from
    shipped / max |shipped|})."""
    torch.manual_seed(0)
    tiles, batch, n = shape
    periphery = Periphery(ConverterConfig(), 0.0, torch.Generator(device=device))
    partials = torch.randn(shape, device=device) * 40.0
    unit = torch.rand(batch, 1, device=device) + 0.5
    lines = torch.full((tiles,), 128.0, device=device)
    scale = 0.3
    ranges = {way: torch.zeros(tiles, device=device) for way in ("shipped", "eager", "compiled")}

    def convert(fused: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The conversion of partial sums p with running ranges r (no read noise: its
        variance is never asked for)."""
        def run(p: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            periphery.compiled = fused
            return periphery.convert(p, tile_dim=0, scale=scale, lines=lines, ranges=r,
                                     read_variance=_no_read_noise, unit=unit)
        return run

    tensor_ops = convert(False)
    compiled_ops = torch.compile(tensor_ops, fullgraph=True, dynamic=False)
    start = time.perf_counter()
    compiled_ops(partials.clone(), torch.zeros(tiles, device=device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    compile_s = time.perf_counter() - start
    ways = {"shipped": convert(True), "eager": tensor_ops, "compiled": compiled_ops}
    results = {way: fn(partials.clone(), ranges[way]) for way, fn in ways.items()}
    peak = float(results["shipped"].abs().max())
    differ = {way: float((results[way] - results["shipped"]).abs().max()) / peak
              for way in ("eager", "compiled")}
    rounds: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(repeats):
        for way, fn in ways.items():
            r = ranges[way]
            rounds[way].append(1e6 * seconds_per_call(lambda: fn(partials.clone(), r), calls,
                                                          device))
    return {way: statistics.median(v) for way, v in rounds.items()}, compile_s, differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--calls", type=int, default=300, help="calls per timed round")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.calls < 1:
        parser.error("--repeats and --calls must be at least 1")
    device = torch.device(args.device)
    print(f"ADC conversion, us per call, device {device}, torch {torch.__version__}")
    print(f"{'partial sums':36s} {'shipped':>9s} {'eager':>9s} {'compiled':>9s} {'compile s':>10s}"
          f" {'max rel. difference':>20s}")
    status = 0
    for label, shape in SHAPES:
        us, compile_s, differ = compare(shape, device, args.repeats, args.calls)
        print(f"{label + ' ' + str(shape):36s} {us['shipped']:9.1f} {us['eager']:9.1f} "
              f"{us['compiled']:9.1f} {compile_s:10.1f} "
              f"{differ['eager']:9.1g} {differ['compiled']:10.1g}")
        if max(differ.values()) > TOLERANCE:
            print(f"  results differ from shipped by more than {TOLERANCE:g}")
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
