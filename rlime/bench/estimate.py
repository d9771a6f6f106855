"""What a suite will cost before it runs: time, memory and disk per entry and in total.

Nothing is trained. Each entry's environment is built once (for its observation and action
spaces), its Q-network is built to count parameters, and the replay buffer's size comes from
`ReplayBuffer.estimate_bytes` (its exact allocation arithmetic). Everything else is a measured
rate (MEASURED), on this project's development machine class: 2 shared x86 CPU cores, one run
per core, ``OMP_NUM_THREADS=1``, the env's default hyperparameters (experiments/hyperparams.toml),
the default preset with write-verify tuning for rram (MinAtar: gradual), learning on; other tuning
schemes scale the rram rate by their measured slow-down on CartPole, or on the section's own env
where it was measured (``rram_scheme_factor``):

* steps per second per hyperparameter section (CartPole-v1, Acrobot-v1, MountainCar-v0, atari
  -- measured on Pong, 4 envs --, default) and backend, from ``summary.json["sps"]``;
* a per-process start-up (imports, env, numba compilation);
* resident memory = a base per backend + the replay's bytes (written pages only, so at most
  min(total steps, buffer size) transitions) + bytes per Q-network parameter (online and target
  network, optimiser, the rram backend's cell state and periphery, activations), fitted to the
  peak RSS of a CartPole and a Pong run;
* checkpoint = the replay's filled part + checkpoint bytes per parameter (float: 4 float32 copies,
  online, target and two Adam moments; rram: the cell state too), from ``checkpoint.pt`` sizes;
  while a checkpoint is written the old one stays until the new one is complete (2x peak);
* logs (episodes.jsonl, TensorBoard events) <= LOG_BYTES_PER_STEP (CartPole's short episodes).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from rlime.bench.leaderboard import format_duration

if TYPE_CHECKING:
    from rlime.bench.runner import Job

MIB = 2**20

#: Measured rates (see the module docstring for the machine and the settings they hold for).
MEASURED = {
    # hyperparameter section -> backend -> environment steps per second
    "sps": {"CartPole-v1": {"rram": 335.0, "float": 1160.0},
            "Acrobot-v1": {"rram": 131.0, "float": 409.0},
            "MountainCar-v0": {"rram": 274.0, "float": 1230.0},
            "atari": {"rram": 52.0, "float": 110.0},
            # the minatar suite (Breakout and SpaceInvaders, 100k steps, 3 seeds, 2 runs on the
            # 2 cores): float 121-140 steps/s, rram with gradual tuning 47-55
            "minatar": {"rram": 51.0, "float": 130.0},
            "default": {"rram": 335.0, "float": 1160.0}},   # default = CartPole's settings
    # rram steps/s of a tuning scheme relative to write-verify's (at each scheme's own tolerance):
    # CartPole-v1, 100k steps, seeds 3-6 of experiments/cartpole_learning.toml, 2 runs on the
    # 2 cores: gradual 58-78 steps/s (mean 68) against write-verify's 335; open-loop unmeasured
    # (taken as write-verify's: it verifies nothing, so it is not slower)
    # MinAtar's rram rate is gradual's own (its updates are a few hundred cells a step, so the
    # scheme costs little there); its other schemes are unmeasured and taken as gradual's, an
    # upper bound on time (they verify less). "default": every other section.
    # Acrobot's gradual rate is its own: 48.5-49.2 steps/s (seeds 2, 3 of
    # experiments/acrobot_advantage.toml, 2 runs on the 2 cores, advantage learning on, its
    # default) against write-verify's 131 (plain DQN).
    "rram_scheme_factor": {
        "default": {"write-verify": 1.0, "gradual": 68.0 / 335.0, "open-loop": 1.0},
        "Acrobot-v1": {"write-verify": 1.0, "gradual": 49.0 / 131.0, "open-loop": 1.0},
        "minatar": {"write-verify": 1.0, "gradual": 1.0, "open-loop": 1.0}},
    "startup_s": 5.0,
    "base_rss_bytes": {"rram": 513 * MIB, "float": 486 * MIB},
    "rss_bytes_per_param": {"rram": 466.0, "float": 82.0},
    "checkpoint_bytes_per_param": {"rram": 120.0, "float": 16.0},
}
LOG_BYTES_PER_STEP = 140.0   # smoke suite's random-policy episodes (rram logs more)
#: Supervised entries (`rlime.sl`): minibatch steps per second per network and backend
#: (`summary.json["steps_per_s"]` of the paper_sl suite's runs: digits, minibatch 32, the
#: default preset with write-verify, both update modes, evaluation included; one run at a time
#: on the 2 shared cores, then busy with other work, so an upper bound on time), the process
#: start-up and base memory, and the bytes of one epochs.jsonl line.
SL_MEASURED = {
    "sps": {"mlp": {"rram": 70.0, "float": 380.0}, "lenet": {"rram": 30.0, "float": 140.0}},
    "startup_s": 15.0,
    "base_rss_bytes": 530 * MIB,   # LeNet on digits peaked at 533 MiB (/usr/bin/time)
    "epoch_log_bytes": 1500.0,     # digits MLP: 29.8 kB for 20 epochs
}
SL_TRAIN_IMAGES = {"digits": 1438, "mnist": 60_000}   # rlime.sl.data
#: Agent settings the step rate depends on; an entry that changes them is flagged.
RATE_SETTINGS = ("network", "hidden", "batch_size", "train_freq", "gradient_steps",
                 "advantage_learning")

ASSUMPTIONS = (
    "steps/s measured with each env's default hyperparameters on 2 shared CPU cores, one run per "
    "core, OMP_NUM_THREADS=1, rram with the default preset and write-verify, gradual at its "
    "slow-down measured on CartPole (other presets, networks, update schedules or a GPU run at "
    "other speeds; a '*' marks entries "
    "whose agent settings differ from those measured); evaluation rounds are not counted; "
    "memory is each process's peak resident set; disk is the final checkpoint plus logs (a "
    "checkpoint being written needs its size again)")


@dataclass(frozen=True)
class Estimate:
    """What one entry of the plan still costs: run seconds, peak bytes in memory and on disk."""

    name: str
    steps: int              # steps still to run
    seconds: float
    memory_bytes: int
    disk_bytes: int
    rate_key: str           # the MEASURED["sps"] section used
    sps: float
    differs: tuple[str, ...]   # agent settings (RATE_SETTINGS) that differ from the measured ones


def estimate_job(job: "Job", cache: dict | None = None) -> Estimate:
    """The estimate of one planned job (0 s for a finished one; memory and disk as when done).

    `cache` (shared over a plan) keeps built envs' spaces and parameter counts."""
    from envs import resolve_env
    from rlime.harness.run_config import resolve

    cache = {} if cache is None else cache
    cfg = job.entry.config
    if job.entry.kind == "sl":
        return _estimate_sl(job, cache)
    spec = resolve_env(cfg.env)
    obs_shape, obs_dtype, n_actions = _spaces(spec, cache)
    params = _parameters(obs_shape, n_actions, cfg.agent.network, tuple(cfg.agent.hidden), cache)
    frame_stack = spec.protocol.get("frame_stack", 1) if spec.is_atari else 1
    filled = min(cfg.total_steps, cfg.agent.buffer_size)
    replay = _replay_bytes(filled, obs_shape, obs_dtype, frame_stack, cfg.num_envs)
    backend = cfg.backend
    key = spec.defaults_key(MEASURED["sps"])
    sps = MEASURED["sps"][key][backend]
    if backend == "rram":
        factors = MEASURED["rram_scheme_factor"]
        sps *= factors.get(key, factors["default"])[cfg.hardware.tuning.scheme]
    defaults = resolve([("run.env", cfg.env), ("run.backend", backend)]).agent
    differs = tuple(f"agent.{k}" for k in RATE_SETTINGS
                    if getattr(cfg.agent, k) != getattr(defaults, k))
    steps = 0 if job.action == "skip" else max(cfg.total_steps - job.done_steps, 0)
    seconds = steps / sps + MEASURED["startup_s"] if steps else 0.0
    memory = (MEASURED["base_rss_bytes"][backend] + replay
              + params * MEASURED["rss_bytes_per_param"][backend])
    disk = (replay + params * MEASURED["checkpoint_bytes_per_param"][backend]
            + cfg.total_steps * LOG_BYTES_PER_STEP)
    return Estimate(job.name, steps, seconds, int(memory), int(disk), key, sps, differs)


def _estimate_sl(job: "Job", cache: dict) -> Estimate:
    """A supervised entry: its minibatch steps at the measured rate of its network; memory and
    disk from its parameter count (no replay)."""
    from rlime.sl.nets import build_network

    cfg = job.entry.config
    t = cfg.train
    shape = (1, 8, 8) if cfg.dataset == "digits" else (1, 28, 28)
    key = ("sl-net", shape, t.network, tuple(t.hidden))
    if key not in cache:
        cache[key] = sum(p.numel() for p in build_network(t.network, shape, 10, t.hidden).parameters())
    params = cache[key]
    per_epoch = -(-SL_TRAIN_IMAGES[cfg.dataset] // t.batch_size)
    epochs = 0 if job.action == "skip" else max(cfg.epochs - job.done_steps, 0)
    sps = SL_MEASURED["sps"][t.network][cfg.backend]
    steps = epochs * per_epoch
    seconds = steps / sps + SL_MEASURED["startup_s"] if steps else 0.0
    memory = SL_MEASURED["base_rss_bytes"] + params * MEASURED["rss_bytes_per_param"][cfg.backend]
    disk = (params * MEASURED["checkpoint_bytes_per_param"][cfg.backend]
            + cfg.epochs * SL_MEASURED["epoch_log_bytes"])
    differs = ("train.batch_size",) if t.batch_size != 32 else ()
    return Estimate(job.name, steps, seconds, int(memory), int(disk), f"sl {t.network}", sps,
                    differs)


def _spaces(spec, cache: dict) -> tuple[tuple[int, ...], object, int]:
    """(observation shape, dtype, number of actions) of an env, built once."""
    if ("env", spec.env_id) not in cache:
        from envs.factory import make_vector_env

        env = make_vector_env(spec, 1, 0)
        obs = env.single_observation_space
        cache[("env", spec.env_id)] = (tuple(obs.shape), obs.dtype,
                                       int(getattr(env.single_action_space, "n", 0)))
        env.close()
    return cache[("env", spec.env_id)]


def _parameters(obs_shape, n_actions: int, network: str, hidden: tuple[int, ...],
                cache: dict) -> int:
    key = ("net", obs_shape, n_actions, network, hidden)
    if key not in cache:
        from agents.qnets import build_q_network

        net = build_q_network(obs_shape, max(n_actions, 1), network, hidden)
        cache[key] = sum(p.numel() for p in net.parameters())
    return cache[key]


def _replay_bytes(capacity: int, obs_shape, obs_dtype, frame_stack: int, num_envs: int) -> int:
    from agents.replay import ReplayBuffer

    return ReplayBuffer.estimate_bytes(max(capacity, num_envs), obs_shape, obs_dtype,
                                       frame_stack, num_envs)


def estimate_plan(jobs: Sequence["Job"]) -> list[Estimate]:
    cache: dict = {}
    return [estimate_job(job, cache) for job in jobs]


def makespan(seconds: Sequence[float], workers: int) -> float:
    """Wall time of running these durations on `workers` slots, longest first (greedy LPT)."""
    slots = [0.0] * max(1, min(workers, len(seconds)))
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(slots, slots[0] + s)
    return max(slots)


def format_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", MIB), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def describe_estimates(estimates: Sequence[Estimate], workers: int | None) -> str:
    """The --dry-run report: one line per entry, the totals, and what the figures assume."""
    width = max((len(e.name) for e in estimates), default=10)
    lines = ["estimate (assumptions on the last line; * = agent settings that differ from "
             "those the steps/s were measured with):",
             f"  {'run':<{width}}  {'steps':>11}  {'steps/s':>7}  {'time':>7}  {'memory':>9}  "
             f"{'disk':>9}"]
    for e in estimates:
        mark = f"  * {', '.join(e.differs)}" if e.differs else ""
        lines.append(f"  {e.name:<{width}}  {e.steps:>11,}  {e.sps:>7.0f}  "
                     f"{format_duration(e.seconds) if e.steps else 'done':>7}  "
                     f"{format_bytes(e.memory_bytes):>9}  {format_bytes(e.disk_bytes):>9}{mark}")
    todo = [e for e in estimates if e.steps]
    total_s = sum(e.seconds for e in todo)
    text = (f"  total: {len(todo)} of {len(estimates)} runs to do, "
            f"{sum(e.steps for e in todo):,} steps, {format_duration(total_s)} of run time")
    if workers and todo:
        at_once = sorted((e.memory_bytes for e in todo), reverse=True)[:workers]
        text += (f"; about {format_duration(makespan([e.seconds for e in todo], workers))} with "
                 f"{workers} workers, memory up to {format_bytes(sum(at_once))} at once")
    text += f"; disk {format_bytes(sum(e.disk_bytes for e in estimates))} when done"
    return "\n".join(lines + [text, "  assumes: " + ASSUMPTIONS])
