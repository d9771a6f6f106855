"""Speed work trades no accuracy: a seeded float-backend CartPole run returns exactly the
episode returns recorded before the throughput changes (tests/data/float_cartpole_golden.json).

Float arithmetic differs between CPU instruction sets and torch versions, so the recording
names the platform it was made on and the check runs only there. To re-record (only when a
change is meant to alter float learning):

    RLIME_RECORD_GOLDEN=1 python -m pytest tests/test_float_regression.py
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from rlime.harness.cli import main

GOLDEN = Path(__file__).parent / "data" / "float_cartpole_golden.json"
# every agent setting pinned, so that a change of CartPole's defaults does not move the check
AGENT = {"hidden": "[64, 64]", "update_rule": '"adam"', "learning_rate": "2.3e-3",
         "batch_size": "64", "buffer_size": "100000", "learning_starts": "1000", "gamma": "0.99",
         "target_period": "10", "train_freq": "256", "gradient_steps": "128",
         "eps_fraction": "0.16", "eps_end": "0.04", "double_dqn": "false",
         "reward_scale": "1.0"}
ARGS = ["--env", "CartPole", "--backend", "float", "--no-progress", "--seed", "7",
        "--total-steps", "6000", "--eval-episodes", "0"]
ARGS += [arg for key, value in AGENT.items() for arg in ("--set", f"agent.{key}={value}")]


def _platform() -> dict:
    return {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability()}


def _returns(run_dir: Path) -> list[float]:
    lines = (run_dir / "episodes.jsonl").read_text().splitlines()
    return [json.loads(line)["return"] for line in lines]


def _single_thread_run(run_dir: Path) -> list[float]:
    threads = torch.get_num_threads()
    try:
        assert main(ARGS + ["--threads", "1", "--run-dir", str(run_dir)]) == 0
    finally:
        torch.set_num_threads(threads)
    return _returns(run_dir)


@pytest.mark.slow  # 6000 steps; the float backend's fast coverage is in test_train.py
def test_float_cartpole_returns_match_the_recording(tmp_path):
    if os.environ.get("RLIME_RECORD_GOLDEN"):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent).stdout.strip()
        record = {"args": ARGS, "platform": _platform(), "commit": commit,
                  "returns": _single_thread_run(tmp_path / "run")}
        GOLDEN.write_text(json.dumps(record, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())
    if golden["platform"] != _platform():
        pytest.skip(f"recorded on {golden['platform']}, this is {_platform()}; float results "
                    f"differ across platforms (re-record with RLIME_RECORD_GOLDEN=1)")
    assert golden["args"] == ARGS
    returns = _single_thread_run(tmp_path / "check")
    assert len(returns) > 100 and max(returns) > 100  # the recording shows learning
    assert returns == golden["returns"]
