"""How far do a run's weights grow beyond their initial range? Per layer, from its checkpoints.

    python experiments/weight_growth.py RUN_DIR [--checkpoints CKPT ...] [--headroom H]
                                        [--clip-play H [H ...]] [--levels L] [--layer NAME]
                                        [--episodes 10]

An array's conductance range represents +-`tile.weight_headroom` x max|W0| (`rlime.hw.array`:
W0 the layer's initial weights; the default headroom is 2). For each checkpoint (the run's
``checkpoint.pt`` and any given with `--checkpoints`, e.g. copies taken while the run went on)
this prints, per weight layer, its largest |w| and its 99th percentile |w| in units of max|W0|,
and the share of its weights beyond +-H x max|W0| (H: `--headroom`, else the run's own): the
weights a chip of that range would clip. On a float run this says what range the float
solution needs; W0 is rebuilt from the run's seed (the agent's initialisation,
`agents.dqn.DQNAgent`). With `--clip-play`, each float checkpoint's greedy policy is also
played in float with its weights clipped to +-H x max|W0| for every H given (and unclipped):
what a chip with that range, and no other flaw, could keep of the float solution. `--levels
L` also rounds each clipped weight to the grid of a differential pair of L-level cells (steps
of H x max|W0| / (L - 1): exact cells, no noise, no tuning error); `--layer NAME` (e.g.
4.weight) clips and rounds that layer only. A simulator's view (nothing charged).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from agents.qnets import build_q_network
from envs.factory import make_vector_env
from experiments.readout_policy import play
from rlime.harness.run_config import RunConfig
from rlime.harness.run_dir import RunDirectory


def initial_weights(cfg: RunConfig) -> dict[str, torch.Tensor]:
    """The Q-network's initial weight tensors by state-dict name (biases left out)."""
    env = make_vector_env(cfg.env, 1, cfg.seed, eval_mode=True)
    torch.manual_seed(cfg.seed)  # as DQNAgent does before building its Q-network
    net = build_q_network(env.single_observation_space.shape, int(env.single_action_space.n),
                          cfg.agent.network, cfg.agent.hidden, cfg.agent.dueling)
    env.close()
    return {name: w for name, w in net.state_dict().items() if name.endswith("weight")}


def growth(q: dict[str, torch.Tensor], initial: dict[str, torch.Tensor],
           headroom: float) -> dict[str, tuple[float, float, float]]:
    """{layer weight name: (max|w|, q99 |w| in max|W0| units, share beyond headroom)}."""
    rows = {}
    for name, w0 in initial.items():
        unit = float(w0.abs().max())
        w = q[name].detach().float().abs().reshape(-1)
        rows[name] = (float(w.max()) / unit, float(torch.quantile(w, 0.99)) / unit,
                      float((w > headroom * unit).float().mean()))
    return rows


def clipped(q: dict[str, torch.Tensor], initial: dict[str, torch.Tensor], headroom: float,
            levels: int | None = None, layer: str | None = None) -> dict[str, torch.Tensor]:
    """`q` with each weight layer (or only `layer`) clamped to +-headroom x its max|W0| and,
    with `levels`, rounded to steps of that bound / (levels - 1); biases unchanged."""
    out = dict(q)
    for name, w0 in initial.items():
        if layer is not None and name != layer:
            continue
        bound = headroom * float(w0.abs().max())
        out[name] = q[name].clamp(-bound, bound)
        if levels is not None:
            step = bound / (levels - 1)
            out[name] = torch.round(out[name] / step) * step
    return out


def clip_play_rows(cfg: RunConfig, q: dict[str, torch.Tensor], initial: dict[str, torch.Tensor],
                   headrooms: list[float], episodes: int, levels: int | None = None,
                   layer: str | None = None) -> list[tuple[str, float]]:
    """(headroom or "none", mean return of the clipped (`clipped`) float policy) for each
    headroom."""
    env = make_vector_env(cfg.env, 1, cfg.seed, eval_mode=True)
    shape, n_actions = env.single_observation_space.shape, int(env.single_action_space.n)
    env.close()
    rows = []
    for headroom in [*headrooms, None]:
        net = build_q_network(shape, n_actions, cfg.agent.network, cfg.agent.hidden, cfg.agent.dueling)
        net.load_state_dict(q if headroom is None else clipped(q, initial, headroom, levels, layer))
        returns = play(net, cfg.env, cfg.seed, episodes, cfg.eval_epsilon)
        rows.append(("none" if headroom is None else f"{headroom:g}", statistics.fmean(returns)))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--checkpoints", nargs="*", type=Path, default=[],
                        help="more checkpoint files of the same run")
    parser.add_argument("--headroom", type=float, help="default: the run's tile.weight_headroom")
    parser.add_argument("--clip-play", nargs="+", type=float, default=[], metavar="H",
                        help="play each checkpoint clipped at +-H max|W0| (float runs only)")
    parser.add_argument("--levels", type=int, help="--clip-play: round to L-level cell pairs")
    parser.add_argument("--layer", help="--clip-play: this weight layer only (e.g. 4.weight)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per --clip-play policy")
    args = parser.parse_args(argv)
    run_dir = RunDirectory(args.run)
    if not run_dir.config_file.exists():
        parser.error(f"{args.run} holds no config.toml")
    cfg = RunConfig.from_toml(run_dir.config_file.read_text())
    headroom = cfg.hardware.tile.weight_headroom if args.headroom is None else args.headroom
    if headroom <= 0 or any(h <= 0 for h in args.clip_play):
        parser.error("--headroom and --clip-play take headrooms > 0")
    if args.clip_play and cfg.backend != "float":
        parser.error(f"--clip-play plays a float run's weights; {args.run} is a {cfg.backend} run")
    if args.levels is not None and args.levels < 2:
        parser.error(f"--levels must be an integer >= 2, got {args.levels}")
    initial = initial_weights(cfg)
    if args.layer is not None and args.layer not in initial:
        parser.error(f"--layer {args.layer!r} is not a weight layer; choose one of {', '.join(initial)}")
    if args.episodes <= 0:
        parser.error(f"--episodes must be positive, got {args.episodes}")
    states = {}  # by step: a copy of the latest checkpoint is shown once
    for path in [run_dir.checkpoint_file, *args.checkpoints]:
        state = torch.load(path, weights_only=False, map_location="cpu")
        states[state["step"]] = state["agent"]["q"]
    print(f"{args.run} ({cfg.backend}): per layer max|w| / q99 |w| in max|W0| units; "
          f"share beyond +-{headroom:g} max|W0|")
    print("| step | " + " | ".join(initial) + " |")
    print("| --- |" + " --- |" * len(initial))
    for step, q in sorted(states.items()):
        rows = growth(q, initial, headroom)
        print(f"| {step} | " + " | ".join(
            f"{m:.1f} / {q99:.1f}; {share:.3f}" for m, q99, share in rows.values()) + " |")
    if args.clip_play:
        grid = f", rounded to {args.levels}-level cell pairs" if args.levels else ""
        print(f"\nfloat policy clipped at +-H max|W0|{grid} ({args.layer or 'every layer'}), played "
              f"in float ({args.episodes} episodes, epsilon {cfg.eval_epsilon:g}): mean return")
        print("| step | " + " | ".join(f"H {h:g}" for h in args.clip_play) + " | unclipped |")
        print("| --- |" + " --- |" * (len(args.clip_play) + 1))
        for step, q in sorted(states.items()):
            rows = clip_play_rows(cfg, q, initial, args.clip_play, args.episodes, args.levels,
                                  args.layer)
            print(f"| {step} | " + " | ".join(f"{mean:.1f}" for _, mean in rows) + " |")


if __name__ == "__main__":
    main()
