"""DQN's TD targets against hand computation: the Bellman target, and advantage learning's
(Bellemare et al. 2016) on top of it, with what the extra target pass costs on the chip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from agents.config import DQNConfig
from agents.dqn import DQNAgent
from rlime.common.errors import ConfigError
from rlime.drl.phases import DQN_PHASES
from rlime.hw.backend import make_backend
from rlime.hw.config import preset

BATCH = 16


class FixedReplay:
    """A replay that hands out one fixed minibatch (obs (B, 4), 2 actions)."""

    bytes_per_transition = 40.0

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.batch = {"obs": torch.randn(BATCH, 4, generator=g),
                      "next_obs": torch.randn(BATCH, 4, generator=g),
                      "actions": torch.randint(0, 2, (BATCH,), generator=g),
                      "rewards": torch.randn(BATCH, generator=g),
                      "dones": (torch.rand(BATCH, generator=g) < 0.25).float()}

    def add(self, *args, **kwargs) -> None:
        raise AssertionError("not used")

    def sample(self, batch_size, device="cpu"):
        assert batch_size == BATCH
        return {k: v.clone() for k, v in self.batch.items()}


def _agent(alpha: float, backend: str = "float") -> DQNAgent:
    cfg = DQNConfig(hidden=(16, 16), batch_size=BATCH, buffer_size=64, learning_starts=0,
                    gamma=0.9, reward_scale=0.5, advantage_learning=alpha)
    return DQNAgent(cfg, (4,), 2, backend=make_backend(backend, preset("default"), "cpu", 0,
                                                     DQN_PHASES),
                    mapping="time", device="cpu", seed=3)


def _hand_loss(agent: DQNAgent, batch: dict, alpha: float) -> float:
    """Huber loss of Q(s, a) against r' + gamma (1 - done) max Q_t(s') - alpha (V_t(s) - Q_t(s, a))."""
    cfg = agent.cfg
    with torch.no_grad():
        target_net = agent.mapping.target_network()
        next_v = target_net(batch["next_obs"]).max(1).values
        q_t = target_net(batch["obs"])
        gap = q_t.max(1).values - q_t.gather(1, batch["actions"][:, None]).squeeze(1)
        target = cfg.reward_scale * batch["rewards"] + cfg.gamma * (1 - batch["dones"]) * next_v
        target = target - alpha * gap
        q = agent.q(batch["obs"]).gather(1, batch["actions"][:, None]).squeeze(1)
    return float(F.smooth_l1_loss(q, target))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9])
def test_the_td_loss_uses_the_hand_computed_target(alpha):
    agent, replay = _agent(alpha), FixedReplay()
    # sync once after an update so the target differs from a fresh copy's trivial gap of 0
    agent.train_step(replay)
    agent.sync_target()
    agent.train_step(replay)
    expected = _hand_loss(agent, replay.batch, alpha)
    assert float(agent.train_step(replay)["td_loss"]) == pytest.approx(expected, rel=1e-6)


def test_advantage_learning_only_lowers_the_targets_of_non_greedy_actions():
    agent, replay = _agent(0.9), FixedReplay()
    agent.train_step(replay)
    agent.sync_target()
    gap = agent._advantage_gap(replay.batch)
    with torch.no_grad():
        greedy = agent.mapping.target_network()(replay.batch["obs"]).argmax(1)
    assert (gap >= 0).all()
    assert (gap[greedy == replay.batch["actions"]] == 0).all()
    assert (gap[greedy != replay.batch["actions"]] > 0).all()


def test_on_the_chip_advantage_learning_costs_one_more_target_pass_per_update():
    def target_conversions(alpha):
        agent = _agent(alpha, backend="rram")
        before = agent.backend.snapshot()
        agent.train_step(FixedReplay())
        spent = agent.backend.snapshot() - before
        return (spent.get("target", "adc_conversions"), spent.get("target", "digital_ops"),
                spent.get("forward", "adc_conversions"))

    plain, advantage = target_conversions(0.0), target_conversions(0.9)
    assert plain[0] > 0 and advantage[0] == 2 * plain[0]   # next states, then the states
    assert advantage[1] == 2 * plain[1] + 3 * BATCH         # its own digital ops; max, gather, subtract
    assert advantage[2] == plain[2]                         # the Q pass is unchanged


@pytest.mark.parametrize("alpha", [-0.1, 1.0, 1.5])
def test_an_alpha_outside_zero_to_one_is_refused(alpha):
    with pytest.raises(ConfigError, match="agent.advantage_learning"):
        DQNConfig(advantage_learning=alpha)
