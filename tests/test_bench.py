"""Tests for `python -m rlime.bench`: suites, the runner, resume, the leaderboard and plots.

One real execution of experiments/smoke.toml (4 short CartPole runs, 2 workers) is shared by
the module; everything else uses it, fake training processes, or hand-made summaries.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from envs import resolve_env
from rlime.bench import estimate, runner as bench
from rlime.bench.leaderboard import (COLUMNS, RunResult, aggregate_row, atari_aggregate, build_tables,
                                     format_duration, load_runs, pareto_figure, plot_tables,
                                     render_markdown, smooth_on_grid)
from rlime.bench.stats import stratified_bootstrap_ci
from rlime.bench.suite import SuiteError, load_suite, parse_suite

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "experiments" / "smoke.toml"
RRAM_S1 = "CartPole-rram-default-time-write-verify-s1"
RUN_NAMES = {RRAM_S1, "CartPole-rram-default-time-write-verify-s2", "CartPole-float-s1",
             "CartPole-float-s2"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke"
    t0 = time.monotonic()
    assert bench.main([str(SMOKE), "--out", str(out), "--workers", "2", "--no-progress"]) == 0
    assert time.monotonic() - t0 < 120, "the smoke suite must stay well under 2 minutes"
    return out


@pytest.fixture
def finished_dir(tmp_path):
    """The smoke suite's run directories as finished runs leave them, written without training."""
    out = tmp_path / "finished"
    for entry in load_suite(SMOKE).entries:
        run_dir = out / entry.name
        run_dir.mkdir(parents=True)
        (run_dir / "config.toml").write_text(entry.config.to_toml(resolve_env(entry.env)))
        (run_dir / "summary.json").write_text(json.dumps({"steps": entry.total_steps}))
        (run_dir / "checkpoint.pt").write_bytes(b"")
        (run_dir / "train.log").write_text("# rlime.bench (written by the test)\n")
    return out


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _csv_rows(out: Path) -> list[dict]:
    with open(out / "leaderboard.csv", newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------------
# the smoke suite, end to end
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smoke_suite_runs_every_entry_to_its_budget(smoke_dir):
    runs = {p.name for p in smoke_dir.iterdir() if p.is_dir() and p.name != "plots"}
    assert runs == RUN_NAMES
    for name in RUN_NAMES:
        summary = _summary(smoke_dir / name)
        assert summary["steps"] >= 600
        assert (smoke_dir / name / "train.log").read_text().startswith("# rlime.bench")
        assert (smoke_dir / name / "config.toml").exists()
    manifest = json.loads((smoke_dir / "suite.json").read_text())
    assert manifest["name"] == "smoke" and len(manifest["entries"]) == 4


@pytest.mark.slow
def test_leaderboard_files_and_plots_exist(smoke_dir):
    for ext in ("md", "csv", "json"):
        assert (smoke_dir / f"leaderboard.{ext}").stat().st_size > 200
    pngs = sorted((smoke_dir / "plots").glob("*.png"))
    assert {p.name for p in pngs} == {"CartPole-v1-curves.png", "CartPole-v1-pareto.png"}
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000


@pytest.mark.slow
def test_leaderboard_has_one_row_per_configuration_with_all_columns(smoke_dir):
    rows = _csv_rows(smoke_dir)
    with open(smoke_dir / "leaderboard.csv", newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    assert sorted(r["config"] for r in rows) == ["float", "rram default/time/write-verify"]
    for row in rows:
        assert row["env_id"] == "CartPole-v1" and row["seeds"] == "2" and row["seed_list"] == "1;2"
        assert row["budget_steps"] == "600" and row["sticky_actions"] == "0.0"
    data = json.loads((smoke_dir / "leaderboard.json").read_text())
    (table,) = data["tables"]
    assert table["protocol"]["env_id"] == "CartPole-v1" and table["protocol"]["frameskip"] == 1
    assert {r["config"] for r in table["rows"]} == {r["config"] for r in rows}
    md = (smoke_dir / "leaderboard.md").read_text()
    assert "## CartPole-v1" in md and "IQM [95 % CI]" in md and "±" in md
    assert "rram default/time/write-verify" in md and "| float |" in md


@pytest.mark.slow
def test_leaderboard_values_match_the_runs_summaries(smoke_dir):
    data = json.loads((smoke_dir / "leaderboard.json").read_text())
    rows = {r["config"]: r for r in data["tables"][0]["rows"]}
    rram = rows["rram default/time/write-verify"]
    sums = [_summary(smoke_dir / f"CartPole-rram-default-time-write-verify-s{s}") for s in (1, 2)]
    assert rram["final_scores"] == pytest.approx([s["final_score"] for s in sums])
    assert rram["writes_total"] == pytest.approx(np.mean([s["writes_total"] for s in sums]))
    assert rram["writes_total"] > 0
    assert rram["energy_j_per_episode"] == pytest.approx(
        np.mean([s["energy_j_per_episode"] for s in sums]))
    assert rram["energy_j_total"] == pytest.approx(np.mean([s["energy_j_total"] for s in sums]))
    assert rram["gpu_j"] == pytest.approx(np.mean([s["baselines"]["gpu_j"] for s in sums]))
    assert rram["gpu_over_rram"] == pytest.approx(
        np.mean([s["baselines"]["gpu_j"] for s in sums])
        / np.mean([s["baselines"]["rram_j"] for s in sums]))
    mean = np.mean(rram["final_scores"])
    assert rram["score_mean"] == pytest.approx(mean)
    assert rram["iqm_ci_low"] <= rram["iqm"] <= rram["iqm_ci_high"]
    assert rram["energy_rank"] == 1 and rram["pareto"] is True
    float_row = rows["float"]
    assert float_row["writes_total"] == 0
    assert float_row["energy_j_per_episode"] is None and float_row["gpu_over_rram"] is None
    assert float_row["pareto"] is False and float_row["energy_rank"] is None
    assert sorted([rram["score_rank"], float_row["score_rank"]])[0] == 1


@pytest.mark.slow
def test_leaderboard_only_rewrites_from_the_run_directories(smoke_dir, capsys):
    before = _csv_rows(smoke_dir)
    assert bench.main(["--leaderboard-only", str(smoke_dir), "--no-plots"]) == 0
    assert _csv_rows(smoke_dir) == before
    assert "2 configurations in 1 tables" in capsys.readouterr().out


@pytest.mark.slow
def test_leaderboard_without_manifest_labels_runs_from_their_files(smoke_dir, tmp_path):
    for name in (RRAM_S1, "CartPole-float-s1"):
        shutil.copytree(smoke_dir / name, tmp_path / name)
    runs, missing = load_runs(tmp_path)
    assert missing == []
    labels = {(r.backend, r.preset, r.mapping, r.scheme, r.budget) for r in runs}
    assert labels == {("rram", "default", "time", "write-verify", 600), ("float", "-", "-", "-", 600)}


# ---------------------------------------------------------------------------------------------
# resume: only what is missing is redone
# ---------------------------------------------------------------------------------------------


class Launches:
    """Wraps bench.start_process: records every command, optionally replaces the process."""

    def __init__(self, monkeypatch, fake=None):
        self.commands: list[list[str]] = []
        real = bench.start_process

        def start(cmd, log, env):
            self.commands.append(list(cmd))
            return fake(cmd, log, env) if fake else real(cmd, log, env)

        monkeypatch.setattr(bench, "start_process", start)


def test_rerunning_a_finished_suite_launches_nothing(finished_dir, monkeypatch, capsys):
    mtimes = {n: (finished_dir / n / "summary.json").stat().st_mtime_ns for n in RUN_NAMES}
    launches = Launches(monkeypatch)
    assert bench.main([str(SMOKE), "--out", str(finished_dir), "--no-progress", "--no-plots"]) == 0
    assert launches.commands == []
    assert {n: (finished_dir / n / "summary.json").stat().st_mtime_ns for n in RUN_NAMES} == mtimes
    assert "4 finished" in capsys.readouterr().out


@pytest.mark.slow
def test_interrupted_suite_resumes_only_the_unfinished_run(smoke_dir, tmp_path, monkeypatch):
    out = tmp_path / "smoke"
    shutil.copytree(smoke_dir, out)
    (out / RRAM_S1 / "summary.json").unlink()          # as if killed: checkpoint kept
    others = RUN_NAMES - {RRAM_S1}
    mtimes = {n: (out / n / "summary.json").stat().st_mtime_ns for n in others}
    launches = Launches(monkeypatch)
    assert bench.main([str(SMOKE), "--out", str(out), "--workers", "2", "--no-progress",
                       "--no-plots"]) == 0
    (cmd,) = launches.commands
    assert cmd[:3] == [sys.executable, "-m", "rlime.train"]
    assert cmd[cmd.index("--resume") + 1] == str(out / RRAM_S1)
    assert _summary(out / RRAM_S1)["steps"] >= 600
    assert {n: (out / n / "summary.json").stat().st_mtime_ns for n in others} == mtimes
    assert (out / RRAM_S1 / "train.log").read_text().count("# rlime.bench") == 2
    assert len(_csv_rows(out)) == 2


def test_plan_decides_skip_resume_restart_and_conflict(finished_dir, tmp_path):
    suite = load_suite(SMOKE)
    entry = next(e for e in suite.entries if e.name == RRAM_S1)
    assert bench.plan(entry, finished_dir).action == "skip"
    raised = bench.plan(type(entry)(**{**entry.__dict__, "total_steps": 900}), finished_dir)
    assert raised.action == "resume"                   # a larger budget extends the run
    assert raised.argv[raised.argv.index("--total-steps") + 1] == "900"
    assert bench.plan(entry, tmp_path).action == "start"
    # died before its first checkpoint: config.toml but no checkpoint -> start again, log kept
    shutil.copytree(finished_dir / RRAM_S1, tmp_path / RRAM_S1)
    (tmp_path / RRAM_S1 / "checkpoint.pt").unlink()
    (tmp_path / RRAM_S1 / "summary.json").unlink()
    job = bench.plan(entry, tmp_path)
    assert job.action == "restart" and "--resume" not in job.argv
    bench.prepare(job)
    assert sorted(p.name for p in job.run_dir.iterdir() if p.name != ".lock") == ["train.log"]
    # a directory of another configuration is never touched
    other = parse_suite(SMOKE.read_text().replace("[32, 32]", "[16, 16]"), SMOKE)
    clash = next(e for e in other.entries if e.name == RRAM_S1)
    job = bench.plan(clash, finished_dir)
    assert job.action == "conflict" and "agent.hidden" in job.detail


def test_conflicting_run_directory_stops_the_suite_before_anything_runs(finished_dir, tmp_path,
                                                                      monkeypatch, capsys):
    suite_file = tmp_path / "smoke.toml"
    suite_file.write_text(SMOKE.read_text().replace("[32, 32]", "[16, 16]"))
    launches = Launches(monkeypatch)
    assert bench.main([str(suite_file), "--out", str(finished_dir), "--no-progress"]) == 2
    assert launches.commands == []
    err = capsys.readouterr().err
    assert "agent.hidden" in err and RRAM_S1 in err
    assert not (finished_dir / "suite.json").exists()


# ---------------------------------------------------------------------------------------------
# Ctrl-C and failures (fake training processes: no training)
# ---------------------------------------------------------------------------------------------

FAKE_TRAIN = r"""
import json, signal, sys, time
from pathlib import Path
run_dir = Path(sys.argv[1]); mode = sys.argv[2]; steps = int(sys.argv[3])
if mode == "fail":
    print("boom: the simulated run diverged"); sys.exit(3)
if mode == "ok":
    (run_dir / "summary.json").write_text(json.dumps({"steps": steps})); sys.exit(0)
def stop(signum, frame):
    (run_dir / "got-sigint").write_text("1"); sys.exit(130)
signal.signal(signal.SIGINT, stop)
(run_dir / "started").write_text("1")
time.sleep(30)
sys.exit(0)
"""


def _fake(mode_of):
    def start(cmd, log, env):
        run_dir = cmd[cmd.index("--run-dir") + 1]
        steps = cmd[cmd.index("--total-steps") + 1]
        fake = [sys.executable, "-c", FAKE_TRAIN, run_dir, mode_of(Path(run_dir).name), steps]
        return subprocess.Popen(fake, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    return start


def test_ctrl_c_is_forwarded_to_running_runs_and_no_new_ones_start(tmp_path, monkeypatch):
    out = tmp_path / "smoke"
    launches = Launches(monkeypatch, _fake(lambda name: "wait"))

    def interrupt():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(list(out.glob("*/started"))) < 2:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    handler = signal.getsignal(signal.SIGINT)
    threading.Thread(target=interrupt, daemon=True).start()
    t0 = time.monotonic()
    rc = bench.main([str(SMOKE), "--out", str(out), "--workers", "2", "--no-progress",
                     "--no-plots"])
    assert rc == 130
    assert time.monotonic() - t0 < 25          # children stopped, not waited out (30 s)
    assert len(launches.commands) == 2          # the two queued runs never started
    assert len(list(out.glob("*/got-sigint"))) == 2
    assert signal.getsignal(signal.SIGINT) is handler           # the bench restored it


def test_a_failed_run_is_reported_and_does_not_stop_the_others(tmp_path, monkeypatch, capsys):
    out = tmp_path / "smoke"
    failing = "CartPole-float-s2"
    launches = Launches(monkeypatch, _fake(lambda name: "fail" if name == failing else "ok"))
    rc = bench.main([str(SMOKE), "--out", str(out), "--workers", "2", "--no-progress",
                     "--no-plots"])
    assert rc == 1
    assert len(launches.commands) == 4
    captured = capsys.readouterr()
    report = captured.out + captured.err
    assert f"run {failing} failed" in report and "boom: the simulated run diverged" in report
    assert "exit status 3 (numerical failure)" in report
    for name in RUN_NAMES - {failing}:
        assert _summary(out / name)["steps"] == 600


def test_ray_executor_without_ray_installed_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)   # `import ray` raises ImportError
    out = tmp_path / "out"
    assert bench.main([str(SMOKE), "--out", str(out), "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'rlime[ray]'" in err and "--executor local" in err
    assert not out.exists()


@pytest.fixture(scope="module")
def ray_head():
    """A real Ray head on 127.0.0.1 with two worker CPUs (RAY_ADDRESS for the bench); stopped after."""
    ray = pytest.importorskip("ray", reason="--executor ray needs the 'ray' extra: "
                                            "pip install 'rlime[ray]'")
    import socket
    import tempfile

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")     # short: Ray's socket paths
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "RAY_USAGE_STATS_ENABLED": "0"}
    ray_cli = [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]
    subprocess.run([*ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                    "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}"],
                   env=env, check=True, capture_output=True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        ray.shutdown()
        subprocess.run([*ray_cli, "stop", "--force"], env=env, capture_output=True)
        shutil.rmtree(temp, ignore_errors=True)


def _results(out: Path) -> list[dict]:
    """The leaderboard's rows without what depends on the machine's speed."""
    rows = json.loads((out / "leaderboard.json").read_text())["tables"][0]["rows"]
    return [{k: v for k, v in r.items() if k not in ("wall_s", "sps")} for r in rows]


@pytest.mark.slow
def test_ray_executor_on_a_local_cluster_gives_the_local_leaderboard(ray_head, smoke_dir,
                                                                      tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", ray_head)
    out = tmp_path / "smoke"
    assert bench.main(["smoke", "--out", str(out), "--executor", "ray", "--no-progress",
                       "--no-plots"]) == 0
    assert _results(out) == _results(smoke_dir)
    for name in RUN_NAMES:
        assert "# rlime.bench (ray worker pid " in (out / name / "train.log").read_text()


@pytest.mark.slow
def test_ray_worker_killed_mid_run_is_retried_from_the_run_directory(ray_head, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", ray_head)
    suite = tmp_path / "long.toml"      # the smoke suite's rram seed 1, long enough to kill
    suite.write_text(SMOKE.read_text().replace('"float"]', ']').replace("[1, 2]", "[1]")
                     .replace("total_steps = 600", "total_steps = 6000"))
    out = tmp_path / "out"
    run_dir = out / RRAM_S1
    killed = []

    def kill_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            log = run_dir / "train.log"
            if (run_dir / "checkpoint.pt").exists() and log.exists():
                pid = int(log.read_text().split("ray worker pid ")[1].split(")")[0])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.02)

    threading.Thread(target=kill_worker, daemon=True).start()
    assert bench.main([str(suite), "--out", str(out), "--executor", "ray", "--no-progress",
                       "--no-plots"]) == 0
    assert killed, "the run finished before its worker could be killed"
    headers = [line for line in (run_dir / "train.log").read_text().splitlines()
               if line.startswith("# rlime.bench")]
    assert len(headers) == 2 and ": start " in headers[0] and ": resume from step" in headers[1]
    assert f"pid {killed[0]})" in headers[0] and f"pid {killed[0]})" not in headers[1]
    assert _summary(run_dir)["steps"] == 6000


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert bench.main([str(SMOKE), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert text.count("start    CartPole") == 4 and "python -m rlime.train --env CartPole" in text
    assert not out.exists()


def test_dry_run_estimates_time_memory_and_disk_per_entry_and_in_total(tmp_path, capsys):
    assert bench.main(["smoke", "--out", str(tmp_path / "out"), "--dry-run", "--workers", "2"]) == 0
    text = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in text.splitlines()
            if line.startswith("  CartPole-")}
    assert set(rows) == RUN_NAMES
    rram = estimate.estimate_job(bench.plan(load_suite("smoke").entries[0], tmp_path))
    assert rram.steps == 600 and rram.seconds == pytest.approx(600 / 335.0 + 5.0)
    assert rows[RRAM_S1][1:4] == ["600", "335", format_duration(rram.seconds).split()[0]]
    assert "total: 4 of 4 runs to do, 2,400 steps" in text and "with 2 workers" in text
    assert "assumes: steps/s measured" in text and "* agent.hidden" in text
    assert not (tmp_path / "out").exists()


def test_estimate_scales_the_rram_rate_by_the_tuning_scheme():
    suite = parse_suite('[matrix]\nenvs = ["CartPole"]\nschemes = ["write-verify", "gradual"]\n')
    rates = {e.scheme: estimate.estimate_job(bench.Job(e, Path("unused"), "start")).sps
             for e in suite.entries}
    assert rates["write-verify"] == 335.0
    assert rates["gradual"] == pytest.approx(68.0)   # CartPole's measured gradual rate
    assert rates["gradual"] < rates["write-verify"]


@pytest.mark.parametrize("env, key, sps", [("Breakout-MinAtar", "minatar", 51.0),
                                           ("Acrobot", "Acrobot-v1", 49.0)])
def test_a_section_measured_with_gradual_uses_its_own_gradual_rate(env, key, sps):
    suite = parse_suite(f'[matrix]\nenvs = ["{env}"]\nschemes = ["gradual"]\n')
    (entry,) = suite.entries
    est = estimate.estimate_job(bench.Job(entry, Path("unused"), "start"))
    assert est.rate_key == key and est.sps == pytest.approx(sps)   # not CartPole's slow-down


@pytest.mark.slow
def test_estimate_counts_what_is_left_and_matches_real_disk_use(smoke_dir):
    for entry in load_suite(SMOKE).entries:
        done = estimate.estimate_job(bench.plan(entry, smoke_dir))
        assert done.steps == 0 and done.seconds == 0.0
        on_disk = sum(f.stat().st_size for f in (smoke_dir / entry.name).iterdir())
        assert 0.5 < done.disk_bytes / on_disk < 2.0, (entry.name, done.disk_bytes, on_disk)
        half = bench.Job(entry, smoke_dir / entry.name, "resume", done_steps=450)
        assert estimate.estimate_job(half).steps == 150


def test_estimate_of_an_atari_run_holds_its_replay_buffer():
    from agents.replay import ReplayBuffer

    (entry,) = parse_suite('[matrix]\nenvs = ["Pong"]\n').entries
    est = estimate.estimate_job(bench.Job(entry, Path("unused"), "start"))
    replay = ReplayBuffer.estimate_bytes(1_000_000, (4, 84, 84), np.uint8, 4, 4)
    assert replay > 6e9 and est.memory_bytes > replay and est.disk_bytes > replay
    assert est.rate_key == "atari" and est.differs == ()
    assert est.seconds > 10_000_000 / 52.0


def test_makespan_schedules_longest_first_on_the_workers():
    assert estimate.makespan([4.0, 1.0, 1.0, 1.0, 1.0], 2) == 4.0
    assert estimate.makespan([3.0, 3.0], 1) == 6.0 and estimate.makespan([], 4) == 0.0


# ---------------------------------------------------------------------------------------------
# suites: expansion and validation
# ---------------------------------------------------------------------------------------------


def test_shipped_suites_are_valid():
    sizes = {name: len(load_suite(ROOT / "experiments" / f"{name}.toml").entries)
             for name in ("smoke", "classic", "atari", "paper")}
    assert sizes == {"smoke": 4, "classic": 20, "atari": 42, "paper": 18}
    atari = load_suite(ROOT / "experiments" / "atari.toml")
    assert {e.env_id for e in atari.entries} >= {"ALE/Pong-v5", "ALE/Breakout-v5",
                                                 "ALE/SpaceInvaders-v5", "ALE/Seaquest-v5"}
    assert {e.total_steps for e in atari.entries} == {10_000_000}
    classic = load_suite(ROOT / "experiments" / "classic.toml")
    assert {e.env_id: e.total_steps for e in classic.entries} == {
        "Acrobot-v1": 100_000, "MountainCar-v0": 120_000}
    paper = load_suite(ROOT / "experiments" / "paper.toml")
    assert {(e.env_id, e.backend, e.mapping) for e in paper.entries} == {
        (env, b, m) for env in ("CartPole-v1", "ALE/Pong-v5")
        for b, m in (("rram", "time"), ("rram", "separate"), ("float", "-"))}


def test_float_backend_collapses_hardware_only_differences(tmp_path):
    suite = parse_suite("""
        [matrix]
        envs = ["CartPole"]
        backends = ["rram", "float"]
        presets = ["default", "optimistic"]
        mappings = ["time", "separate", "shared"]
        schemes = ["write-verify", "gradual"]
        seeds = [1, 2]
        [budget]
        total_steps = 100
        [env.CartPole]
        total_steps = 200
        settings = { "agent.hidden" = [8] }
    """, tmp_path / "x.toml")
    rram = [e for e in suite.entries if e.backend == "rram"]
    floats = [e for e in suite.entries if e.backend == "float"]
    assert len(rram) == 2 * 3 * 2 * 2
    assert sorted(e.name for e in floats) == ["CartPole-float-s1", "CartPole-float-s2",
                                              "CartPole-float-shared-s1", "CartPole-float-shared-s2"]
    assert {(e.preset, e.scheme) for e in floats} == {("-", "-")}
    shared = next(e for e in floats if e.mapping == "shared")
    assert shared.argv[shared.argv.index("--mapping") + 1] == "shared"
    assert "--preset" not in shared.argv and "--scheme" not in shared.argv
    assert {e.total_steps for e in suite.entries} == {200}        # the env override wins
    e = next(e for e in rram if e.name == "CartPole-rram-optimistic-separate-gradual-s2")
    assert e.argv[e.argv.index("--scheme") + 1] == "gradual"
    assert "agent.hidden=[8]" in e.argv
    assert len({e.name for e in suite.entries}) == len(suite.entries)


def test_schemes_default_to_each_presets_own():
    suite = parse_suite('[matrix]\nenvs = ["CartPole"]\npresets = ["default", "ideal"]\n')
    assert {(e.preset, e.scheme) for e in suite.entries} == {("default", "gradual"),
                                                             ("ideal", "open-loop")}


BAD_SUITES = [
    ("syntax", 'name = "x"\n[matrix\nenvs = ["CartPole"]\n', "not valid TOML"),
    ("unknown-top", '[matrix]\nenvs = ["CartPole"]\n[budgets]\n', "budgets"),
    ("unknown-matrix", '[matrix]\nenvs = ["CartPole"]\nseed = [1]\n', "matrix.seed"),
    ("type", '[matrix]\nenvs = ["CartPole"]\nseeds = "1, 2"\n', "matrix.seeds"),
    ("item-type", '[matrix]\nenvs = ["CartPole"]\nseeds = [1, "2"]\n', "matrix.seeds"),
    ("env", '[matrix]\nenvs = ["CartPol"]\n', "matrix.envs"),
    ("backend", '[matrix]\nenvs = ["CartPole"]\nbackends = ["gpu"]\n', "matrix.backends"),
    ("preset", '[matrix]\nenvs = ["CartPole"]\npresets = ["fancy"]\n', "matrix.presets"),
    ("mapping", '[matrix]\nenvs = ["CartPole"]\nmappings = ["tme"]\n', "matrix.mappings"),
    ("scheme", '[matrix]\nenvs = ["CartPole"]\nschemes = ["fast"]\n', "matrix.schemes"),
    ("empty", '[matrix]\nenvs = ["CartPole"]\nseeds = []\n', "matrix.seeds"),
    ("no-envs", '[matrix]\nseeds = [1]\n', "matrix.envs"),
    ("no-matrix", 'name = "x"\n', "matrix"),
    ("budget-zero", '[matrix]\nenvs = ["CartPole"]\n[budget]\ntotal_steps = 0\n',
     "budget.total_steps"),
    ("budget-float", '[matrix]\nenvs = ["CartPole"]\n[budget]\ntotal_steps = 1.5e3\n',
     "budget.total_steps"),
    ("env-override", '[matrix]\nenvs = ["CartPole"]\n[env.Pong]\ntotal_steps = 5\n', "env.Pong"),
    ("env-key", '[matrix]\nenvs = ["CartPole"]\n[env.CartPole]\nsteps = 5\n', "env.CartPole.steps"),
    ("owned-setting", '[matrix]\nenvs = ["CartPole"]\n[settings]\n"tuning.scheme" = "gradual"\n',
     'settings."tuning.scheme"'),
    ("bad-setting", '[matrix]\nenvs = ["CartPole"]\n[settings]\n"agent.gamma" = 1.5\n',
     'settings."agent.gamma"'),
    ("unknown-setting", '[matrix]\nenvs = ["CartPole"]\n[settings]\n"agent.gama" = 0.9\n',
     'settings."agent.gama"'),
]


@pytest.mark.parametrize("name,text,key", BAD_SUITES, ids=[b[0] for b in BAD_SUITES])
def test_bad_suites_name_the_file_the_key_and_what_is_allowed(tmp_path, name, text, key):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert key in message
    assert "allowed" in message.lower() or "line" in message   # syntax errors give the line


@pytest.mark.parametrize("name,text,key", BAD_SUITES[:4], ids=[b[0] for b in BAD_SUITES[:4]])
def test_cli_exits_2_with_a_one_paragraph_message(tmp_path, capsys, name, text, key):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    assert bench.main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(path) in err and key in err
    assert err.strip().count("\n") == 0
    assert not (tmp_path / "out").exists()


def test_bundled_suite_by_name_after_a_non_editable_install_from_any_directory(tmp_path):
    """`pip install .` (a wheel: suites as package data), then `rlime.bench smoke` elsewhere."""
    src = tmp_path / "src"
    src.mkdir()
    for item in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / item, src / item)
    for item in ("rlime", "agents", "envs", "experiments"):
        shutil.copytree(ROOT / item, src / item, ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(src)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-m", "rlime.bench", "smoke", "--dry-run", "--out",
                           "out"], cwd=elsewhere, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(site)})
    assert done.returncode == 0, done.stderr
    assert f"suite smoke ({site / 'experiments' / 'smoke.toml'}): 4 runs" in done.stdout
    assert load_suite("smoke.toml").entries == load_suite(SMOKE).entries


def test_unknown_suite_name_lists_the_bundled_ones(capsys):
    assert bench.main(["smok", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "smok" in err
    assert "atari, cartpole_learning, classic, mappings, minatar, mountaincar, nonideality, nonideality_levels, paper, paper_sl, smoke" in err


def test_missing_suite_file_is_reported(tmp_path, capsys):
    assert bench.main([str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# aggregation on hand-made summaries (no training)
# ---------------------------------------------------------------------------------------------

CLASSIC = {"env_id": "CartPole-v1", "family": "classic", "frameskip": 1,
           "repeat_action_probability": 0.0}


def _run(config, seed, score, *, energy=None, writes=0, env_id="CartPole-v1", protocol=None,
         gpu=None, rram=None, budget=1000, steps=1000):
    backend, preset, mapping, scheme = config
    summary = {"env_id": env_id, "steps": steps, "final_score": score, "eval_score": score + 1,
               "episodes": 10, "writes_total": writes, "writes_per_episode": writes / 10,
               "target_sync_pulses_total": writes // 4, "target_sync_pulses_per_episode": writes / 40,
               "replay_write_bits_total": writes * 1000, "replay_write_bits_per_episode": writes * 100,
               "energy_j_total": (energy or 0.0) * 10, "energy_j_per_episode": energy,
               "wall_s": 2.0, "sps": 500.0}
    if gpu is not None:
        summary["baselines"] = {"gpu_j": gpu, "asic_j": gpu / 10, "rram_j": rram,
                                "per_episode": {"gpu_j": gpu / 10, "asic_j": gpu / 100}}
    return RunResult(name=f"{config}-{seed}", env_id=env_id, env=env_id, backend=backend,
                     preset=preset, mapping=mapping, scheme=scheme, seed=seed, budget=budget,
                     summary=summary, protocol=dict(protocol or CLASSIC))


A = ("rram", "default", "time", "write-verify")
B = ("rram", "default", "separate", "write-verify")
C = ("rram", "pessimistic", "time", "write-verify")
F = ("float", "-", "-", "-")


def test_mean_std_iqm_and_interval_on_known_values():
    row = aggregate_row([_run(A, s, x, energy=1e-6) for s, x in enumerate([10, 20, 30], 1)])
    assert row["score_mean"] == pytest.approx(20.0)
    assert row["score_std"] == pytest.approx(10.0)        # sample std, ddof=1
    assert row["iqm"] == pytest.approx(20.0)              # n < 4: nothing trimmed
    assert row["seeds"] == 3 and row["seed_list"] == [1, 2, 3]
    assert row["eval_mean"] == pytest.approx(21.0)
    assert 10 <= row["iqm_ci_low"] < 20 < row["iqm_ci_high"] <= 30
    row = aggregate_row([_run(A, s, float(s)) for s in range(1, 9)], n_resamples=2000)
    assert row["iqm"] == pytest.approx(4.5)               # mean of 3, 4, 5, 6
    assert row["score_mean"] == pytest.approx(4.5)
    assert (row["iqm_ci_low"], row["iqm_ci_high"]) == pytest.approx(
        stratified_bootstrap_ci({"CartPole-v1": list(map(float, range(1, 9)))}, n_resamples=2000,
                                seed=0))


def test_costs_are_seed_means_and_ratios_pooled():
    row = aggregate_row([_run(A, 1, 5.0, energy=1e-6, writes=100, gpu=2e-3, rram=1e-5),
                         _run(A, 2, 7.0, energy=3e-6, writes=300, gpu=4e-3, rram=3e-5)])
    assert row["writes_total"] == pytest.approx(200)
    assert row["writes_per_episode"] == pytest.approx(20)
    # the split columns beside writes, each a seed mean of its own summary key
    assert row["target_sync_pulses_total"] == pytest.approx(50)
    assert row["target_sync_pulses_per_episode"] == pytest.approx(5)
    assert row["replay_write_bits_total"] == pytest.approx(200_000)
    assert row["replay_write_bits_per_episode"] == pytest.approx(20_000)
    assert COLUMNS.index("writes_per_episode") + 1 == COLUMNS.index("target_sync_pulses_total")
    assert row["energy_j_per_episode"] == pytest.approx(2e-6)
    assert row["energy_j_total"] == pytest.approx(2e-5)
    assert row["gpu_j"] == pytest.approx(3e-3) and row["asic_j"] == pytest.approx(3e-4)
    assert row["gpu_over_rram"] == pytest.approx(3e-3 / 2e-5)
    assert row["asic_over_rram"] == pytest.approx(3e-4 / 2e-5)
    assert row["gpu_j_per_episode"] == pytest.approx(3e-4)


def test_ranks_energy_ranks_and_pareto_front():
    runs = ([_run(A, s, 100.0 + s, energy=1e-6) for s in (1, 2)]       # best score, most energy
            + [_run(B, s, 50.0 + s, energy=1e-7) for s in (1, 2)]      # least energy
            + [_run(C, s, 40.0 + s, energy=5e-7) for s in (1, 2)]      # beaten by B on both
            + [_run(F, s, 60.0 + s) for s in (1, 2)])                  # no device energy
    (table,) = build_tables(runs, n_resamples=500)
    rows = {r["config"]: r for r in table.rows}
    a, b = rows["rram default/time/write-verify"], rows["rram default/separate/write-verify"]
    c, f = rows["rram pessimistic/time/write-verify"], rows["float"]
    assert [r["config"] for r in table.rows] == [a["config"], f["config"], b["config"], c["config"]]
    assert (a["score_rank"], f["score_rank"], b["score_rank"], c["score_rank"]) == (1, 2, 3, 4)
    assert (b["energy_rank"], c["energy_rank"], a["energy_rank"]) == (1, 2, 3)
    assert f["energy_rank"] is None and f["energy_j_per_episode"] is None
    assert (a["pareto"], b["pareto"], c["pareto"], f["pareto"]) == (True, True, False, False)
    md = render_markdown([table])
    assert md.count("★") == 2


def test_protocols_and_budgets_are_never_mixed_in_one_table():
    atari = {"env_id": "ALE/Pong-v5", "family": "atari", "frameskip": 4,
             "repeat_action_probability": 0.25, "terminal_on_life_loss": False}
    lifeloss = {**atari, "terminal_on_life_loss": True}
    runs = [_run(A, 1, 14.6, env_id="ALE/Pong-v5", protocol=atari),
            _run(A, 2, -20.7, env_id="ALE/Pong-v5", protocol=atari),
            _run(A, 1, 0.0, env_id="ALE/Pong-v5", protocol=lifeloss),
            _run(A, 1, 10.0, budget=500, steps=500),
            _run(A, 1, 20.0),
            _run(A, 2, 30.0, steps=999)]                       # unfinished: left out
    tables = build_tables(runs, n_resamples=200)
    assert len(tables) == 4
    assert sum(len(t.rows) for t in tables) == 4
    pong = [t for t in tables if t.env_id == "ALE/Pong-v5"]
    assert len(pong) == 2 and all("[protocol " in t.key for t in pong)
    sticky = next(t for t in pong if t.protocol["terminal_on_life_loss"] is False)
    row = sticky.rows[0]
    assert row["hns_mean"] == pytest.approx(0.5)               # (1 + 0) / 2
    assert row["seeds"] == 2
    cartpole = [t for t in tables if t.env_id == "CartPole-v1"]
    assert {t.budget for t in cartpole} == {500, 1000}
    assert all(r["hns_mean"] is None for t in cartpole for r in t.rows)
    assert {r["seeds"] for t in cartpole for r in t.rows} == {1}


def test_atari_aggregate_pools_games_on_human_normalised_scores():
    proto = {"family": "atari", "frameskip": 4, "repeat_action_probability": 0.25}
    runs = ([_run(A, s, x, env_id="ALE/Pong-v5", protocol={**proto, "env_id": "ALE/Pong-v5",
                                                           "game": "pong"})
             for s, x in ((1, 14.6), (2, -20.7))]
            + [_run(A, s, x, env_id="ALE/Breakout-v5",
                    protocol={**proto, "env_id": "ALE/Breakout-v5", "game": "breakout"})
               for s, x in ((1, 30.5), (2, 1.7))])
    (agg,) = atari_aggregate(build_tables(runs, n_resamples=200), n_resamples=200)
    assert agg["games"] == 2 and agg["runs"] == 4
    assert agg["hns_mean"] == pytest.approx(0.5) and agg["hns_iqm"] == pytest.approx(0.5)
    assert 0.0 <= agg["hns_ci_low"] <= 0.5 <= agg["hns_ci_high"] <= 1.0


def test_smoothing_is_a_rolling_episode_mean_on_the_step_grid():
    steps = np.array([10.0, 20.0, 30.0, 40.0])
    values = np.array([1.0, 3.0, 5.0, 7.0])
    out = smooth_on_grid(steps, values, np.array([0.0, 10.0, 25.0, 40.0, 100.0]), window=2)
    assert math.isnan(out[0])
    assert out[1:] == pytest.approx([1.0, 2.0, 6.0, 6.0])


def test_markdown_shows_every_return_with_one_decimal_and_wall_time_in_units():
    runs = [_run(A, 1, 10.0, energy=1e-6, writes=40), _run(A, 2, 14.5, energy=1e-6, writes=40)]
    for run, wall in zip(runs, (700.0, 740.0)):
        run.summary.update(wall_s=wall, best_eval_score=run.summary["final_score"],
                           energy_per_episode_by_category={"tuning": 1e-7})
    (table,) = build_tables(runs, n_resamples=200)
    md = render_markdown([table])
    row = next(line for line in md.splitlines() if line.startswith("| 1 | rram"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "10.0 (s1), 14.5 (s2)"
    assert cells[4] == "12.2 ± 3.2"
    assert cells[5].startswith("12.2 [10.0, ")
    assert cells[6] == "13.2" and cells[7] == "10.0, 14.5"     # eval mean, best eval per seed
    assert cells[-2] == "12 min"
    assert "| rram default/time/write-verify | 12.2 |" in md    # the per-category table
    header = next(line for line in md.splitlines() if line.startswith("| rank"))
    names = [c.strip() for c in header.strip("|").split("|")]
    i = names.index("writes/ep")
    assert names[i + 1:i + 3] == ["sync pulses/ep", "replay bits/ep"]
    assert cells[i - 1:i + 3] == ["40", "4", "1", "4000"]  # writes total, /ep, sync, replay bits


@pytest.mark.parametrize("seconds,text", [(0.4, "0.4 s"), (4.25, "4.2 s"), (42.0, "42 s"),
                                          (90.0, "1.5 min"), (720.0, "12 min"),
                                          (3.1 * 3600, "3.1 h"), (69 * 86400, "69 d"),
                                          (None, "-")])
def test_wall_time_is_formatted_for_people(seconds, text):
    assert format_duration(seconds) == text


def test_pareto_plot_has_several_labelled_energy_ticks_and_explains_its_band(tmp_path):
    import matplotlib.pyplot as plt

    runs = ([_run(A, s, 100.0 + s, energy=2e-5) for s in (1, 2)]
            + [_run(B, s, 50.0 + s, energy=1.5e-5) for s in (1, 2)]   # within one decade
            + [_run(F, s, 60.0 + s) for s in (1, 2)])
    (table,) = build_tables(runs, n_resamples=200)
    fig = pareto_figure(plt, table, {r["config"]: "C0" for r in table.rows})
    fig.canvas.draw()
    (ax,) = fig.axes
    low, high = ax.get_xlim()
    ticks = [label.get_text() for label in ax.get_xticklabels()
             if label.get_text() and low <= label.get_position()[0] <= high]
    assert len(ticks) >= 3, ticks
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "float: 95 % CI of that IQM" in legend
    plt.close(fig)
    (pareto,) = plot_tables([table], tmp_path)   # no episodes.jsonl: no curves, the PNG only
    assert pareto.read_bytes().startswith(PNG_MAGIC)
