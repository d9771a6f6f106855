"""Does an RRAM run's policy fail in its weights or in its readout? From a run's checkpoint.

    python experiments/readout_policy.py RUN_DIR [...] [--episodes 20] [--epsilon E]

Plays the greedy policy (at the run's `eval_epsilon`, or `--epsilon`) of the checkpoint's
realised weights computed exactly in float (`q_resolution.exact_network`: the cells' weights
with no DAC, ADC or read noise) on the run's environment, and prints its mean return beside the
run's own evaluations on the chip at the same step (`evals.jsonl`: the last one, and the mean of
the last three). A good exact policy where the chip's fails says the weights learned and the
periphery's read error spoils the greedy choice; both failing says the weights did not learn.
A simulator's view (true state, nothing charged). MLP Q-networks only.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from envs.factory import make_vector_env
from experiments.q_resolution import exact_network
from rlime.common.files import tomllib


def exact_returns(run_dir: Path, episodes: int, epsilon: float | None) -> tuple[int, list[float]]:
    """(checkpoint step, returns of `episodes` episodes of the exact greedy policy)."""
    run = tomllib.loads((run_dir / "config.toml").read_text())["run"]
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=False, map_location="cpu")
    eps = run["eval_epsilon"] if epsilon is None else epsilon
    return checkpoint["step"], play_exact(checkpoint["agent"]["q"], run["env"], run["seed"],
                                          episodes, eps)


def play_exact(q: dict, env_name: str, seed: int, episodes: int, epsilon: float) -> list[float]:
    """`play` the exact network of the rram Q state dict `q` (`q_resolution.exact_network`)."""
    return play(exact_network({name: t.cpu() for name, t in q.items()}), env_name, seed,
                episodes, epsilon)


def play(net: torch.nn.Module, env_name: str, seed: int, episodes: int,
         epsilon: float) -> list[float]:
    """Returns of `episodes` episodes of `net`'s greedy policy at `epsilon`, in float, on a
    fresh evaluation env."""
    env = make_vector_env(env_name, 1, seed, eval_mode=True)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed + 7_000_003)
    returns: list[float] = []
    with torch.no_grad():
        while len(returns) < episodes:
            action = net(torch.as_tensor(obs, dtype=torch.float32)).argmax(1).numpy()
            if rng.random() < epsilon:
                action = np.array([env.single_action_space.sample()])
            obs, _, _, _, info = env.step(action)
            returns += [float(r) for r in info["game_return"][info["game_over"]]]
    return returns


def chip_returns(run_dir: Path, step: int) -> list[float]:
    """The run's evaluation means on the chip up to `step`, in order."""
    lines = [json.loads(line) for line in (run_dir / "evals.jsonl").read_text().splitlines()]
    return [line["mean_return"] for line in lines if line["step"] <= step]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--epsilon", type=float, help="default: the run's eval_epsilon")
    args = parser.parse_args(argv)
    print("| run | step | exact weights: mean return (episodes) | chip: last eval | chip: mean of last 3 |")
    print("| --- | --- | --- | --- | --- |")
    for run_dir in args.runs:
        step, returns = exact_returns(run_dir, args.episodes, args.epsilon)
        chip = chip_returns(run_dir, step)
        print(f"| {run_dir.name} | {step} | {statistics.fmean(returns):.1f} ({len(returns)}) | "
              f"{chip[-1]:.1f} | {statistics.fmean(chip[-3:]):.1f} |")


if __name__ == "__main__":
    main()
