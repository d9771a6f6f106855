"""Device probes (`rlime.hw.probe`, the agent's Q read error, the trainer's probes.jsonl): each
statistic against its definition on states built by hand, and the probes of a real run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from agents.config import DQNConfig
from agents.dqn import DQNAgent
from rlime.drl.phases import DQN_PHASES
from rlime.harness.cli import main
from rlime.hw.backend import make_backend
from rlime.hw.chip import Chip
from rlime.hw.config import preset
from rlime.hw.layers import crossbar_layers, to_rram
from rlime.hw.optim import TunedOptimizer
from rlime.hw.probe import (at_upper_bound, desired_parameters, level_of, sync_gap_levels,
                            update_stats)

from tests.test_train import FAST


def _layer(name: str = "default", seed: int = 0):
    torch.manual_seed(seed)
    chip = Chip(preset(name), "cpu", seed=seed, phases=DQN_PHASES)
    return to_rram(nn.Sequential(nn.Linear(8, 16)), chip)[0], chip


def test_update_stats_follow_their_definitions():
    layer, _ = _layer()
    array, level = layer.array, float(level_of(layer.array))
    before = layer.weight.detach().reshape(-1).clone()
    asked = torch.zeros_like(before)
    asked[:32] = 3 * level                      # 32 of 128 weights asked 3 levels up
    def stats(realised: torch.Tensor) -> dict[str, float]:  # update_stats overwrites both
        return update_stats(array, asked.clone(), realised - before)

    landed = stats(before + asked)
    assert landed["update_levels"] == pytest.approx(3 * 32 / 128)
    assert landed["moved_fraction"] == pytest.approx(32 / 128)
    assert landed["realised_corr"] == pytest.approx(1.0)
    assert landed["realised_gain"] == pytest.approx(1.0)
    half = stats(before + asked / 2)
    assert half["realised_gain"] == pytest.approx(0.5)
    assert half["realised_corr"] == pytest.approx(1.0)
    lost = stats(before)
    assert lost["moved_fraction"] == 0 and lost["realised_gain"] == 0 and lost["realised_corr"] == 0
    backwards = stats(before - asked)
    assert backwards["realised_corr"] == pytest.approx(-1.0)
    assert backwards["realised_gain"] == pytest.approx(-1.0)


def test_at_upper_bound_counts_cells_within_half_a_level_of_their_own_maximum():
    layer, _ = _layer()
    array, n = layer.array, layer.array.cell_u.numel()
    array.cell_u = array.cell_u_min.clone()
    assert at_upper_bound(array) == 0
    u = array.cell_u.clone()
    u[: n // 4] = array.cell_u_max[: n // 4] - 0.4 / array.max_level  # within half a level
    u[n // 4: n // 2] = array.cell_u_max[n // 4: n // 2] - 0.6 / array.max_level  # not
    array.cell_u = u
    assert at_upper_bound(array) == pytest.approx(0.25)


def test_sync_gap_is_the_rms_weight_difference_in_levels():
    source, _ = _layer(seed=0)
    target, _ = _layer(seed=0)  # same seed: the same cells
    assert sync_gap_levels(source.array, target.array) == 0
    n = target.array.cell_u.numel() // 2
    u = target.array.cell_u.clone()
    u[:n] += 2.0 / target.array.max_level  # every G+ cell two levels up: every weight +2 levels
    target.array.cell_u = u
    assert sync_gap_levels(source.array, target.array) == pytest.approx(2.0, rel=1e-4)


def _probe_step(name: str, lr: float) -> dict[str, dict[str, float]]:
    torch.manual_seed(1)
    chip = Chip(preset(name), "cpu", seed=1, phases=DQN_PHASES)
    net = to_rram(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)), chip)
    opt = TunedOptimizer(torch.optim.SGD(net.parameters(), lr=lr), net, chip)
    opt.start_probe()
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(32, 8)).pow(2).mean().backward()
        opt.step()
    return opt.take_probe()


def test_on_the_ideal_device_every_asked_update_lands():
    for stats in _probe_step("ideal", lr=0.1).values():
        assert stats["realised_gain"] == pytest.approx(1.0, abs=1e-4)
        assert stats["realised_corr"] == pytest.approx(1.0, abs=1e-4)
        assert stats["update_levels"] > 0


def test_updates_below_the_trigger_are_asked_but_not_realised():
    stats = _probe_step("default", lr=1e-6)  # far below a level: everything waits in the residual
    for layer in stats.values():
        assert 0 < layer["update_levels"] < 0.01
        assert layer["moved_fraction"] == 0 and layer["realised_gain"] == 0
    assert _probe_step("default", lr=1e-6) == stats  # deterministic


def _agent(name: str, backend: str = "rram") -> DQNAgent:
    cfg = DQNConfig(hidden=(16, 16), batch_size=8, buffer_size=64, learning_starts=0)
    return DQNAgent(cfg, (4,), 2, backend=make_backend(backend, preset(name), "cpu", 0, DQN_PHASES),
                    mapping="time", device="cpu", seed=0)


def test_q_read_error_is_zero_with_exact_periphery_and_not_with_the_default():
    obs = torch.randn(64, 4)
    ideal = _agent("ideal")
    stats = ideal._read_error(obs, ideal.q(obs).detach())
    assert stats["q/read_error_rms"] < 1e-5 and stats["q/greedy_agreement"] == 1.0
    noisy = _agent("default")
    chip_q = noisy.q(obs).detach()
    stats = noisy._read_error(obs, chip_q)
    with torch.no_grad():
        exact = noisy._twin(obs)
    assert stats["q/read_error_rms"] == pytest.approx(float((chip_q - exact).pow(2).mean().sqrt()))
    assert 0 < stats["q/read_error_rms"] < 0.1 * float(exact.abs().mean())
    # two actions: the gap is |Q0 - Q1|
    assert stats["q/action_gap"] == pytest.approx(float((exact[:, 0] - exact[:, 1]).abs().mean()),
                                                  rel=1e-5)
    # the probe reads nothing from the ledger's point of view
    before = noisy.backend.snapshot()
    noisy._read_error(obs, chip_q)
    assert (noisy.backend.snapshot().table == before.table).all()


def test_desired_parameters_add_the_residual_to_the_realised_weights():
    torch.manual_seed(0)
    chip = Chip(preset("default"), "cpu", seed=0, phases=DQN_PHASES)
    net = to_rram(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)), chip)
    first, second = crossbar_layers(net)
    assert first.array.residual.numel() == 128  # the default keeps a residual per weight
    first.array.residual.copy_(torch.arange(128.0))
    second.array.residual = second.array.residual.new_zeros(0)  # a layer without one
    desired = desired_parameters(net)
    assert set(desired) == {name for name, _ in net.named_parameters()}
    assert torch.equal(desired["0.weight"], first.weight.detach() + torch.arange(128.0).view(16, 8))
    for name in ("0.bias", "2.weight", "2.bias"):
        assert torch.equal(desired[name], dict(net.named_parameters())[name].detach())


def test_q_lag_error_is_the_q_change_the_residual_still_holds():
    agent = _agent("default")
    obs = torch.randn(64, 4)
    chip_q = agent.q(obs).detach()
    assert agent._read_error(obs, chip_q)["q/lag_error_rms"] == 0  # nothing pending yet
    out = crossbar_layers(agent.q)[-1]
    out.array.residual.fill_(0.01)  # every output weight 0.01 short of the rule's
    with torch.no_grad():  # the exact hidden activations of the realised weights
        agent._twin.load_state_dict(dict(agent.q.named_parameters()))
        hidden = agent._twin[:-1](obs)
    expected = float((0.01 * hidden.sum(1)).pow(2).mean().sqrt())  # the same on both actions
    stats = agent._read_error(obs, chip_q)
    assert stats["q/lag_error_rms"] == pytest.approx(expected, rel=1e-4)
    timed = _agent("default")  # TIME's mode keeps no residual: no lag to measure
    for layer in crossbar_layers(timed.q):
        layer.array.residual = layer.array.residual.new_zeros(0)
    assert "q/lag_error_rms" not in timed._read_error(obs, timed.q(obs).detach())


def test_q_sync_error_is_the_targets_exact_q_against_the_q_networks():
    obs = torch.randn(64, 4)
    ideal = _agent("ideal")
    ideal._read_error(obs, ideal.q(obs).detach())  # the probe's minibatch
    ideal.sync_target()
    assert ideal.sync_gap()["q/sync_error_rms"] < 1e-6  # ideal cells hold what was synced
    noisy = _agent("default")
    assert "q/sync_error_rms" not in noisy.sync_gap()  # no probed minibatch yet
    noisy._read_error(obs, noisy.q(obs).detach())
    noisy.sync_target()
    target = noisy.mapping.target_network()
    with torch.no_grad():
        exact = []
        for net in (target, noisy.q):
            noisy._twin.load_state_dict(dict(net.named_parameters()))
            exact.append(noisy._twin(obs))
    gap = exact[0] - exact[1]
    stats = noisy.sync_gap()
    assert stats["q/sync_error_rms"] == pytest.approx(float(gap.pow(2).mean().sqrt()), rel=1e-5)
    assert stats["q/sync_error_rms"] > 0 and stats["layer0/sync_gap_levels"] > 0


def test_float_agents_have_no_probes():
    agent = _agent("ideal", backend="float")
    agent.start_probe()
    assert agent.take_probe() == {} and agent.sync_gap() == {}


PROBED = FAST + ["--set", "run.probe_every=200"]


def _probes(run_dir):
    return [json.loads(line) for line in (run_dir / "probes.jsonl").read_text().splitlines()]


def test_a_run_writes_its_probes_and_a_resume_continues_them_exactly(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(PROBED + ["--total-steps", "700", "--run-dir", str(straight)]) == 0
    assert main(PROBED + ["--total-steps", "700", "--session-steps", "400",
                          "--run-dir", str(split)]) == 0
    assert main(["--resume", str(split), "--no-progress"]) == 0
    a = _probes(straight)
    assert a == _probes(split)
    updates = [p for p in a if p["kind"] == "update"]
    syncs = [p for p in a if p["kind"] == "sync"]
    assert [p["step"] for p in updates] == [250, 400, 600]  # first round after 200, 400, 600
    assert len(syncs) == len(updates)
    keys = {f"layer{i}/{s}" for i in range(3) for s in
            ("update_levels", "moved_fraction", "at_upper_bound", "realised_corr",
             "realised_gain")}
    assert keys | {"q/read_error_rms", "q/read_bias", "q/action_gap", "q/mean_abs",
                   "q/greedy_agreement", "q/lag_error_rms"} <= set(updates[0])
    assert {f"layer{i}/sync_gap_levels" for i in range(3)} | {"q/sync_error_rms"} <= set(syncs[0])


def test_probes_can_be_switched_off_and_float_runs_have_none(tmp_path):
    off = tmp_path / "off"
    assert main(FAST + ["--set", "run.probe_every=0", "--total-steps", "400",
                        "--run-dir", str(off)]) == 0
    assert not (off / "probes.jsonl").exists()
    flt = tmp_path / "float"
    assert main(PROBED + ["--backend", "float", "--total-steps", "400",
                          "--run-dir", str(flt)]) == 0
    assert not (flt / "probes.jsonl").exists()


def test_probes_do_not_change_what_the_run_computes(tmp_path):
    probed, plain = tmp_path / "probed", tmp_path / "plain"
    assert main(PROBED + ["--total-steps", "500", "--run-dir", str(probed)]) == 0
    assert main(FAST + ["--set", "run.probe_every=0", "--total-steps", "500",
                        "--run-dir", str(plain)]) == 0
    a = [json.loads(line) for line in (probed / "episodes.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (plain / "episodes.jsonl").read_text().splitlines()]
    assert [(e["return"], e["writes"], e["ledger"]) for e in a] == \
           [(e["return"], e["writes"], e["ledger"]) for e in b]


def test_probe_summary_averages_each_statistic_over_its_window(tmp_path, capsys):
    from experiments.probe_summary import main as summary, parse_window

    run = tmp_path / "run"
    run.mkdir()
    lines = [{"step": 1000, "kind": "update", "q/action_gap": 0.1, "q/lag_error_rms": 0.3},
             {"step": 1200, "kind": "sync", "q/sync_error_rms": 0.5},
             {"step": 2000, "kind": "update", "q/action_gap": 0.3, "q/lag_error_rms": 0.1},
             {"step": 3000, "kind": "update", "q/action_gap": 0.9, "q/lag_error_rms": None}]
    (run / "probes.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary([str(run), "--window", "0:2500", "--window", "2500:", "--match", "q/"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| statistic | run 0-2500 | run 2500-end |"
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in out[2:]]
    rows = {row[0]: row[1:] for row in cells}
    assert rows["q/action_gap"] == ["0.2", "0.9"]        # (0.1 + 0.3) / 2; 0.9 alone
    assert rows["q/lag_error_rms"] == ["0.2", "-"]       # a None probe is not a value
    assert rows["q/sync_error_rms"] == ["0.5", "-"]
    for bad in ("100", "5:1", "a:b"):
        with pytest.raises(argparse.ArgumentTypeError, match="window"):
            parse_window(bad)
    with pytest.raises(SystemExit, match="does not exist"):
        summary([str(tmp_path / "none")])


def test_q_resolution_of_a_hand_built_checkpoint(tmp_path):
    from experiments.q_resolution import resolution

    eye, out = torch.eye(2), torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    q = {"0.weight": eye, "0.bias": torch.zeros(2), "0.array.cell_u": torch.zeros(8),
         "0.array.residual": torch.zeros(4), "0.array.weight_scale": torch.tensor(1.0),
         "0.array.adc_range_forward": torch.ones(1),
         "2.weight": out, "2.bias": torch.zeros(3), "2.array.cell_u": torch.zeros(12),
         "2.array.residual": torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
         "2.array.weight_scale": torch.tensor(2.0),
         "2.array.adc_range_forward": torch.tensor([0.5, 0.25])}
    path = tmp_path / "checkpoint.pt"
    torch.save({"step": 5, "agent": {"q": q, "probe_obs": torch.tensor([[1.0, 2.0]])}}, path)
    row = resolution(str(path), adc_bits=8)
    # h = relu(obs) = (1, 2); Q = (1, 2, 3): |Q| 2, gap 1. LSB_t = range_t x scale x max|h| / 128
    lsb = torch.tensor([0.5, 0.25]) * 2.0 * 2.0 / 128
    assert row["mean_abs_q"] == pytest.approx(2.0) and row["action_gap"] == pytest.approx(1.0)
    assert row["adc_lsb_q"] == pytest.approx(float(lsb.mean()))
    assert row["adc_rounding_rms_q"] == pytest.approx(float((lsb.pow(2).sum() / 12).sqrt()))
    # the residual adds 1 to Q(a=2): lag (0, 0, 1); centred (-1/3, -1/3, 2/3)
    assert row["lag_rms"] == pytest.approx(math.sqrt(1 / 3))
    assert row["lag_differential_rms"] == pytest.approx(math.sqrt(2 / 9))
    torch.save({"step": 5, "agent": {"q": {"0.weight": eye}}}, path)
    with pytest.raises(SystemExit, match="no probed rram Q-network"):
        resolution(str(path), adc_bits=8)


def test_dueling_head_combines_value_and_advantage_and_its_digital_ops_are_charged():
    from agents.qnets import DuelingHead, build_q_network

    torch.manual_seed(0)
    net = build_q_network((4,), 3, "mlp", (8, 8), dueling=True)
    x = torch.randn(5, 4)
    head, h = net[-1], net[:-1](x)
    a = head.advantage(h)
    assert torch.allclose(net(x), head.value(h) + a - a.mean(1, keepdim=True))
    with pytest.raises(ValueError, match="'mlp' only"):
        build_q_network((4, 84, 84), 3, "nature_cnn", dueling=True)
    cfg = DQNConfig(hidden=(16, 16), batch_size=8, buffer_size=64, learning_starts=0)
    agents = {d: DQNAgent(dataclasses.replace(cfg, dueling=d), (4,), 3,
                          backend=make_backend("rram", preset("default"), "cpu", 0, DQN_PHASES),
                          mapping="time", device="cpu", seed=0) for d in (False, True)}
    assert len(crossbar_layers(agents[True].q)) == 4  # value and advantage: arrays of their own
    ops = {}
    for dueling, agent in agents.items():
        before = agent.backend.snapshot()
        agent.act(np.zeros((6, 4), dtype=np.float32), epsilon=0.0)
        ops[dueling] = (agent.backend.snapshot() - before).get("act", "digital_ops")
    # per sample: ReLUs (16 + 16) and biases (16 + 16 + 3, the dueling head: + 1 for V), then
    # the combination, 3 ops per action
    assert ops[True] - ops[False] == 6 * (1 + DuelingHead.COMBINE_OPS * 3)


def test_readout_policy_plays_the_exact_weights_and_reads_the_chip_evals(tmp_path):
    from experiments.readout_policy import chip_returns, exact_returns

    def play(first: torch.Tensor, out: torch.Tensor) -> tuple[int, list[float]]:
        q = {"0.weight": first, "0.bias": torch.zeros(2), "0.array.cell_u": torch.zeros(16),
             "2.weight": out, "2.bias": torch.zeros(2), "2.array.cell_u": torch.zeros(8)}
        torch.save({"step": 7, "agent": {"q": q}}, tmp_path / "checkpoint.pt")
        (tmp_path / "config.toml").write_text(
            '[run]\nenv = "CartPole"\nseed = 3\neval_epsilon = 0.0\n')
        return exact_returns(tmp_path, 5, None)

    # CartPole MLP 4-2-2: h = relu(+-(angle + angular velocity)); pushing towards the lean
    # (Q(right) = h0, Q(left) = h1) balances for long, always pushing left tips the pole at once
    lean = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, -1.0, -1.0]])
    step, balanced = play(lean, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    _, tipped = play(lean, torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    assert step == 7 and len(balanced) == len(tipped) == 5
    assert min(balanced) > 100 and max(tipped) < 30
    (tmp_path / "evals.jsonl").write_text(
        "".join(f'{{"step": {s}, "mean_return": {r}}}\n' for s, r in ((5, 10.0), (7, 20.0), (9, 30.0))))
    assert chip_returns(tmp_path, 7) == [10.0, 20.0]


def test_mountaincar_exploration_counts_goal_episodes_and_the_replay_reach(tmp_path, capsys):
    from experiments.mountaincar_exploration import first_goal, goal_windows, main as explore, replay_reach

    run = tmp_path / "run"
    run.mkdir()
    episodes = [(200, -200.0), (9_900, -200.0), (10_000, -150.0), (10_001, -200.0),
                (25_000, -120.0), (29_999, -200.0)]
    (run / "episodes.jsonl").write_text(
        "".join(json.dumps({"step": s, "return": r}) + "\n" for s, r in episodes))
    # a window ends at a multiple of `every` and holds the episodes ending in (end - every, end]
    assert goal_windows(run, 10_000) == [(10_000, 3, 1), (20_000, 1, 0), (30_000, 2, 1)]
    assert first_goal(run) == 10_000
    frames = np.array([[[-0.5, 0.0], [-0.1, 0.03], [0.5, -0.04], [-0.3, 0.01]]], dtype=np.float32)
    torch.save({"step": 30_000, "replay": {"frames": frames}}, run / "checkpoint.pt")
    reach = replay_reach(run / "checkpoint.pt")
    assert reach == {"step": 30_000, "observations": 4, "max_position": 0.5,
                     "max_speed": pytest.approx(0.04), "up_slope": 0.5, "at_goal": 0.25}
    explore([str(run)])
    out = capsys.readouterr().out
    assert "first training episode at the goal: step 10000" in out
    assert "| 30000 | 2 | 1 |" in out and "| 0.500 | 0.0400 | 0.500 | 0.2500 |" in out
    torch.save({"step": 1, "replay": None}, run / "checkpoint.pt")
    with pytest.raises(SystemExit, match="holds no replay"):
        replay_reach(run / "checkpoint.pt")


def test_warm_start_programs_a_float_checkpoint_onto_the_chip_and_continues_it(tmp_path):
    from experiments.warm_start import hardware_overrides, main as warm_start, warm_started
    from rlime.harness.run_config import RunConfig
    from rlime.harness.run_dir import RunDirectory
    from rlime.harness.train import Trainer

    source = tmp_path / "float"
    assert main(FAST + ["--backend", "float", "--total-steps", "600", "--run-dir", str(source)]) == 0
    float_state = torch.load(source / "checkpoint.pt", weights_only=False)
    float_q = float_state["agent"]["q"]
    trainer = warm_started(source, tmp_path / "programmed", steps=200)
    trainer.run_dir.release()
    assert trainer.step == 600 and len(trainer.replay) > 0
    assert np.array_equal(trainer.replay.state_dict()["frames"], float_state["replay"]["frames"])
    layers = [(name, m) for name, m in trainer.agent.q.named_modules() if hasattr(m, "array")]
    targets = dict(trainer.agent.mapping.target_network().named_modules())
    assert len(layers) == 3
    errors = []  # programmed to the float weights within the tuning tolerance
    for name, layer in layers:
        asked = float_q[f"{name}.weight"]
        assert bool((asked.abs() < layer.array.weight_scale).all())  # all within the range
        errors.append(((layer.realised() - asked).abs() / level_of(layer.array)).reshape(-1))
        assert torch.equal(layer.bias, float_q[f"{name}.bias"])
        synced = (targets[name].realised() - layer.realised()).abs() / level_of(layer.array)
        assert float(synced.mean()) < 1.0
    errors = torch.cat(errors)  # a few cells end at the pulse cap short of their level
    assert float(errors.mean()) < 1.0 and float((errors < 3).float().mean()) > 0.97
    setup = trainer.attribution.setup  # the warm programming and sync are the run's setup
    assert np.array_equal(setup.table, trainer.backend.snapshot().table)
    fresh = Trainer(trainer.cfg, RunDirectory(tmp_path / "fresh")).attribution.setup
    pulses = lambda snap, phase: snap.get(phase, "set_pulses") + snap.get(phase, "reset_pulses")
    assert pulses(setup, "program") > pulses(fresh, "program") and pulses(setup, "target_sync") > 0

    out = tmp_path / "rram"
    assert warm_start([str(source), "--out", str(out), "--steps", "200"]) == 0
    cfg = RunConfig.from_toml((out / "config.toml").read_text())
    assert cfg.backend == "rram" and cfg.total_steps == 800
    assert cfg.agent == RunConfig.from_toml((source / "config.toml").read_text()).agent
    evals = [json.loads(line) for line in (out / "evals.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [600, 800]  # the float policy on the chip, then the run's
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 800
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert episodes and all(600 < e["step"] <= 800 for e in episodes)
    with pytest.raises(SystemExit, match="already holds a run"):
        warm_start([str(source), "--out", str(out)])
    with pytest.raises(SystemExit, match="is a rram run, not a float one"):
        warm_start([str(out), "--out", str(tmp_path / "again")])
    wide = warm_started(source, tmp_path / "wide", 10, hardware_overrides(["tile.weight_headroom=8"]))
    wide.run_dir.release()  # a wider conductance range: each array's scale 4x the default's
    for (_, default), (_, scaled) in zip(layers, [(n, m) for n, m in wide.agent.q.named_modules()
                                                  if hasattr(m, "array")]):
        assert float(scaled.array.weight_scale) == pytest.approx(4 * float(default.array.weight_scale))
    assert warm_start([str(source), "--out", str(tmp_path / "bad"), "--set", "agent.gamma=0.5"]) == 2
    assert warm_start([str(source), "--out", str(tmp_path / "bad"), "--set",
                       "tile.weight_headroom=0.5"]) == 2


def test_weight_growth_in_units_of_the_initial_maximum():
    from experiments.weight_growth import clipped, growth, initial_weights
    from rlime.harness.run_config import resolve

    w0 = {"0.weight": torch.tensor([[0.5, -0.25], [0.1, 0.0]])}  # max|W0| 0.5
    w = torch.tensor([[3.0, -0.5], [0.2, -1.5]])
    top, q99, beyond = growth({"0.weight": w, "0.bias": torch.zeros(2)}, w0, headroom=2.0)["0.weight"]
    assert top == pytest.approx(6.0)  # 3.0 / 0.5
    assert q99 == pytest.approx(float(torch.quantile(w.abs().reshape(-1), 0.99)) / 0.5)
    assert beyond == 0.5  # 3.0 and 1.5 are beyond +-1.0
    bias = torch.tensor([5.0, -5.0])
    clip = clipped({"0.weight": w, "0.bias": bias}, w0, headroom=2.0)
    assert torch.equal(clip["0.weight"], torch.tensor([[1.0, -0.5], [0.2, -1.0]]))
    assert torch.equal(clip["0.bias"], bias)  # digital biases are not clipped
    grid = clipped({"0.weight": w, "1.weight": w}, {**w0, "1.weight": w0["0.weight"]}, 2.0,
                   levels=3, layer="0.weight")  # steps of 1.0 / 2
    assert torch.equal(grid["0.weight"], torch.tensor([[1.0, -0.5], [0.0, -1.0]]))
    assert torch.equal(grid["1.weight"], w)  # another layer: untouched
    cfg = resolve([("run.env", "CartPole"), ("run.seed", 3), ("agent.hidden", [8, 8])])
    agent = DQNAgent(cfg.agent, (4,), 2, backend=make_backend("float", preset("default"), "cpu", 3,
                                                              DQN_PHASES),
                     mapping="time", device="cpu", seed=3)
    initial = initial_weights(cfg)  # the agent's own initialisation, rebuilt from the seed
    assert list(initial) == ["0.weight", "2.weight", "4.weight"]
    for name, weight in initial.items():
        assert torch.equal(weight, agent.q.state_dict()[name])
