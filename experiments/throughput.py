"""Throughput of Atari training with learning on: rram vs float in one invocation.

    python experiments/throughput.py [--env Pong] [--steps 3000] [--learning-starts 100]
                                     [--num-envs 4] [--device cpu] [--repeats 1] [--out DIR]

Each backend trains the same DQN (Nature CNN, same seed and hyperparameters) in its own
process so that peak memory is its own; the script prints environment steps per second with
learning on, their ratio, the wall-clock split per phase of a training step (env, acting,
replay, train forward/backward, update = update rule + tuning, target sync, logging), and peak
resident memory. Numbers come from each run's summary.json (`sps`, `time_split_s`); learning
starts after 100 steps by default so that nearly every measured step trains.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(backend: str, args: argparse.Namespace, run_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "rlime.train", "--env", args.env, "--backend", backend,
           "--total-steps", str(args.steps), "--num-envs", str(args.num_envs),
           "--device", args.device, "--seed", "1", "--eval-episodes", "0",
           "--set", f"agent.learning_starts={args.learning_starts}",
           "--set", f"agent.buffer_size={args.buffer_size}",
           "--checkpoint-every", str(10 * args.steps), "--run-dir", str(run_dir), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{backend} run failed (status {status}): {' '.join(cmd)}")
    summary = json.loads((run_dir / "summary.json").read_text())
    # ru_maxrss is in KiB on Linux
    return {"summary": summary, "peak_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pong")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--learning-starts", type=int, default=100)
    parser.add_argument("--buffer-size", type=int, default=50_000)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1,
                        help="float/rram pairs, interleaved; SPS is the median per backend")
    parser.add_argument("--out", help="keep the run directories here (default: discard)")
    args = parser.parse_args()
    backends = ("float", "rram")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        rounds = [{b: run(b, args, root / f"{b}-{i}") for b in backends}
                  for i in range(args.repeats)]
    sps = {b: statistics.median(r[b]["summary"]["sps"] for r in rounds) for b in backends}
    print(f"{args.env}: {args.steps} steps, learning from step {args.learning_starts}, "
          f"{args.num_envs} envs, device {args.device}, {args.repeats} interleaved pair(s)")
    print(f"{'backend':8s} {'SPS':>8s} {'per run':>24s} {'peak MiB':>9s}")
    for b in backends:
        each = " ".join(f"{r[b]['summary']['sps']:.1f}" for r in rounds)
        peak = max(r[b]["peak_mib"] for r in rounds)
        print(f"{b:8s} {sps[b]:8.1f} {each:>24s} {peak:9.0f}")
    print(f"rram / float SPS: {sps['rram'] / sps['float']:.3f}")
    # the time split summed over repeats
    split = {b: {} for b in backends}
    for r in rounds:
        for b in backends:
            for phase, seconds in r[b]["summary"]["time_split_s"].items():
                split[b][phase] = split[b].get(phase, 0.0) + seconds
    print(f"\n{'phase':16s}" + "".join(f"{b + ' %':>10s}" for b in backends))
    for phase in sorted({p for b in backends for p in split[b]}):
        row = "".join(f"{100 * split[b].get(phase, 0.0) / sum(split[b].values()):10.1f}"
                      for b in backends)
        print(f"{phase:16s}{row}")


if __name__ == "__main__":
    main()
