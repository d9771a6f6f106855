"""`python -m rlime.bench SUITE`: run a benchmark suite, then its leaderboard.

    python -m rlime.bench SUITE [--out DIR] [--workers N] [--executor local|ray]
                          [--dry-run] [--no-plots] [--no-progress]
    python -m rlime.bench --leaderboard-only DIR

SUITE is a suite file, or the name of a suite bundled with rlime (smoke, classic, atari, paper,
mappings, cartpole_learning, nonideality: `experiments.suite_names()`), usable from any directory.
Every entry of the suite (see :mod:`rlime.bench.suite` for the file format) is an ordinary
``python -m rlime.train`` run directory ``DIR/<name>`` (``python -m rlime.sl`` for a
supervised suite), run as its own process (``sys.executable -m rlime.train ... --run-dir
DIR/<name> --no-progress``, output appended to ``DIR/<name>/train.log``, ``OMP_NUM_THREADS=1``
unless set: parallelism comes from processes). Before starting, each entry is checked against
its directory:

* ``summary.json`` with ``steps >= total_steps`` (``epochs`` for a supervised entry):
  finished, skipped;
* ``checkpoint.pt``: interrupted, continued with ``--resume`` (and the suite's budget,
  ``--total-steps`` or ``--epochs``, so a raised budget extends finished runs too);
* ``config.toml`` but no checkpoint: died before its first checkpoint, started again;
* otherwise started.
If a directory's ``config.toml`` differs from what the suite asks for (other than the budget),
nothing runs at all: the bench names the directories and the differing settings and exits 2
(one output directory never mixes configurations under one suite's name). So re-running the
same command after an interruption (Ctrl-C, a crash, a reboot) redoes only what is missing.

Ctrl-C (SIGINT) or SIGTERM: no new runs start, the signal is forwarded once to every running
child (they checkpoint and exit), the bench waits for them, writes the leaderboard of what is
finished and exits with 130. Children run in their own process group, so a terminal's Ctrl-C
reaches them only through the bench (once). A failed run is reported with the tail of its log
and does not stop the others; the exit status is 1 if any run failed.

Exit status: 0 all runs finished, 1 a run failed, 2 bad input (suite file, arguments, a
conflicting run directory, Ray missing), 130 interrupted.

``--executor ray`` runs each entry as a Ray task (``ray.init()``: ``RAY_ADDRESS`` or a local
instance; one CPU per task). DIR must then be on storage every Ray node sees. Ray is an optional
extra: ``pip install 'rlime[ray]'``.

``--dry-run`` validates the suite, prints each entry's action and command, and estimates each
entry's run time, peak memory and disk and the totals (:mod:`rlime.bench.estimate`: measured
rates, stated with the estimate); it trains nothing and writes nothing.

The leaderboard (``DIR/leaderboard.{md,csv,json}``, ``DIR/plots/*.png``; :mod:`rlime.bench.leaderboard`)
is written at the end, and on demand with ``--leaderboard-only DIR``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

from experiments import suite_names

from rlime.bench.estimate import describe_estimates, estimate_plan
from rlime.bench.leaderboard import MANIFEST, write_leaderboard
from rlime.common.files import atomic_write
from rlime.harness.run_dir import RunDirError, RunDirectory
from rlime.bench.suite import Entry, Suite, SuiteError, load_suite

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
LOG_FILE = "train.log"
LOG_TAIL_LINES = 20
POLL_S = 0.5
RAY_RETRIES = 3


class BenchError(RuntimeError):
    """The bench cannot proceed as asked; the message says why and what to do."""


# ---------------------------------------------------------------------------------------------
# planning: what each entry needs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What to do for one entry: action in {skip, start, resume, restart, conflict}."""

    entry: Entry
    run_dir: Path
    action: str
    detail: str = ""
    argv: tuple[str, ...] = ()     # python -m rlime.train flags (start / resume / restart)
    done_steps: int = 0            # steps its summary.json shows already done

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def log(self) -> Path:
        return self.run_dir / LOG_FILE


def plan(entry: Entry, out: Path) -> Job:
    """Decide from the run directory whether `entry` is finished, to resume, or to start."""
    run_dir = out / entry.name
    summary = _read_json(run_dir / "summary.json")
    has_config = (run_dir / "config.toml").exists()
    has_checkpoint = (run_dir / "checkpoint.pt").exists()
    if has_config:
        mismatch = _config_mismatch(entry, run_dir)
        if mismatch:
            return Job(entry, run_dir, "conflict", f"its config.toml differs: {mismatch}")
    unit = entry.command.budget_key   # steps, or epochs for a supervised entry
    steps = int(summary.get(unit, 0)) if summary else 0
    if summary and steps >= entry.total_steps:
        return Job(entry, run_dir, "skip", f"finished ({steps:,} {unit})", done_steps=steps)
    start = (*entry.argv, "--run-dir", str(run_dir), "--no-progress")
    if has_checkpoint:
        return Job(entry, run_dir, "resume", f"from {unit[:-1]} {steps:,} of {entry.total_steps:,}",
                   ("--resume", str(run_dir), entry.command.budget_flag, str(entry.total_steps),
                    "--no-progress"), steps)
    if has_config:
        return Job(entry, run_dir, "restart", "stopped before its first checkpoint", start)
    return Job(entry, run_dir, "start", f"{entry.total_steps:,} {unit}", start)


def _config_mismatch(entry: Entry, run_dir: Path) -> str:
    """'' if run_dir/config.toml is the entry's configuration (budget and device aside)."""
    want = entry.config
    try:
        have = type(want).from_toml((run_dir / "config.toml").read_text())
    except Exception as err:  # unreadable or foreign config.toml
        return f"its config.toml cannot be read: {err}"
    budget = entry.command.budget_field
    have = dataclasses.replace(have, **{budget: getattr(want, budget), "device": want.device})
    if have == want:
        return ""
    a, b = _flatten(dataclasses.asdict(have)), _flatten(dataclasses.asdict(want))
    diffs = [f"{k}: {a.get(k)!r} there, {b.get(k)!r} in the suite" for k in sorted(set(a) | set(b))
             if a.get(k) != b.get(k)]
    return "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ---------------------------------------------------------------------------------------------
# running one entry
# ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    status: str              # ok | failed | interrupted | not-started
    returncode: int | None = None
    seconds: float = 0.0
    message: str = ""


def child_environment() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_process(cmd: Sequence[str], log, env: dict[str, str], *,
                  die_with_parent: bool = False) -> subprocess.Popen:
    """Start one training process (its own process group; output to the open `log` file).

    `die_with_parent` (Linux): the process gets SIGTERM -- checkpoint and stop -- when the one
    that started it dies (a killed Ray worker leaves no orphan run holding the directory).
    Module-level so tests can count or replace launches.
    """
    return subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                            preexec_fn=_term_with_parent if die_with_parent else None)


def _term_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent dies (else nothing)."""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def prepare(job: Job) -> None:
    """Make the run directory ready for the job (a restart clears the dead run's files)."""
    if job.action == "restart":
        holder = RunDirectory(job.run_dir)
        holder.claim()          # RunDirError if a live process holds it
        holder.release()
        for item in job.run_dir.iterdir():
            if item.name in (".lock", LOG_FILE):
                continue
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    job.run_dir.mkdir(parents=True, exist_ok=True)


def train_command(argv: Sequence[str], python: str | None = None,
                  module: str = "rlime.train") -> list[str]:
    return [python or sys.executable, "-m", module, *argv]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def judge(job: Job, returncode: int, seconds: float) -> Outcome:
    """The outcome of a finished child: ok only if it exited 0 and reached the budget."""
    if returncode in (130, -signal.SIGINT, -signal.SIGTERM):
        return Outcome(job.name, "interrupted", returncode, seconds,
                       "interrupted; a re-run resumes it from its checkpoint")
    if returncode != 0:
        meaning = {2: "bad input", 3: "numerical failure"}.get(returncode, "error")
        return Outcome(job.name, "failed", returncode, seconds,
                       f"exit status {returncode} ({meaning}); last lines of {job.log}:\n"
                       f"{log_tail(job.log)}")
    summary = _read_json(job.run_dir / "summary.json") or {}
    unit = job.entry.command.budget_key
    steps = int(summary.get(unit, 0))
    if steps < job.entry.total_steps:
        return Outcome(job.name, "failed", returncode, seconds,
                       f"exited 0 but its summary.json shows {steps:,} of "
                       f"{job.entry.total_steps:,} {unit}; last lines of {job.log}:\n"
                       f"{log_tail(job.log)}")
    return Outcome(job.name, "ok", returncode, seconds)


def _header(job: Job, cmd: Sequence[str]) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return f"# rlime.bench {stamp}: {job.action} {job.detail}\n# {shlex.join(cmd)}\n"


# ---------------------------------------------------------------------------------------------
# executors
# ---------------------------------------------------------------------------------------------


class LocalExecutor:
    """Runs jobs as subprocesses, `workers` at a time (threads waiting on children)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen] = {}
        self._env = child_environment()

    @property
    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._procs)

    def _one(self, job: Job) -> Outcome:
        if self.stopping.is_set():
            return Outcome(job.name, "not-started")
        t0 = time.monotonic()
        try:
            prepare(job)
        except (RunDirError, OSError) as err:
            return Outcome(job.name, "failed", None, 0.0, str(err))
        cmd = train_command(job.argv, module=job.entry.command.module)
        with open(job.log, "a") as log:
            log.write(_header(job, cmd))
            log.flush()
            proc = start_process(cmd, log, self._env)
            with self._lock:
                self._procs[job.name] = proc
                stop = self.stopping.is_set()
            if stop:  # the interrupt came between the check above and the launch
                _signal(proc, signal.SIGINT)
            try:
                rc = proc.wait()
            finally:
                with self._lock:
                    self._procs.pop(job.name, None)
        return judge(job, rc, time.monotonic() - t0)

    def stop(self) -> None:
        """Forward SIGINT to every running child (called from the main thread's loop)."""
        self.stopping.set()
        with self._lock:
            for proc in self._procs.values():
                _signal(proc, signal.SIGINT)

    def run(self, jobs: Sequence[Job], monitor: "Monitor") -> list[Outcome]:
        outcomes = []
        with cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="rlime-run") as pool:
            pending = {pool.submit(self._one, job) for job in jobs}
            while pending:
                done, pending = cf.wait(pending, timeout=POLL_S, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    outcomes.append(future.result())
                    monitor.finished(outcomes[-1])
                if monitor.interrupted and not self.stopping.is_set():
                    self.stop()
                monitor.show(self.running)
        return outcomes


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except (ProcessLookupError, OSError):
        pass


def _ray_task(entry: Entry, out: str, env: dict[str, str]) -> int:
    """Body of one Ray task: plan the entry from its directory, run it on this worker.

    Planned here, not on the driver, so a task Ray retries after its worker died resumes the
    run from the checkpoint the dead attempt left. The log header names the worker's pid."""
    job = plan(entry, Path(out))
    if job.action == "skip":
        return 0
    prepare(job)
    cmd = train_command(job.argv, module=job.entry.command.module)   # the worker's own interpreter
    with open(job.log, "a") as log:
        log.write(f"# rlime.bench (ray worker pid {os.getpid()}): {job.action} {job.detail}\n"
                  f"# {shlex.join(cmd)}\n")
        log.flush()
        proc = start_process(cmd, log, {**os.environ, **env}, die_with_parent=True)
        try:
            return proc.wait()
        except KeyboardInterrupt:  # ray.cancel(): let the run checkpoint
            _signal(proc, signal.SIGINT)
            return proc.wait()


class RayExecutor:
    """Each job a Ray task (one CPU); the output directory must be shared by the nodes.

    A task whose worker dies (node lost, process killed) is retried up to RAY_RETRIES times;
    the retry resumes from the run's last checkpoint."""

    def __init__(self) -> None:
        try:
            import ray
        except ImportError:
            raise BenchError("--executor ray needs Ray, an optional extra that is not installed: "
                             "pip install 'rlime[ray]' (or 'ray>=2.9'); or use --executor "
                             "local") from None
        self.ray = ray
        self.stopping = False

    def run(self, jobs: Sequence[Job], monitor: "Monitor") -> list[Outcome]:
        ray = self.ray
        if not ray.is_initialized():
            ray.init()  # RAY_ADDRESS, or a local instance
        task = ray.remote(num_cpus=1, max_retries=RAY_RETRIES)(_ray_task)
        env = {k: v for k, v in child_environment().items()
               if k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONUNBUFFERED")}
        refs, outcomes, t0 = {}, [], time.monotonic()
        for job in jobs:
            refs[task.remote(job.entry, str(job.run_dir.parent), env)] = job
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
            for ref in done:
                job = refs[ref]
                try:
                    outcome = judge(job, ray.get(ref), time.monotonic() - t0)
                except Exception as err:  # a cancelled or crashed task
                    outcome = Outcome(job.name, "interrupted" if self.stopping else "failed",
                                      None, 0.0, f"Ray task ended: {err}")
                outcomes.append(outcome)
                monitor.finished(outcome)
            if monitor.interrupted and not self.stopping:
                self.stopping = True
                for ref in pending:
                    ray.cancel(ref)
            monitor.show([refs[r].name for r in pending])
        return outcomes


# ---------------------------------------------------------------------------------------------
# progress and signals
# ---------------------------------------------------------------------------------------------


class Monitor:
    """tqdm over runs (done / total, names of running ones), failure reports, SIGINT/SIGTERM."""

    def __init__(self, total: int, done: int, desc: str, progress: bool) -> None:
        self.bar = tqdm(total=total, initial=done, unit="run", desc=desc, dynamic_ncols=True,
                        disable=not progress, file=sys.stderr)
        self.interrupts = 0
        self._previous: dict[int, Any] = {}
        self._shown = None

    @property
    def interrupted(self) -> bool:
        return self.interrupts > 0

    def __enter__(self) -> "Monitor":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self.bar.close()

    def _on_signal(self, signum: int, frame) -> None:
        # only flag it here: the main loop forwards it (no locks taken in a signal handler)
        self.interrupts += 1
        if self.interrupts == 1:
            self.write("interrupt: no new runs start; running ones checkpoint and stop ...")
        else:
            self.write("still waiting for running runs to write their checkpoints ...")

    def write(self, text: str) -> None:
        self.bar.write(text, file=sys.stderr)

    def finished(self, outcome: Outcome) -> None:
        if outcome.status == "ok":
            self.bar.update(1)
        elif outcome.status == "failed":
            self.bar.update(1)
            self.write(f"FAILED {outcome.name}: {outcome.message.splitlines()[0]}")
        elif outcome.status == "interrupted":
            self.write(f"interrupted {outcome.name} (checkpointed)")

    def show(self, running: Sequence[str]) -> None:
        text = ("running: " + ", ".join(running)) if running else ""
        if len(text) > 160:
            text = text[:157] + "..."
        if text != self._shown:
            self._shown = text
            self.bar.set_postfix_str(text, refresh=True)


# ---------------------------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------------------------


@dataclass
class BenchResult:
    jobs: list[Job]
    outcomes: list[Outcome]
    interrupted: bool
    leaderboard: dict[str, Any] | None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_status(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed else EXIT_OK


def write_manifest(suite: Suite, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = json.dumps(suite.manifest(), indent=2) + "\n"
    atomic_write(out / MANIFEST, data)


def run_suite(suite: Suite, out: str | Path, *, workers: int | None = None,
              executor: str = "local", progress: bool = True, plots: bool = True,
              log: Callable[[str], None] = print) -> BenchResult:
    """Run what `suite` still needs under `out`, then write the leaderboard."""
    out = Path(out)
    jobs = [plan(entry, out) for entry in suite.entries]
    conflicts = [j for j in jobs if j.action == "conflict"]
    if conflicts:  # never mix configurations under one suite's name: touch nothing
        raise BenchError(f"{len(conflicts)} run directories under {out} hold runs of another "
                         f"configuration than {suite.path} asks for; nothing was run (move them "
                         f"away, or choose another --out):\n"
                         + "\n".join(f"  {j.name}: {j.detail}" for j in conflicts))
    runner: LocalExecutor | RayExecutor
    if executor == "ray":
        runner = RayExecutor()  # BenchError before anything is written if Ray is missing
    else:
        runner = LocalExecutor(workers or os.cpu_count() or 1)
    write_manifest(suite, out)
    todo = [j for j in jobs if j.action in ("start", "resume", "restart")]
    outcomes: list[Outcome] = []
    skipped = sum(j.action == "skip" for j in jobs)
    counts = [f"{skipped} finished"] + [
        f"{sum(j.action == a for j in jobs)} to {a}" for a in ("start", "resume", "restart")
        if any(j.action == a for j in jobs)]
    where = (f" (local, {runner.workers} workers)" if isinstance(runner, LocalExecutor)
             else " (ray)") if todo else ""
    log(f"suite {suite.name}: {len(jobs)} runs in {out} -- {', '.join(counts)}{where}")
    with Monitor(len(jobs), skipped, suite.name, progress) as monitor:
        if todo:
            outcomes += runner.run(todo, monitor)
        interrupted = monitor.interrupted or any(o.status == "interrupted" for o in outcomes)
    board = write_leaderboard(out, plots=plots)
    result = BenchResult(jobs, outcomes, interrupted, board)
    for o in result.failed:
        log(f"\nrun {o.name} failed: {o.message}")
    done = sum(o.status == "ok" for o in outcomes)
    log(f"\n{done} runs finished now, {skipped} before; {len(result.failed)} failed"
        + (", interrupted: re-run the same command to continue" if interrupted else "")
        + f".\nleaderboard: {out / 'leaderboard.md'} (.csv, .json)"
        + (f", plots in {out / 'plots'}" if plots else ""))
    return result


def describe_plan(jobs: Sequence[Job]) -> str:
    lines = []
    for job in jobs:
        lines.append(f"{job.action:<8} {job.name}: {job.detail}")
        if job.argv:
            lines.append(f"         {shlex.join(['python', '-m', job.entry.command.module, *job.argv])}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rlime.bench",
        description="Run a benchmark suite (env x backend x preset x mapping x scheme x seed) "
                    "of rlime training runs, resuming what an earlier invocation left "
                    "unfinished, and write a leaderboard (Markdown, CSV, JSON) and plots.",
        epilog="Exit status: 0 all runs finished, 1 a run failed, 2 bad input, 130 interrupted.")
    p.add_argument("suite", nargs="?",
                   help="suite file (e.g. my_suite.toml) or bundled suite name: "
                        + ", ".join(suite_names()))
    p.add_argument("--out", metavar="DIR", help="output directory (default runs/<suite name>)")
    p.add_argument("--workers", type=int, metavar="N",
                   help=f"runs at a time with --executor local (default: CPU count, "
                        f"{os.cpu_count()})")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local processes (default) or Ray tasks (needs the 'ray' extra)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the suite, print what would run and an estimate of its "
                        "time, memory and disk; run nothing")
    p.add_argument("--leaderboard-only", metavar="DIR",
                   help="only (re)write DIR's leaderboard and plots from its runs")
    p.add_argument("--no-plots", action="store_true", help="leaderboard without plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.leaderboard_only:
        if args.suite:
            parser.error("give either a suite or --leaderboard-only DIR, not both")
        out = Path(args.leaderboard_only)
        if not out.is_dir():
            print(f"error: {out} is not a directory; give the --out directory of a bench run",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        board = write_leaderboard(out, plots=not args.no_plots)
        rows = sum(len(t.rows) for t in board["tables"])
        print(f"{rows} configurations in {len(board['tables'])} tables: "
              f"{out / 'leaderboard.md'} (.csv, .json)")
        return EXIT_OK
    if not args.suite:
        parser.error("a suite is required: a suite file or a bundled suite name ("
                     + ", ".join(suite_names()) + "), or --leaderboard-only DIR")
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers {args.workers}: give a positive number of parallel runs")
    try:
        suite = load_suite(args.suite)
    except SuiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = Path(args.out) if args.out else Path("runs") / suite.name
    if args.dry_run:
        jobs = [plan(entry, out) for entry in suite.entries]
        print(f"suite {suite.name} ({suite.path}): {len(jobs)} runs in {out}")
        print(describe_plan(jobs))
        workers = None if args.executor == "ray" else args.workers or os.cpu_count() or 1
        print(describe_estimates(estimate_plan(jobs), workers))
        return EXIT_OK
    try:
        result = run_suite(suite, out, workers=args.workers, executor=args.executor,
                           progress=not args.no_progress, plots=not args.no_plots)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return result.exit_status
