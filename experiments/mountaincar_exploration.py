"""Did a MountainCar run ever find the goal? Its training episodes and its replay, by window.

    python experiments/mountaincar_exploration.py RUN_DIR [RUN_DIR ...] [--every 10000]
                                                  [--checkpoints CKPT ...]

MountainCar-v0 pays -1 a step and ends an episode at the goal (position >= 0.5) or at 200
steps; an episode that returns more than -200 reached the goal. From each run's
``episodes.jsonl`` this prints, for every `--every` steps, the training episodes that ended in
the window and how many of them reached the goal (the experience DQN can learn the goal from),
and the step of the first one. From checkpoints (the run's ``checkpoint.pt``, and any given
with `--checkpoints`, e.g. copies taken while the run went on) it prints what the replay holds:
the highest position and speed in it and the share of its stored observations right of the valley's
floor's far slope (position > -0.2), i.e. how far the car's swings reached. A simulator's view
(nothing charged).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

GOAL_POSITION = 0.5    # gymnasium MountainCarEnv.goal_position
FAILED_RETURN = -200.0  # 200 steps (TimeLimit) of -1: the goal was not reached
UP_SLOPE = -0.2        # well up the right-hand slope (the valley floor is at about -0.52)


def goal_windows(run_dir: Path, every: int) -> list[tuple[int, int, int]]:
    """(window end step, training episodes ended in it, of them reaching the goal), in order."""
    episodes = [json.loads(line) for line in (run_dir / "episodes.jsonl").read_text().splitlines()]
    windows: dict[int, list[int]] = {}
    for ep in episodes:
        end = -(-ep["step"] // every) * every
        counts = windows.setdefault(end, [0, 0])
        counts[0] += 1
        counts[1] += ep["return"] > FAILED_RETURN
    return [(end, n, goals) for end, (n, goals) in sorted(windows.items())]


def first_goal(run_dir: Path) -> int | None:
    """Step at the end of the first training episode that reached the goal (None: never)."""
    for line in (run_dir / "episodes.jsonl").read_text().splitlines():
        ep = json.loads(line)
        if ep["return"] > FAILED_RETURN:
            return int(ep["step"])
    return None


def replay_reach(checkpoint: Path) -> dict[str, float]:
    """The checkpoint's step and its replay's reach: max position, max |velocity|, the share of
    stored observations with position > UP_SLOPE and with position >= GOAL_POSITION."""
    state = torch.load(checkpoint, weights_only=False, map_location="cpu")
    replay = state["replay"]
    if replay is None:
        raise SystemExit(f"{checkpoint} holds no replay (run.checkpoint_replay = false)")
    obs = np.asarray(replay["frames"]).reshape(-1, 2)
    if len(obs) == 0:
        return {"step": state["step"], "observations": 0}
    position, velocity = obs[:, 0], obs[:, 1]
    return {"step": state["step"], "observations": len(obs), "max_position": float(position.max()),
            "max_speed": float(np.abs(velocity).max()),
            "up_slope": float((position > UP_SLOPE).mean()),
            "at_goal": float((position >= GOAL_POSITION).mean())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=10_000, help="window length in steps")
    parser.add_argument("--checkpoints", nargs="*", type=Path, default=[],
                        help="more checkpoint files to read the replay of")
    args = parser.parse_args(argv)
    if args.every <= 0:
        parser.error(f"--every must be a positive number of steps, got {args.every}")
    for run_dir in args.runs:
        print(f"## {run_dir}: first training episode at the goal: step {first_goal(run_dir)}")
        print("| steps up to | training episodes | reached the goal |")
        print("| --- | --- | --- |")
        for end, n, goals in goal_windows(run_dir, args.every):
            print(f"| {end} | {n} | {goals} |")
    print("\n| checkpoint | step | stored observations | max position | max speed | share > -0.2 | share at goal |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    files = [run_dir / "checkpoint.pt" for run_dir in args.runs] + args.checkpoints
    for path in sorted(files, key=lambda p: (p.parent.name, p.stat().st_mtime)):
        r = replay_reach(path)
        if r["observations"] == 0:
            print(f"| {path} | {r['step']} | 0 | - | - | - | - |")
            continue
        print(f"| {path} | {r['step']} | {r['observations']} | {r['max_position']:.3f} | "
              f"{r['max_speed']:.4f} | {r['up_slope']:.3f} | {r['at_goal']:.4f} |")


if __name__ == "__main__":
    main()
