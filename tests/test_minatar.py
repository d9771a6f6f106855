"""MinAtar as an environment family: names, protocol, observations, the paper's network and
DQN settings, and a short run on both backends."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents.config import DQNConfig
from agents.qnets import build_q_network
from envs import make_vector_env, resolve_env
from rlime.harness.cli import main
from rlime.harness.run_config import resolve
from rlime.harness.train import load_envs, save_envs
from rlime.hw.optim import sram_bits_per_cell, update_rule


@pytest.mark.parametrize("name, env_id", [("Breakout-MinAtar", "MinAtar/Breakout-v1"),
                                          ("spaceinvaders-minatar", "MinAtar/SpaceInvaders-v1"),
                                          ("Freeway MinAtar", "MinAtar/Freeway-v1"),
                                          ("MinAtar/Asterix-v0", "MinAtar/Asterix-v0")])
def test_names_resolve_to_minatar_ids_and_atari_names_stay_atari(name, env_id):
    spec = resolve_env(name)
    assert (spec.env_id, spec.family, spec.observation_kind) == (env_id, "minatar", "planes")
    assert resolve_env("Breakout").env_id == "ALE/Breakout-v5"


def test_the_protocol_records_the_paper_s_settings():
    p = resolve_env("Breakout-MinAtar").protocol
    assert p["repeat_action_probability"] == 0.1 and p["difficulty_ramping"] is True
    assert p["action_set"] == "minimal" and resolve_env("MinAtar/Breakout-v0").protocol[
        "action_set"] == "full"
    assert p["reward_clipping"] == "none" and p["frame_stack"] == 1


def test_observations_are_channels_first_binary_planes_and_seeded():
    env = make_vector_env("SpaceInvaders-MinAtar", 2, seed=3)
    obs, _ = env.reset()
    assert obs.shape == (2, 6, 10, 10) and obs.dtype == np.uint8 and set(np.unique(obs)) <= {0, 1}
    again, _ = make_vector_env("SpaceInvaders-MinAtar", 2, seed=3).reset()
    assert (obs == again).all()
    actions = np.zeros(2, dtype=np.int64)
    a = [env.step(actions)[0] for _ in range(20)][-1]
    blob = save_envs(env)  # checkpoints hold the environments: a resume continues them
    assert blob is not None
    clone = load_envs(blob)
    for _ in range(30):
        assert (clone.step(actions)[0] == env.step(actions)[0]).all()
    assert a.shape == obs.shape


def test_the_minatar_network_is_the_paper_s():
    net = build_q_network((4, 10, 10), 3, "minatar_cnn")
    conv, fc, out = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (4, 16, (3, 3), (1, 1))
    assert (fc.in_features, fc.out_features, out.out_features) == (1024, 128, 3)
    q = net(torch.ones(5, 4, 10, 10, dtype=torch.uint8))
    assert q.shape == (5, 3)
    with pytest.raises(ValueError, match="10, 10"):
        build_q_network((4, 84, 84), 3, "minatar_cnn")


def test_minatar_defaults_are_the_paper_s_dqn_settings():
    agent = resolve([("run.env", "Breakout-MinAtar")]).agent
    assert (agent.network, agent.update_rule, agent.learning_rate, agent.batch_size,
            agent.buffer_size, agent.learning_starts, agent.target_period, agent.train_freq,
            agent.eps_end, agent.eps_decay_steps, agent.max_grad_norm) == \
        ("minatar_cnn", "rmsprop", 2.5e-4, 32, 100_000, 5_000, 1_000, 1, 0.1, 100_000, 0.0)
    # epsilon over a fixed number of steps, whatever the run's length
    assert agent.epsilon(50_000, 300_000) == pytest.approx(1.0 + 0.5 * (0.1 - 1.0))
    assert agent.epsilon(200_000, 300_000) == pytest.approx(0.1)


def test_rmsprop_is_centered_with_momentum_and_its_state_is_priced():
    cfg = DQNConfig(update_rule="rmsprop", momentum=0.95, learning_rate=2.5e-4)
    opt = update_rule(cfg.update_rule, [torch.nn.Parameter(torch.zeros(3))], cfg.learning_rate,
                      cfg.momentum, cfg.rmsprop_alpha, cfg.rmsprop_eps)
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.RMSprop) and group["centered"]
    assert (group["alpha"], group["eps"], group["momentum"]) == (0.95, 0.01, 0.95)
    # three state words (v, mean gradient, momentum) a weight, two cells a weight
    assert sram_bits_per_cell("rmsprop", residual=False) == 48


@pytest.mark.parametrize("backend", ["rram", "float"])
def test_a_short_minatar_run_learns_on_the_chip_and_in_float(tmp_path, backend):
    run_dir = tmp_path / backend
    assert main(["--env", "Breakout-MinAtar", "--backend", backend, "--no-progress",
                 "--total-steps", "300", "--set", "agent.learning_starts=100",
                 "--set", "agent.buffer_size=300", "--eval-every", "300",
                 "--eval-episodes", "1", "--run-dir", str(run_dir)]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 300 and summary["protocol"]["family"] == "minatar"
    assert (summary["writes_total"] > 0) == (backend == "rram")
