"""The train command end to end on CartPole with small budgets: the run-directory contract,
TensorBoard tags, resume without lost or duplicated episodes, and clear errors."""

from __future__ import annotations

import json
import math
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlime.drl.phases import DQN_PHASES
from rlime.harness.cli import main

# Small, fast settings: a 32-32 MLP, learning from step 200, a training round every 50 steps.
FAST = ["--env", "CartPole", "--no-progress", "--set", "agent.hidden=[32, 32]",
        "--set", "agent.learning_starts=200", "--set", "agent.train_freq=50",
        "--set", "agent.gradient_steps=4", "--set", "agent.target_period=100",
        "--eval-every", "400", "--eval-episodes", "2", "--checkpoint-every", "300"]


def _episodes(run_dir):
    return [json.loads(line) for line in (run_dir / "episodes.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def rram_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "cartpole"
    assert main(FAST + ["--total-steps", "800", "--run-dir", str(run_dir)]) == 0
    return run_dir


def test_run_directory_holds_every_file_of_the_contract(rram_run):
    config = tomllib.loads((rram_run / "config.toml").read_text())
    assert config["run"]["env_id"] == "CartPole-v1" and config["run"]["backend"] == "rram"
    assert config["agent"]["hidden"] == [32, 32]
    assert config["hardware"]["preset"] == "default"
    assert config["protocol"]["env_id"] == "CartPole-v1"
    summary = json.loads((rram_run / "summary.json").read_text())
    assert summary["steps"] == 800 and summary["episodes"] == len(_episodes(rram_run))
    assert summary["update_mode"] == "mixed-precision"  # CartPole's defaults: Adam + residual
    replay = summary["replay"]  # 1-bit memory-mode cells on 128 x 128 tiles
    assert replay["rram_tiles_if_in_rram"] == -(-8 * replay["bytes"] // (128 * 128)) >= 1
    assert (rram_run / "checkpoint.pt").exists()
    assert list(rram_run.glob("events.out.tfevents.*"))
    assert len((rram_run / "evals.jsonl").read_text().splitlines()) == 2  # at 400 and 800


def test_every_episode_reports_integer_writes_and_energy_by_category(rram_run):
    episodes = _episodes(rram_run)
    assert len(episodes) >= 10
    for e in episodes:
        assert {"episode", "step", "return", "length", "writes", "energy_j", "energy"} <= set(e)
        assert isinstance(e["writes"], int) and e["writes"] >= 0
        assert e["energy_j"] > 0
        assert math.isclose(sum(e["energy"].values()), e["energy_j"], rel_tol=1e-9)
        ledger = e["ledger"]
        # the split, each part from its own phase; together every pulse and bit of the episode
        def pulses(phase):
            return sum(ledger.get(phase, {}).get(k, 0) for k in ("set_pulses", "reset_pulses"))

        replay_bits = ledger["replay"]["rram_memory_write_bits"]  # `time`: replay in RRAM
        assert e["writes"] == pulses("update")                    # Q-array update pulses
        assert e["target_sync_pulses"] == pulses("target_sync")
        assert e["replay_write_bits"] == replay_bits
        assert "program" not in ledger                            # programming is setup's
        assert e["writes"] + e["target_sync_pulses"] == sum(pulses(p) for p in ledger)
        assert e["replay_write_bits"] == sum(row.get("rram_memory_write_bits", 0)
                                             for row in ledger.values())
        assert isinstance(e["target_sync_pulses"], int) and isinstance(e["replay_write_bits"], int)
        assert "weight_writes" not in e and "replay_writes" not in e
    assert sum(e["target_sync_pulses"] for e in episodes) > 0  # target_period 100 < 800 steps
    # no update pulses before learning starts (step 200); the replay is written from step 1
    assert all(e["writes"] == 0 for e in episodes if e["step"] <= 200)
    assert any(e["writes"] > 0 for e in episodes)
    assert all(e["replay_write_bits"] > 0 for e in episodes)
    assert [e["episode"] for e in episodes] == list(range(len(episodes)))


def test_ledger_splits_into_setup_episodes_eval_and_in_progress(rram_run):
    summary = json.loads((rram_run / "summary.json").read_text())
    parts = summary["ledger"]
    episodes = _episodes(rram_run)

    def count(part, kinds, phases=None):
        return sum(row.get(k, 0) for phase, row in part.items()
                   if phases is None or phase in phases for k in kinds)

    pulse_kinds, bit_kinds = ("set_pulses", "reset_pulses"), ("rram_memory_write_bits",)
    weight = tuple(p for p in DQN_PHASES.names if p != "target_sync")
    # (summary key, the episodes.jsonl field, what it counts in a ledger part)
    for key, field, kinds, phases in (("writes", "writes", pulse_kinds, weight),
                                      ("target_sync_pulses", "target_sync_pulses", pulse_kinds,
                                       ("target_sync",)),
                                      ("replay_write_bits", "replay_write_bits", bit_kinds, None)):
        total = summary[f"{key}_total"]
        assert count(parts["total"], kinds, phases) == total > 0, key
        assert (count(parts["setup"], kinds, phases) + sum(e[field] for e in episodes)
                + count(parts["eval"], kinds, phases) + count(parts["in_progress"], kinds, phases)
                + count(parts["abandoned"], kinds, phases)) == total, key
        assert summary[f"{key}_per_episode"] == pytest.approx(
            sum(e[field] for e in episodes) / len(episodes))
    # the three add up to every pulse and memory-mode bit of the run, none twice
    assert (summary["writes_total"] + summary["target_sync_pulses_total"]
            == count(parts["total"], pulse_kinds))
    assert summary["replay_write_bits_total"] == count(parts["total"], bit_kinds)
    # the headline total includes the setup's programming of the Q and target arrays
    assert count(parts["setup"], pulse_kinds) == count(parts["setup"], pulse_kinds, ("program",)) > 0


def test_tensorboard_reader_finds_the_documented_tags(rram_run):
    events = EventAccumulator(str(rram_run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("charts/episodic_return", "charts/episodic_length", "device/episode_writes",
                "device/episode_target_sync_pulses", "device/episode_replay_write_bits",
                "device/episode_energy_j", "energy/tuning", "losses/td_loss", "losses/q_values",
                "charts/epsilon", "eval/episodic_return"):
        assert tag in tags, tag
    returns = events.Scalars("charts/episodic_return")
    assert len(returns) == len(_episodes(rram_run))
    assert "device/episode_weight_writes" not in tags
    for tag, field in (("device/episode_writes", "writes"),
                       ("device/episode_target_sync_pulses", "target_sync_pulses"),
                       ("device/episode_replay_write_bits", "replay_write_bits")):
        assert [s.value for s in events.Scalars(tag)] == pytest.approx(
            [e[field] for e in _episodes(rram_run)], rel=1e-6), tag
    # SPS every 100 steps (not only at checkpoints), positive once two samples exist
    sps = events.Scalars("charts/SPS")
    assert [s.step for s in sps] == list(range(100, 801, 100)) and all(s.value > 0 for s in sps)


def test_recent_rate_follows_the_last_window_not_the_session_average():
    from rlime.harness.train import RecentRate

    now = [0.0]
    rate = RecentRate(30.0, clock=lambda: now[0])
    step = 0
    for second in range(1, 101):  # 10 steps/s for 60 s, then 100 steps/s
        now[0] = float(second)
        step += 10 if second <= 60 else 100
        rate.add(step)
    assert rate.rate() == pytest.approx(100, rel=0.05)  # the session average is 46


def _trainer(tmp_path, *args):
    from rlime.harness.cli import build_parser, config_from_args
    from rlime.harness.run_dir import RunDirectory
    from rlime.harness.train import Trainer

    cfg, _ = config_from_args(build_parser().parse_args(FAST + ["--backend", "float", *args]))
    return Trainer(cfg, RunDirectory(tmp_path / "t"), progress=False)


def test_progress_phase_tells_replay_filling_from_learning(tmp_path):
    trainer = _trainer(tmp_path, "--set", "agent.learning_starts=80000")
    trainer.step = 52_300
    assert trainer.phase() == "filling replay 52k/80k"
    trainer.step = 80_004
    assert trainer.phase() == "learning"


def test_progress_bar_refreshes_by_time_and_shows_phase_and_recent_sps(tmp_path, capsys,
                                                                       monkeypatch):
    import rlime.harness.train as train

    monkeypatch.setattr(train, "REFRESH_S", 1e9)  # only the first step and the end are drawn
    args = [a for a in FAST if a != "--no-progress"]
    assert main(args + ["--total-steps", "600", "--run-dir", str(tmp_path / "bar")]) == 0
    bar = capsys.readouterr().err.replace("\r", "\n")
    drawn = [line for line in bar.splitlines() if " sps, ETA " in line]
    assert "filling replay 1/200" in drawn[0] and "learning" in drawn[-1]
    # drawn at the first step, before the evaluation at 400 and at the end (redrawn after
    # checkpoint lines), at no other step
    assert {re.search(r"(\d+)/600 \[", line)[1] for line in drawn} == {"1", "400", "600"}
    assert any("400/600" in line and "evaluating (2 episodes)" in line for line in drawn)
    assert "[00:0" in drawn[-1] and " 0 sps" not in drawn[-1]
    # the headline is weight-programming pulses; replay bits are shown apart, labelled
    summary = json.loads((tmp_path / "bar" / "summary.json").read_text())
    assert f"| writes {summary['writes_total']:.3g}, " in drawn[-1]
    assert f"replay {summary['replay_write_bits_total']:.3g} bits |" in drawn[-1]
    assert summary["replay_write_bits_total"] > summary["writes_total"]


def test_progress_postfix_does_not_count_replay_bits_or_syncs_as_writes(tmp_path):
    import io

    from tqdm import tqdm

    from rlime.hw.ledger import LedgerSnapshot

    trainer = _trainer(tmp_path)
    trainer.progress = True
    trainer._bar = tqdm(total=10, file=io.StringIO())
    trainer.rate.add(0)  # as run() does before the first refresh

    def postfix(ledger: dict) -> str:
        snap = LedgerSnapshot.from_dict(ledger, DQN_PHASES)
        trainer.backend = type("Backend", (), {"snapshot": staticmethod(lambda: snap)})()
        trainer._show()
        return trainer._bar.postfix

    # before learning: the setup programming and a replay that fills RRAM memory-mode cells
    text = postfix({"program": {"set_pulses": 1_500_000, "reset_pulses": 72_123},
                    "replay": {"rram_memory_write_bits": 967_000_000}})
    assert "| writes 1.57e+06, replay 9.67e+08 bits |" in text
    text = postfix({"update": {"set_pulses": 40}, "target_sync": {"reset_pulses": 7}})
    assert "| writes 40, sync 7 pulses |" in text
    assert "| writes 0 |" in postfix({})


def test_checkpoints_say_what_they_hold_and_the_replay_can_be_left_out(tmp_path, capsys):
    full, lean = tmp_path / "full", tmp_path / "lean"
    assert main(FAST + ["--total-steps", "300", "--run-dir", str(full)]) == 0
    err = capsys.readouterr().err
    assert f"checkpoint at step 0 -> {full / 'checkpoint.pt'}: about " in err
    final = re.search(r"checkpoint at step 300 -> .*\(replay ([\d.]+) kB: (\d+) transitions", err)
    assert final and 0 < int(final[2]) <= 300 and float(final[1]) > 0  # the replay is saved
    assert main(FAST + ["--total-steps", "300", "--set", "run.checkpoint_replay=false",
                        "--run-dir", str(lean)]) == 0
    assert "replay not saved (run.checkpoint_replay)" in capsys.readouterr().err
    assert (lean / "checkpoint.pt").stat().st_size < (full / "checkpoint.pt").stat().st_size


def test_a_resume_without_the_replay_refills_it_before_training_again(tmp_path):
    run_dir = tmp_path / "lean"
    assert main(FAST + ["--total-steps", "800", "--session-steps", "400", "--set",
                        "run.checkpoint_replay=false", "--run-dir", str(run_dir)]) == 0
    assert main(["--resume", str(run_dir), "--no-progress"]) == 0
    events = EventAccumulator(str(run_dir))
    events.Reload()
    trained = [s.step for s in events.Scalars("losses/td_loss")]
    # learning_starts = 200: rounds up to step 400, none while 200 steps refill, then again
    assert trained[0] == 250 and 400 in trained
    assert not [s for s in trained if 400 < s <= 600] and trained[-1] == 800
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 800


def test_time_split_accumulates_over_resumes_whose_threads_may_differ(tmp_path):
    run_dir = tmp_path / "split"
    assert main(FAST + ["--total-steps", "700", "--session-steps", "600",
                        "--run-dir", str(run_dir)]) == 0
    first = json.loads((run_dir / "summary.json").read_text())["time_split_s"]
    # another machine's thread count is no other configuration
    assert main(["--resume", str(run_dir), "--threads", "1", "--no-progress"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 700
    assert all(summary["time_split_s"][phase] >= seconds for phase, seconds in first.items())
    assert sum(summary["time_split_s"].values()) <= summary["wall_s"]


def test_threads_are_chosen_applied_and_printed(tmp_path, capsys):
    import torch

    threads = torch.get_num_threads()
    try:
        assert main(FAST + ["--threads", "2", "--total-steps", "50",
                            "--run-dir", str(tmp_path / "threads")]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert "torch threads: 2 (run.threads" in capsys.readouterr().err


def test_float_backend_writes_nothing(tmp_path):
    run_dir = tmp_path / "float"
    assert main(FAST + ["--backend", "float", "--total-steps", "400", "--run-dir", str(run_dir)]) == 0
    episodes = _episodes(run_dir)
    assert episodes and all(e["writes"] == 0 and e["energy_j"] == 0 for e in episodes)


def test_resume_continues_without_lost_or_duplicated_episodes_and_reproduces(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(FAST + ["--total-steps", "700", "--run-dir", str(straight)]) == 0
    assert main(FAST + ["--total-steps", "700", "--session-steps", "400",
                        "--run-dir", str(split)]) == 0
    assert json.loads((split / "summary.json").read_text())["steps"] == 400
    assert main(["--resume", str(split), "--no-progress"]) == 0
    a, b = _episodes(straight), _episodes(split)
    assert [e["episode"] for e in b] == list(range(len(b)))
    # same seed, CPU, environments checkpointed: the resumed run is the uninterrupted one
    assert [(e["step"], e["return"], e["writes"]) for e in a] == \
           [(e["step"], e["return"], e["writes"]) for e in b]
    sa = json.loads((straight / "summary.json").read_text())
    sb = json.loads((split / "summary.json").read_text())
    assert sa["ledger"]["total"] == sb["ledger"]["total"]


def test_unknown_env_is_refused_with_a_suggestion(tmp_path, capsys):
    assert main(["--env", "CartPol", "--run-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "CartPole" in err
    assert not (tmp_path / "x").exists()


def test_a_used_run_directory_is_refused(rram_run, capsys):
    before = (rram_run / "episodes.jsonl").read_text()
    assert main(FAST + ["--total-steps", "100", "--run-dir", str(rram_run)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (rram_run / "episodes.jsonl").read_text() == before


def test_bad_hyperparameter_is_refused(tmp_path, capsys):
    assert main(FAST + ["--set", "agent.gamma=1.5", "--run-dir", str(tmp_path / "g")]) == 2
    assert "agent.gamma" in capsys.readouterr().err


def test_before_step_hook_sees_every_vector_step(tmp_path):
    # experiments/throughput.py interleaves two runs through this hook
    from rlime.harness.run_dir import RunDirectory
    from rlime.harness.cli import build_parser, config_from_args
    from rlime.harness.train import Trainer

    args = build_parser().parse_args(FAST + ["--backend", "float", "--num-envs", "2",
                                             "--total-steps", "40"])
    cfg, _ = config_from_args(args)
    directory = RunDirectory(tmp_path / "hooked")
    directory.claim()
    seen = []
    summary = Trainer(cfg, directory, progress=False).run(before_step=lambda t: seen.append(t.step))
    directory.release()
    assert seen == list(range(0, 40, 2))
    assert summary["steps"] == 40


def test_summary_is_built_from_explicit_facts_and_only_the_chip_gets_baselines_and_wear():
    import torch

    from rlime.cost.energy import energy_preset, price
    from rlime.harness.attribution import LedgerSplit
    from rlime.harness.run_config import RunConfig
    from rlime.harness.summary import RunFacts, summarise
    from rlime.hw.ledger import LedgerSnapshot

    total = LedgerSnapshot.from_dict({"program": {"set_pulses": 10},
                                      "update": {"set_pulses": 5, "reset_pulses": 3},
                                      "target_sync": {"set_pulses": 4},
                                      "replay": {"rram_memory_write_bits": 100}}, DQN_PHASES)
    setup = LedgerSnapshot.from_dict({"program": {"set_pulses": 10}}, DQN_PHASES)
    zero = LedgerSnapshot.zeros(DQN_PHASES)
    energy = price(total - setup, energy_preset("default"))
    episode = {"return": 9.0, "writes": 8, "target_sync_pulses": 4, "replay_write_bits": 100,
               "energy_j": sum(energy.values()), "energy": energy}

    def facts(on_chip: bool) -> RunFacts:
        return RunFacts(
            cfg=RunConfig(env="CartPole"), env_id="CartPole-v1", protocol={}, mapping_info={},
            steps=20, episodes=[episode], evals=[{"mean_return": 7.0}],
            ledger=LedgerSplit(total, setup, zero, zero, zero), tech=energy_preset("default"),
            replay_bytes=100, replay_bytes_per_transition=40.0, on_chip=on_chip,
            cell_pulse_counts=[torch.tensor([4, 4], dtype=torch.int64)], dead_cell_fraction=0.25,
            wall_s=1.0, sps=20.0, time_split_s={"env": 0.5}, run_dir="runs/x")

    chip, float_ = summarise(facts(True)), summarise(facts(False))
    assert chip["writes_total"] == 18 and chip["steps"] == 20 and chip["eval_score"] == 7.0
    # the writes split: setup programming + updates; syncs and replay bits beside, not in it
    assert (chip["target_sync_pulses_total"], chip["replay_write_bits_total"]) == (4, 100)
    assert (chip["writes_per_episode"], chip["target_sync_pulses_per_episode"],
            chip["replay_write_bits_per_episode"]) == (8.0, 4.0, 100.0)
    assert chip["ledger"]["setup"] == {"program": {"set_pulses": 10}}
    assert chip["ledger"]["in_progress"] == {} and chip["dead_cell_fraction"] == 0.25
    assert {"baselines", "wear", "dead_cell_fraction"} <= set(chip)
    assert set(chip) - set(float_) == {"baselines", "wear", "dead_cell_fraction"}


def test_the_trainer_prices_the_run_s_own_cells_and_tiles(tmp_path):
    from rlime.harness.run_config import resolve
    from rlime.harness.run_dir import RunDirectory
    from rlime.harness.train import Trainer
    cfg = resolve([("run.env", "CartPole"), ("device.g_max_siemens", 2e-5), ("tile.rows", 64)])
    trainer = Trainer(cfg, RunDirectory(tmp_path / "run"), progress=False)
    assert trainer.tech.device.g_max_siemens == 2e-5 and trainer.tech.tile_rows == 64
    assert trainer.tech.sram_bits_per_cell == 48  # CartPole: Adam's m, v and the residual
