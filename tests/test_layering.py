"""The dependency rule: harness/bench -> agents/envs -> drl -> cost -> hw -> common, and the
supervised path (rlime.sl) beside the harness: it uses hw, cost, common and the harness's
shared pieces, and loads no RL code.

Each layer is imported alone in a fresh interpreter (every module of it), and the modules it
pulled in must all belong to it or to the layers below; the leaderboard, statistics and plots
must load without torch."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["rlime.common", "rlime.hw", "rlime.cost", "rlime.drl", "agents", "envs"]
# what a layer may never load: every layer above it, and the RL / logging stack
ABOVE = {
    "rlime.common": ["rlime.hw", "rlime.cost", "rlime.drl", "agents", "envs"],
    "rlime.hw": ["rlime.cost", "rlime.drl", "agents", "envs"],
    "rlime.cost": ["rlime.drl", "agents", "envs"],
    "rlime.drl": ["agents", "envs"],
    "agents": ["envs"],
    "envs": ["agents"],
}
ALWAYS_FORBIDDEN = ["rlime.harness", "rlime.bench", "rlime.sl", "experiments", "tensorboard",
                    "torch.utils.tensorboard"]
RL_STACK = ["gymnasium", "ale_py"]


def _modules_of(package: str) -> list[str]:
    path = ROOT.joinpath(*package.split("."))
    return [package] + [f"{package}.{m.name}" for m in pkgutil.walk_packages([str(path)])]


def _loaded_after_importing(modules: list[str]) -> list[str]:
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def _offenders(loaded: list[str], forbidden: list[str]) -> list[str]:
    return [m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize("layer", ORDER)
def test_layer_imports_nothing_above_it(layer):
    forbidden = ABOVE[layer] + ALWAYS_FORBIDDEN
    if layer != "envs":  # only the environment factory may load the RL environment stack
        forbidden = forbidden + RL_STACK
    loaded = _loaded_after_importing(_modules_of(layer))
    assert not _offenders(loaded, forbidden), f"{layer} loaded {_offenders(loaded, forbidden)}"


def test_leaderboard_statistics_and_pricing_load_without_torch():
    loaded = _loaded_after_importing(["rlime", "rlime.bench.leaderboard", "rlime.bench.stats",
                                      "rlime.cost.energy", "rlime.drl.phases"])
    assert not _offenders(loaded, ["torch", "agents", "rlime.harness", "rlime.bench.suite"])


def test_supervised_learning_loads_no_rl_code():
    """rlime.sl sits at the harness's level but trains no agent: none of the DQN stack (the
    agents, the environments, the DRL mappings, the DQN harness, gymnasium) comes with it."""
    loaded = _loaded_after_importing(_modules_of("rlime.sl"))
    rl = ["agents", "envs", "rlime.drl", "rlime.bench", "rlime.harness.train",
          "rlime.harness.run_config", "rlime.harness.cli", "rlime.harness.summary"] + RL_STACK
    assert not _offenders(loaded, rl), f"rlime.sl loaded {_offenders(loaded, rl)}"


def test_the_check_can_fail():
    """The harness loads the RL stack, so the same check on it reports offenders."""
    loaded = _loaded_after_importing(["rlime.harness.train"])
    assert _offenders(loaded, RL_STACK + ["tensorboard"])
