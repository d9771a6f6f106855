"""Q-network builders (float `nn.Module`s; `rlime.hw.layers.to_rram` turns them into RRAM twins)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from rlime.hw.layers import CodeInput


def mlp_q_network(obs_dim: int, n_actions: int, hidden: Sequence[int],
                  dueling: bool = False) -> nn.Module:
    """obs_dim -> hidden... -> n_actions with ReLUs; with `dueling`, the last hidden layer
    feeds a `DuelingHead`."""
    layers: list[nn.Module] = []
    width = obs_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(DuelingHead(width, n_actions) if dueling else nn.Linear(width, n_actions))
    return nn.Sequential(*layers)


class DuelingHead(nn.Module):
    """Q(s, a) = V(s) + A(s, a) - mean_a A(s, a) (Wang et al. 2016, "Dueling network
    architectures", eq. 9) from two linear heads, `value` (1 output) and `advantage`
    (n_actions). On RRAM each head is its own crossbar array with its own calibrated ADC
    ranges, so the advantages -- all that decides the greedy action -- are converted on a
    scale of their own rather than on that of |Q| (README, "Learning on the default
    device"). The combination is digital: COMBINE_OPS per action and sample, charged by the
    agent."""

    COMBINE_OPS = 3  # the mean's add, the subtraction and the addition of V

    def __init__(self, width: int, n_actions: int) -> None:
        super().__init__()
        self.value = nn.Linear(width, 1)
        self.advantage = nn.Linear(width, n_actions)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = self.advantage(h)
        return self.value(h) + a - a.mean(1, keepdim=True)


def nature_cnn_q_network(in_channels: int, n_actions: int) -> nn.Module:
    """Mnih et al. 2015 Nature-DQN network for (in_channels, 84, 84) uint8 frames."""
    return nn.Sequential(
        CodeInput(),  # uint8 frames drive the first DACs as 8-bit codes
        nn.Conv2d(in_channels, 32, 8, stride=4), nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3136, 512), nn.ReLU(),
        nn.Linear(512, n_actions),
    )


def minatar_q_network(in_channels: int, n_actions: int) -> nn.Module:
    """Young & Tian 2019 (MinAtar examples/dqn.py): one 3x3 conv of 16 filters (stride 1) over
    the (C, 10, 10) object planes, a 128-unit hidden layer, a linear Q output."""
    return nn.Sequential(
        BinaryPlanes(),
        nn.Conv2d(in_channels, 16, 3, stride=1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 128), nn.ReLU(),
        nn.Linear(128, n_actions),
    )


class BinaryPlanes(nn.Module):
    """uint8 planes in {0, 1} -> float 0.0 / 1.0 (the DAC drives a row on or off)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


def build_q_network(obs_shape: tuple[int, ...], n_actions: int, kind: str,
                    hidden: Sequence[int] = (256, 256), dueling: bool = False) -> nn.Module:
    """`kind` "mlp" for vector observations (obs_shape (d,)), "nature_cnn" for (4, 84, 84)
    frames, "minatar_cnn" for MinAtar's (C, 10, 10) planes; `dueling` (mlp only): a
    `DuelingHead` in place of the output layer."""
    if dueling and kind != "mlp":
        raise ValueError(f"agent.dueling is implemented for network 'mlp' only, not {kind!r}")
    if kind == "mlp":
        if len(obs_shape) != 1:
            raise ValueError(f"an MLP Q-network needs flat observations, got shape {obs_shape}; "
                             f"use network 'nature_cnn' for frames")
        return mlp_q_network(obs_shape[0], n_actions, hidden, dueling)
    if kind == "nature_cnn":
        if tuple(obs_shape[1:]) != (84, 84):
            raise ValueError(f"the Nature CNN needs (frames, 84, 84) observations, got {obs_shape}")
        return nature_cnn_q_network(obs_shape[0], n_actions)
    if kind == "minatar_cnn":
        if tuple(obs_shape[1:]) != (10, 10):
            raise ValueError(f"the MinAtar CNN needs (channels, 10, 10) planes, got {obs_shape}")
        return minatar_q_network(obs_shape[0], n_actions)
    raise ValueError(f"unknown Q-network {kind!r}; choose 'mlp', 'nature_cnn' or 'minatar_cnn'")
