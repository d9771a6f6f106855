"""What every training command shares, whatever it trains (DQN: `rlime.harness.train`;
supervised learning: `rlime.sl`): opening its run directory (a new run, or `--resume`), running
it to an exit code, the torch threads it uses, stopping at a checkpoint on SIGINT/SIGTERM, the
progress bar and its recent rate, and the size of what a checkpoint holds.

Nothing here imports RL code, so the supervised path loads without gymnasium or the agents.

Exit codes of a training command: 0 done (or paused after --session-steps), 2 bad input
(nothing is started), 3 a numerical failure (the last good checkpoint is kept), 130
interrupted (checkpoint saved).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Protocol, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from rlime.common.errors import ConfigError
from rlime.common.files import atomic_write
from rlime.harness.pipeline import Schema, add_flags
from rlime.harness.run_dir import RunDirectory, RunDirError

EXIT_OK, EXIT_BAD_INPUT, EXIT_NUMERICAL, EXIT_INTERRUPTED = 0, 2, 3, 130


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; the run stopped at a checkpoint."""


class Run(Protocol):
    """What `open_run` and `run_command` need of a trainer."""

    run_dir: RunDirectory
    threads: int
    threads_reason: str

    def restore(self) -> None: ...

    def run(self, session: int | None = None) -> dict[str, Any]: ...

    def position(self) -> str:
        """Where the run is, for people: "step 400", "epoch 3 (step 135)"."""
        ...

    def finished(self) -> bool: ...


R = TypeVar("R", bound=Run)
C = TypeVar("C")


def open_run(*, resume: str | None, new: Callable[[], tuple[C, Path]],
             load: Callable[[str], C], on_resume: Callable[[C], C],
             make: Callable[[C, RunDirectory], R], config_text: Callable[[C, R], str]) -> R:
    """The trainer of a new run or of the run in `resume`, its directory claimed.

    A new run's configuration and directory come from `new()`; a directory that already holds a
    run (config.toml) is refused, and the trainer is built before the directory is claimed, so a
    run that cannot start leaves no directory; then `config_text(cfg, trainer)` is written as
    config.toml. A resumed run's configuration is `load(config.toml)` with what a resume may
    change (`on_resume`); it continues from its checkpoint, or, without one (it stopped during
    start-up), starts over from the start with its files moved to `partial-N/`."""
    if resume:
        run_dir = RunDirectory(resume)
        if not run_dir.config_file.exists():
            raise RunDirError(f"{run_dir.path} holds no config.toml; there is no run to resume")
        cfg = on_resume(load(run_dir.config_file.read_text()))
        run_dir.claim()
        trainer = make(cfg, run_dir)
        if run_dir.checkpoint_file.exists():
            trainer.restore()
        else:
            folder = run_dir.set_aside()
            print(f"{run_dir.path} has no checkpoint.pt (the run stopped before its first "
                  f"checkpoint): starting it over from {trainer.position()} with its "
                  f"config.toml; its partial files were moved to {folder}", file=sys.stderr)
        return trainer
    cfg, path = new()
    run_dir = RunDirectory(path)
    if run_dir.config_file.exists():
        raise RunDirError(f"{path} already holds a run (config.toml); continue it with "
                          f"--resume {path}, or choose another --run-dir")
    trainer = make(cfg, run_dir)
    run_dir.claim()
    atomic_write(run_dir.config_file, config_text(cfg, trainer))
    return trainer


def command_parser(prog: str, description: str, schema: Schema, required: str,
                   defaulted: set[str], per: str, source: str, run_dir: str,
                   budget: str, step: str) -> argparse.ArgumentParser:
    """A training command's parser: one flag per setting of `schema` (the defaults file
    `source` gives those in `defaulted`, `per` env or dataset), then --run-dir (default
    `run_dir`), --resume (`budget`, the budget's flag, and --threads may change),
    --session-steps (`step`: what it counts) and --no-progress."""
    p = argparse.ArgumentParser(prog=prog, description=f"{description} Every flag below is a "
                                                       f"shorthand for one --set setting.")
    add_flags(p, schema, required, lambda key: schema.default_text(key, defaulted, per, source))
    p.add_argument("--run-dir", help=f"output directory (default {run_dir})")
    p.add_argument("--resume", metavar="DIR",
                   help=f"continue the run in DIR from its checkpoint ({budget} and --threads "
                        f"may change); a run without one starts over")
    p.add_argument("--session-steps", type=int, metavar="N",
                   help=f"pause after N more {step} with a checkpoint (continue with --resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def command_main(parser: Any, args: Any, *, required: str, help_text: Callable[[bool], str],
                 new: Callable[[], tuple[C, Path]], load: Callable[[str], C],
                 resume_keys: tuple[str, ...], parse_value: Callable[[str, str], Any],
                 make: Callable[[C, RunDirectory], R], config_text: Callable[[C, R], str],
                 command: str, failures: tuple[type[BaseException], ...],
                 summary_text: Callable[[dict[str, Any]], str]) -> int:
    """A training command's main: --help-settings (`help_text(whether the required setting
    was given)`), or a new run (`required` must be given) or a resumed one (`open_run`) trained
    to an exit code (`run_command`)."""
    if args.help_settings:
        return print_help(lambda: help_text(getattr(args, required) is not None))

    def prepare() -> R:
        if not args.resume and not getattr(args, required):
            parser.error(f"--{required.partition('.')[2]} is required (or --resume DIR)")
        return open_run(resume=args.resume, new=new, load=load,
                        on_resume=resume_changes(args, resume_keys, parse_value), make=make,
                        config_text=config_text)

    return run_command(prepare, command=command, session=args.session_steps, failures=failures,
                       summary_text=summary_text)


def run_command(prepare: Callable[[], Run], *, command: str, session: int | None,
                failures: tuple[type[BaseException], ...],
                summary_text: Callable[[dict[str, Any]], str]) -> int:
    """Prepare a run (bad input: exit 2), train it, print its summary; the exit code.

    `command`: the module to continue with (`python -m COMMAND --resume DIR`); `failures`: the
    numerical failures that end a run with its last good checkpoint kept (exit 3)."""
    try:
        trainer = prepare()
    except (ConfigError, RunDirError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"torch threads: {trainer.threads} ({trainer.threads_reason}; --threads N sets them)",
          file=sys.stderr)
    again = f"  python -m {command} --resume {trainer.run_dir.path}"
    try:
        summary = trainer.run(session)
    except Interrupted:
        print(f"\ninterrupted at {trainer.position()}; checkpoint saved. Continue with:\n{again}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except failures as err:
        print(f"\nerror at {trainer.position()}: {err}\nThe last good checkpoint in "
              f"{trainer.run_dir.path} was kept.", file=sys.stderr)
        return EXIT_NUMERICAL
    finally:
        trainer.run_dir.release()
    print(summary_text(summary))
    if not trainer.finished():
        print(f"paused at {trainer.position()}; continue with:\n{again}")
    return EXIT_OK


def restore_state(run_dir: RunDirectory, device: torch.device, version: int, what: str,
                  saved: Callable[[str], Any], current: Any, parts: dict[str, Any]
                  ) -> dict[str, Any]:
    """Load the checkpoint of `run_dir` into `parts` (name in the checkpoint -> an object with
    `load_state_dict`: network, optimizer, backend, attribution) and return it; refused unless
    it is `what` (a checkpoint of `version` holding every part) of the configuration `current`
    (`saved(config text)`: the checkpoint's configuration with what a resume may change taken
    from `current`)."""
    state = run_dir.load_checkpoint(device)
    if state.get("version") != version or not set(parts) <= set(state):
        raise RunDirError(f"{run_dir.checkpoint_file} is not an rlime {what} of version {version}")
    if saved(state["config"]) != current:
        raise RunDirError(f"{run_dir.checkpoint_file} belongs to a different configuration "
                          f"than {run_dir.config_file}; restore the matching config.toml "
                          f"or start a new run")
    for name, part in parts.items():
        part.load_state_dict(state[name])
    return state


def resume_changes(args: Any, keys: tuple[str, ...],
                   parse_value: Callable[[str, str], Any]) -> Callable[[C], C]:
    """What `--resume` takes from the command line: the settings of `keys` (the budget, the
    machine's threads) given as flags."""
    def change(cfg: C) -> C:
        given = {key.partition(".")[2]: parse_value(key, getattr(args, key))
                 for key in keys if getattr(args, key) is not None}
        return dataclasses.replace(cfg, **given)
    return change


def print_help(text: Callable[[], str]) -> int:
    """Print `text()` (e.g. --help-settings); a bad setting in it is an error, exit 2."""
    try:
        print(text())
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


class StopSignals:
    """Inside the block SIGINT and SIGTERM only set `signal` (the loop stops at a checkpoint);
    the previous handlers come back after it."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame) -> None:
        self.signal = signum

    def __enter__(self) -> "StopSignals":
        self._previous = {sig: signal.signal(sig, self._on_signal)
                          for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def progress_bar(total: int, initial: int, unit: str, desc: str, enabled: bool) -> tqdm:
    """The training bar: percentage, count and elapsed time, the postfix set by the trainer."""
    return tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True, disable=not enabled,
                desc=desc, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                      "[{elapsed}{postfix}]")


def choose_threads(requested: int) -> tuple[int, str]:
    """(torch CPU threads, why): `requested` if >= 1, else OMP_NUM_THREADS if it is set to an
    integer >= 1, else the physical cores this process may use."""
    if requested >= 1:
        return requested, "run.threads"
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) >= 1:
        return int(env), "OMP_NUM_THREADS"
    return physical_cores(), "physical cores"


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on: distinct (package, core id) pairs
    in Linux sysfs over the CPU affinity mask, capped by a cgroup v2 CPU quota (cpu.max); the
    logical CPU count where sysfs cannot be read."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        list(range(os.cpu_count() or 1))
    try:
        cores = {tuple((Path(f"/sys/devices/system/cpu/cpu{cpu}/topology") / name).read_text()
                       for name in ("physical_package_id", "core_id")) for cpu in cpus}
    except OSError:
        cores = set(cpus)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        limit = max(1, int(quota) // int(period)) if quota != "max" else len(cores)
    except (OSError, ValueError):
        limit = len(cores)
    return max(1, min(len(cores), limit))


class RecentRate:
    """Steps per second over about the last `window_s` seconds of `add`ed (time, step) samples."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, step: int) -> None:
        now = self._clock()
        self._samples.append((now, step))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

    def rate(self) -> float:
        """Steps per second between the oldest kept sample and the newest (0 before two)."""
        (t0, s0), (t1, s1) = self._samples[0], self._samples[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else 0.0


def nbytes(obj: Any) -> int:
    """Bytes of the tensors, arrays and byte strings in `obj` (nested dicts, lists, tuples)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (bytes, str)):
        return len(obj)
    if isinstance(obj, dict):
        return sum(nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v) for v in obj)
    return 0


def size_text(count: int) -> str:
    """Bytes in kB, MB or GB (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count / 1e3:.1f} kB"
