"""Reliability: a run killed with SIGKILL resumes without lost or duplicated episodes; bad input
is refused before anything is damaged; device faults are survived and reported; numerical
failure stops the run and keeps the last good checkpoint."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rlime.harness.cli import main

FAST = ["--env", "CartPole", "--no-progress", "--set", "agent.hidden=[32, 32]",
        "--set", "agent.learning_starts=200", "--set", "agent.train_freq=50",
        "--set", "agent.gradient_steps=4", "--set", "agent.target_period=100",
        "--eval-episodes", "0"]


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _pulses(ledger: dict) -> int:
    return sum(row.get("set_pulses", 0) + row.get("reset_pulses", 0)
               + row.get("rram_memory_write_bits", 0) for row in ledger.values())


def _episode_writes(e: dict) -> int:
    """Everything `_pulses` counts, from an episodes.jsonl record's split write fields."""
    return e["writes"] + e["target_sync_pulses"] + e["replay_write_bits"]


@pytest.mark.slow  # 3000 steps; the fast SIGKILL case is the one before the first checkpoint
def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path):
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rlime.train", *FAST, "--total-steps", "3000",
           "--checkpoint-every", "400", "--run-dir", str(run_dir)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    # wait for a checkpoint beyond the first and a few episodes after it, then kill hard
    while time.monotonic() < deadline:
        summary = run_dir / "summary.json"
        if summary.exists() and json.loads(summary.read_text())["steps"] >= 800:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    written_before = len(_lines(run_dir / "episodes.jsonl"))
    assert main(["--resume", str(run_dir), "--no-progress"]) == 0
    episodes = _lines(run_dir / "episodes.jsonl")
    assert written_before > 0
    assert [e["episode"] for e in episodes] == list(range(len(episodes)))  # none lost or twice
    steps = [e["step"] for e in episodes]
    assert steps == sorted(steps) and steps[-1] <= 3000
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 3000 and summary["episodes"] == len(episodes)
    parts = summary["ledger"]
    assert _pulses(parts["total"]) == (
        _pulses(parts["setup"]) + sum(_episode_writes(e) for e in episodes) + _pulses(parts["eval"])
        + _pulses(parts["abandoned"]) + _pulses(parts["in_progress"]))


def test_a_run_killed_before_its_first_periodic_checkpoint_resumes_from_step_0(tmp_path):
    run_dir, straight = tmp_path / "early", tmp_path / "straight"
    args = [*FAST, "--total-steps", "1000", "--checkpoint-every", "100000"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "rlime.train", *args, "--run-dir", str(run_dir)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_lines(run_dir / "episodes.jsonl")) < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and _lines(run_dir / "episodes.jsonl")
    assert main(["--resume", str(run_dir), "--no-progress"]) == 0
    assert main([*args, "--threads", "1", "--run-dir", str(straight)]) == 0
    # the step-0 checkpoint holds the envs and random streams: the resumed run is the straight one
    assert _lines(run_dir / "episodes.jsonl") == _lines(straight / "episodes.jsonl")
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 1000


def test_a_run_without_a_checkpoint_starts_over_and_its_partial_files_are_set_aside(
        finished_run, capsys):
    # as a directory left by a run killed before the step-0 checkpoint (or by an older rlime)
    (finished_run / "checkpoint.pt").unlink()
    before = _files(finished_run)
    assert main(["--resume", str(finished_run), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "starting it over from step 0" in err and "partial-1" in err
    assert _files(finished_run / "partial-1") == {k: v for k, v in before.items()
                                                  if k != "config.toml"}
    for name in ("episodes.jsonl", "config.toml"):  # same seed: the same run again
        assert (finished_run / name).read_bytes() == before[name]
    assert json.loads((finished_run / "summary.json").read_text())["steps"] == 300


@pytest.mark.parametrize("args,needle", [
    (["--device", "tpu"], "run.device"),
    pytest.param(["--device", "cuda"], "run.device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")),
    (["--threads", "-1"], "run.threads"),
    (["--set", "agent.learning_rate=abc"], "agent.learning_rate"),
    (["--set", "device.levels=1"], "device.levels"),
    (["--set", "device.c2c_sigma=-0.1"], "device.c2c_sigma"),
    (["--set", "agent.batch_size=0"], "agent.batch_size"),
    (["--set", "device.no_such_thing=3"], "no_such_thing"),
    (["--set", "tuning.scheme=psychic"], "tuning.scheme"),
    (["--total-steps", "0"], "run.total_steps"),
    (["--set", "nodot=3"], "section.key=value"),
])
def test_invalid_settings_are_refused_before_anything_is_written(tmp_path, capsys, args, needle):
    run_dir = tmp_path / "bad"
    assert main(FAST + args + ["--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert needle in err and ("allowed" in err or "form" in err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_an_env_dqn_cannot_learn_is_refused_before_a_directory_is_made(tmp_path, capsys):
    run_dir = tmp_path / "pendulum"
    assert main(FAST + ["--env", "Pendulum-v1", "--run-dir", str(run_dir)]) == 2
    assert "discrete" in capsys.readouterr().err
    assert not run_dir.exists()


@pytest.fixture
def finished_run(tmp_path):
    run_dir = tmp_path / "done"
    assert main(FAST + ["--total-steps", "300", "--checkpoint-every", "300",
                        "--run-dir", str(run_dir)]) == 0
    return run_dir


def _files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != ".lock"}


def test_corrupted_checkpoint_is_refused_and_nothing_is_damaged(finished_run, capsys):
    (finished_run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    before = _files(finished_run)
    assert main(["--resume", str(finished_run), "--total-steps", "600", "--no-progress"]) == 2
    assert "corrupted" in capsys.readouterr().err
    assert _files(finished_run) == before


def test_mismatched_checkpoint_is_refused(finished_run, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(FAST + ["--total-steps", "300", "--seed", "7", "--checkpoint-every", "300",
                        "--run-dir", str(other)]) == 0
    (finished_run / "checkpoint.pt").write_bytes((other / "checkpoint.pt").read_bytes())
    before = _files(finished_run)
    assert main(["--resume", str(finished_run), "--total-steps", "600", "--no-progress"]) == 2
    assert "different configuration" in capsys.readouterr().err
    assert _files(finished_run) == before


def test_resume_of_a_directory_without_a_run_is_refused(tmp_path, capsys):
    assert main(["--resume", str(tmp_path / "nothing")]) == 2
    assert "no config.toml" in capsys.readouterr().err


def test_a_run_directory_locked_by_a_live_process_is_refused(finished_run, capsys):
    before = _files(finished_run)
    with open(finished_run / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write("4242")
        handle.flush()
        assert main(["--resume", str(finished_run), "--total-steps", "600",
                     "--no-progress"]) == 2
    assert "in use by process" in capsys.readouterr().err
    assert _files(finished_run) == before


def test_a_run_with_five_percent_stuck_cells_completes_and_reports_them(tmp_path):
    run_dir = tmp_path / "faulty"
    assert main(FAST + ["--total-steps", "600", "--set", "device.stuck_at_min_fraction=0.03",
                        "--set", "device.stuck_at_max_fraction=0.02",
                        "--run-dir", str(run_dir)]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 600
    # 2 x (4*32 + 32*32 + 32*2) weights x 2 arrays (Q and target) = 4864 cells: 5 % +- 5 sigma
    cells, p = 4864, 0.05
    sigma = (p * (1 - p) / cells) ** 0.5
    assert abs(summary["dead_cell_fraction"] - p) < 5 * sigma
    episodes = _lines(run_dir / "episodes.jsonl")
    assert all(abs(e["dead_cell_fraction"] - p) < 5 * sigma for e in episodes)


def test_worn_out_cells_are_reported_as_they_die(tmp_path):
    run_dir = tmp_path / "worn"
    assert main(FAST + ["--total-steps", "800", "--set", "device.endurance_pulses=60",
                        "--run-dir", str(run_dir)]) == 0
    episodes = _lines(run_dir / "episodes.jsonl")
    dead = [e["dead_cell_fraction"] for e in episodes]
    assert dead == sorted(dead) and dead[-1] > dead[0]  # cells die over time, none revive


def test_numerical_failure_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    run_dir = tmp_path / "nan"
    args = FAST + ["--backend", "float", "--update-rule", "sgd", "--set",
                   "agent.max_grad_norm=0", "--checkpoint-every", "200", "--total-steps", "2000",
                   "--run-dir", str(run_dir), "--learning-rate", "1e35"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "TD loss" in err and "checkpoint" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 200  # the checkpoint before training started diverging


def test_envs_that_cannot_be_saved_restart_and_their_episodes_are_booked_abandoned(
        tmp_path, monkeypatch):
    import rlime.harness.train as train

    monkeypatch.setattr(train, "save_envs", lambda envs: None)  # as for ALE envs
    run_dir = tmp_path / "restarted"
    assert main(FAST + ["--total-steps", "400", "--session-steps", "210",
                        "--checkpoint-every", "1000", "--run-dir", str(run_dir)]) == 0
    assert main(["--resume", str(run_dir), "--no-progress"]) == 0
    episodes = _lines(run_dir / "episodes.jsonl")
    assert [e["episode"] for e in episodes] == list(range(len(episodes)))
    summary = json.loads((run_dir / "summary.json").read_text())
    parts = summary["ledger"]
    assert summary["steps"] == 400 and _pulses(parts["abandoned"]) > 0
    assert _pulses(parts["total"]) == (
        _pulses(parts["setup"]) + sum(_episode_writes(e) for e in episodes) + _pulses(parts["eval"])
        + _pulses(parts["abandoned"]) + _pulses(parts["in_progress"]))
