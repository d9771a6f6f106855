"""Throughput of Atari training with learning on: rram vs float, interleaved in one invocation.

    python experiments/throughput.py [--env Pong] [--steps 3000] [--learning-starts 100]
                                     [--num-envs 4] [--device cpu] [--scheme S] [--block 100]
                                     [--out DIR]

Each backend trains the same DQN (Nature CNN, same seed and hyperparameters) with rlime.train's
Trainer in its own process, so that its peak memory is its own. The two processes take turns:
one trains for `--block` environment steps while the other waits, then they swap, so a drift in
the machine's speed (a shared machine drifts by 10-20 % within a minute) hits both backends
alike. Printed: environment steps per second with learning on (the blocks after learning
starts), the rram / float ratio (over all those blocks, and the median and quartiles of the
ratios of blocks run back to back), the wall-clock split per phase of a training step over the
whole run (env, acting, replay, train forward/backward, update = update rule + tuning, target
sync, logging), and peak resident memory.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import tempfile
import time
from pathlib import Path

from rlime.hw.config import TUNING_SCHEMES

BACKENDS = ("float", "rram")


def _train(backend: str, args: argparse.Namespace, run_dir: Path, conn) -> None:
    """Child process: one training run that hands the CPU back every `args.block` steps.

    Sends "turn" at every block boundary (and waits for "go"), then the result: the blocks as
    (first step, steps, seconds), the summary's time split and the peak resident memory (MiB).
    """
    from rlime.harness.run_dir import RunDirectory
    from rlime.harness.cli import build_parser, config_from_args
    from rlime.harness.train import Trainer

    argv = ["--env", args.env, "--backend", backend, "--total-steps", str(args.steps),
            "--num-envs", str(args.num_envs), "--device", args.device, "--seed", "1",
            "--eval-episodes", "0", "--set", f"agent.learning_starts={args.learning_starts}",
            "--set", f"agent.buffer_size={args.buffer_size}",
            "--checkpoint-every", str(10 * args.steps)]
    if args.scheme:
        argv += ["--scheme", args.scheme]
    cfg, _ = config_from_args(build_parser().parse_args(argv))
    directory = RunDirectory(run_dir)
    directory.claim()
    trainer = Trainer(cfg, directory, progress=False)
    blocks: list[tuple[int, int, float]] = []
    running: list[tuple[int, float]] = []  # (step, time) at which the running block began

    def take_turns(t: Trainer) -> None:
        if t.step % args.block:
            return
        if running:
            start, began = running.pop()
            blocks.append((start, t.step - start, time.perf_counter() - began))
        conn.send("turn")
        conn.recv()
        running.append((t.step, time.perf_counter()))

    # the last block is not timed: the run's final checkpoint follows it
    summary = trainer.run(before_step=take_turns)
    directory.release()
    conn.send({"blocks": blocks, "split": summary["time_split_s"],
               "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def interleave(args: argparse.Namespace, root: Path) -> dict[str, dict]:
    """Run both backends in turns; {backend: the child's result}."""
    ctx = mp.get_context("spawn")
    children = {}
    for backend in BACKENDS:
        here, there = ctx.Pipe()
        process = ctx.Process(target=_train, args=(backend, args, root / backend, there))
        process.start()
        children[backend] = (process, here)

    def answer(backend: str):
        process, conn = children[backend]
        try:
            return conn.recv()
        except EOFError:
            process.join()
            raise SystemExit(f"the {backend} run failed (exit code {process.exitcode}); "
                             f"its traceback is above") from None

    for backend in BACKENDS:  # both set up (arrays programmed), waiting at step 0
        answer(backend)
    results: dict[str, dict] = {}
    while len(results) < len(BACKENDS):
        for backend in BACKENDS:
            if backend in results:
                continue
            children[backend][1].send("go")
            message = answer(backend)
            if message != "turn":
                results[backend] = message
    for process, _ in children.values():
        process.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pong")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--learning-starts", type=int, default=100)
    parser.add_argument("--buffer-size", type=int, default=50_000)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scheme", choices=TUNING_SCHEMES,
                        help="rram tuning scheme (default: the preset's own)")
    parser.add_argument("--block", type=int, default=100,
                        help="environment steps each backend runs per turn")
    parser.add_argument("--out", help="keep the run directories here (default: discard)")
    args = parser.parse_args()
    if args.block % args.num_envs or args.block <= 0:
        parser.error(f"--block must be a positive multiple of --num-envs ({args.num_envs}); "
                     f"got {args.block}")
    if args.steps < args.learning_starts + 2 * args.block:
        parser.error(f"--steps must leave at least two blocks after learning starts "
                     f"(>= {args.learning_starts + 2 * args.block}); got {args.steps}")
    with tempfile.TemporaryDirectory() as tmp:
        results = interleave(args, Path(args.out) if args.out else Path(tmp))

    def measured(backend: str) -> dict[int, tuple[int, float]]:
        return {start: (steps, seconds) for start, steps, seconds in results[backend]["blocks"]
                if start >= args.learning_starts}

    blocks = {b: measured(b) for b in BACKENDS}
    sps = {b: sum(n for n, _ in blocks[b].values()) / sum(s for _, s in blocks[b].values())
           for b in BACKENDS}
    pairs = sorted((blocks["rram"][k][0] / blocks["rram"][k][1])
                   / (blocks["float"][k][0] / blocks["float"][k][1])
                   for k in blocks["rram"].keys() & blocks["float"].keys())
    q1, median, q3 = statistics.quantiles(pairs, n=4) if len(pairs) > 1 else pairs * 3
    print(f"{args.env}: {args.steps} steps, learning from step {args.learning_starts}, "
          f"{args.num_envs} envs, device {args.device}, turns of {args.block} steps")
    print(f"{'backend':8s} {'SPS':>8s} {'peak MiB':>9s}")
    for b in BACKENDS:
        print(f"{b:8s} {sps[b]:8.1f} {results[b]['peak_mib']:9.0f}")
    print(f"rram / float SPS: {sps['rram'] / sps['float']:.3f} "
          f"(per pair of turns: median {median:.3f}, quartiles {q1:.3f}-{q3:.3f}, "
          f"{len(pairs)} pairs)")
    split = {b: results[b]["split"] for b in BACKENDS}
    print(f"\n{'phase':16s}" + "".join(f"{b + ' %':>10s}" for b in BACKENDS))
    for phase in sorted({p for b in BACKENDS for p in split[b]}):
        row = "".join(f"{100 * split[b].get(phase, 0.0) / sum(split[b].values()):10.1f}"
                      for b in BACKENDS)
        print(f"{phase:16s}{row}")


if __name__ == "__main__":
    main()
