"""Compute backends: the float backend has the RRAM backend's interface, runs the same calls,
and charges nothing."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn as nn

from rlime.common.errors import ConfigError
from rlime.drl.phases import DQN_PHASES
from rlime.hw.backend import Backend, FloatBackend, RRAMBackend, make_backend
from rlime.hw.config import preset
from rlime.hw.layers import sync_weights

MEMBERS = [name for name in dir(Backend) if not name.startswith("_")] + ["on_chip"]


@pytest.mark.parametrize("cls", [RRAMBackend, FloatBackend])
def test_both_backends_have_every_member_of_the_interface_with_its_signature(cls):
    for name in MEMBERS:
        assert hasattr(cls, name), name
        if callable(getattr(Backend, name, None)):
            assert (list(inspect.signature(getattr(cls, name)).parameters)
                    == list(inspect.signature(getattr(Backend, name)).parameters)), name


def _network(backend: Backend) -> nn.Module:
    torch.manual_seed(0)
    return backend.place(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))


@pytest.mark.parametrize("name", ["rram", "float"])
def test_a_network_is_placed_copied_trained_and_synced_through_the_same_calls(name):
    backend = make_backend(name, preset("ideal"), "cpu", seed=0, phases=DQN_PHASES)
    net = _network(backend)
    x = torch.linspace(-1, 1, 15).reshape(5, 3)
    with backend.phase("program"):
        twin = backend.copy(net)
    assert twin is not net
    optimizer = backend.optimizer(torch.optim.SGD(net.parameters(), lr=0.5), net)
    with backend.phase("forward"):
        loss = net(x).square().sum()
    backend.charge("digital_ops", 7, "forward")
    optimizer.zero_grad()
    loss.backward()
    with backend.phase("update"):
        optimizer.step()
    assert not torch.equal(net[0].weight, twin[0].weight)  # the update moved the weights
    programmed = []

    def program(chip, sources, targets):
        programmed.append(len(targets))
        sync_weights(chip, sources, targets)

    with backend.phase("target_sync"):
        backend.copy_weights(net, twin, program)
    for src, dst in zip(net.parameters(), twin.parameters()):
        assert torch.equal(src, dst)
    networks = [net, twin]
    counters = backend.cell_pulse_counts(networks)
    assert all(c.dtype == torch.int32 for c in counters)
    pulses = torch.cat(counters) if counters else torch.zeros(0)
    assert 0.0 <= backend.dead_cell_fraction(networks) <= 1.0
    fresh = make_backend(name, preset("ideal"), "cpu", seed=1, phases=DQN_PHASES)
    fresh.load_state_dict(backend.state_dict())
    assert np.array_equal(fresh.snapshot().table, backend.snapshot().table)
    total = backend.snapshot()
    if backend.on_chip:
        assert programmed == [2]  # both layers' arrays, through the mapping's protocol
        assert pulses.numel() == 2 * 2 * (3 * 4 + 4 * 2) and int(pulses.sum()) > 0
        assert total.get("forward", "digital_ops") >= 7 and total.count("set_pulses") > 0
    else:  # the float backend charges nothing and has no cells
        assert programmed == [] and pulses.numel() == 0
        assert backend.dead_cell_fraction(networks) == 0.0
        assert not total.table.any() and backend.state_dict() == {}


def test_an_unknown_backend_is_refused():
    with pytest.raises(ConfigError, match="unknown backend .analog.; choose one of rram, float"):
        make_backend("analog", preset("ideal"), "cpu", seed=0)
