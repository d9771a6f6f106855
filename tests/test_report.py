"""Tests for rlime.report: re-pricing a fake run directory, the sweep, bad input, the plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlime.cost.energy import energy_preset, total
from rlime.harness.report import CATEGORIES
from rlime.hw.ledger import LedgerSnapshot
from rlime.drl.phases import DQN_PHASES
from rlime.harness.report import main, reprice_episodes, reprice_summary

EPISODE_LEDGERS = [
    {"act": {"mvm_macs": 2000, "dac_conversions": 400, "adc_conversions": 200,
             "cell_reads": 8000, "shift_adds": 200, "digital_ops": 60}},
    {"forward": {"mvm_macs": 64000, "adc_conversions": 6000, "cell_reads": 120000,
                 "buffer_bits": 20000},
     "backward": {"mvm_macs": 60000, "adc_conversions": 5000, "gradient_macs": 64000},
     "update": {"set_pulses": 1200, "set_pulse_siemens": 6e-3, "reset_pulses": 900,
                "reset_pulse_siemens": 4e-3, "verify_reads": 5000, "optimizer_ops": 4000,
                "buffer_bits": 128000},
     "replay": {"rram_memory_write_bits": 300, "rram_memory_read_bits": 2700}},
    {"forward": {"mvm_macs": 64000, "adc_conversions": 6000, "cell_reads": 120000},
     "update": {"set_pulses": 300, "set_pulse_siemens": 1.5e-3, "verify_reads": 900},
     "target_sync": {"buffer_bits": 128000, "set_pulses": 50, "set_pulse_siemens": 2e-4}},
]


def make_run(tmp_path: Path, preset: str = "default", ledgers=EPISODE_LEDGERS) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text(
        f'[run]\nenv = "CartPole-v1"\nenergy_preset = "{preset}"\nseed = 1\n\n'
        f'[agent]\nbatch_size = 64\n\n[hardware]\npreset = "default"\n', encoding="utf-8")
    records = []
    for i, ledger in enumerate(ledgers):
        snap = LedgerSnapshot.from_dict(ledger, DQN_PHASES)
        records.append({"episode": i, "step": 100 * (i + 1), "return": 10.0 + i,
                        "length": 100, "writes": snap.writes, "energy_j": 0.0,
                        "energy": {}, "ledger": snap.as_dict()})
    records = reprice_episodes(records, energy_preset(preset))  # as the train command does
    (run / "episodes.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return run


def test_report_prints_table_totals_ratios_and_sweep(tmp_path, capsys):
    run = make_run(tmp_path)
    summary = main([str(run), "--sweep", "1,10,100"])
    out = capsys.readouterr().out
    assert "episode" in out and "energy_j" in out and all(c in out for c in CATEGORIES)
    assert "Tuning-cost sweep" in out
    assert "RRAM vs GPU" in out and "RRAM vs ASIC" in out
    ks = [row["k"] for row in summary["tuning_sweep"]]
    assert ks == [1.0, 10.0, 100.0]
    # cheaper tuning -> less RRAM energy -> larger ratios, monotonically
    rram = [row["rram_j"] for row in summary["tuning_sweep"]]
    assert rram[0] > rram[1] > rram[2] > 0
    gpu_ratio = [row["gpu_over_rram"] for row in summary["tuning_sweep"]]
    assert gpu_ratio[0] < gpu_ratio[1] < gpu_ratio[2]
    assert summary["tuning_sweep"][0]["rram_j"] == pytest.approx(summary["energy_j"])
    assert summary["energy_preset"] == "default"
    assert summary["baselines"]["minibatch"] == 64  # from config.toml [agent] batch_size
    assert main([str(run), "--minibatch", "16"])["baselines"]["minibatch"] == 16
    json.dumps(summary, allow_nan=False)  # summary.json-safe


def test_optimistic_reprice_lowers_energy_and_keeps_writes(tmp_path, capsys):
    run = make_run(tmp_path)
    default = main([str(run)])
    optimistic = main([str(run), "--preset", "optimistic"])
    capsys.readouterr()
    assert optimistic["energy_preset"] == "optimistic"
    assert optimistic["energy_j"] < default["energy_j"]
    # the split, unchanged by the preset: weight-programming pulses (update), target-sync
    # pulses and replay bits written to RRAM memory subarrays, each apart
    for result in (default, optimistic):
        assert result["writes"] == 1200 + 900 + 300
        assert result["target_sync_pulses"] == 50 and result["replay_write_bits"] == 300
    records = [json.loads(line) for line in (run / "episodes.jsonl").read_text().splitlines()]
    repriced = reprice_episodes(records, energy_preset("optimistic"))
    for old, new in zip(records, repriced):
        assert new["ledger"] == old["ledger"]
        for key in ("writes", "target_sync_pulses", "replay_write_bits"):
            assert new[key] == old[key]
        assert new["energy_j"] == pytest.approx(sum(new["energy"].values()))
        if old["ledger"].get("update"):
            assert new["energy_j"] < old["energy_j"]
    assert records[1]["energy_j"] == pytest.approx(
        total(LedgerSnapshot.from_dict(EPISODE_LEDGERS[1], DQN_PHASES), energy_preset("default")))


def test_reprice_takes_the_write_split_from_the_ledger_of_older_records():
    # a record written before the split: `writes` summed pulses and replay bits
    snap = LedgerSnapshot.from_dict(EPISODE_LEDGERS[1], DQN_PHASES)
    old = {"episode": 0, "step": 1, "return": 0.0, "writes": 1200 + 900 + 300,
           "weight_writes": 2100, "replay_writes": 300, "ledger": snap.as_dict()}
    (new,) = reprice_episodes([old], energy_preset("default"))
    assert (new["writes"], new["target_sync_pulses"], new["replay_write_bits"]) == (2100, 0, 300)


def test_config_preset_is_used_when_no_flag(tmp_path, capsys):
    run = make_run(tmp_path, preset="pessimistic")
    summary = main([str(run)])
    capsys.readouterr()
    assert summary["energy_preset"] == "pessimistic"


def test_gpu_and_utilisation_flags_are_reported(tmp_path, capsys):
    run = make_run(tmp_path)
    low = main([str(run), "--gpu", "v100", "--utilisation", "0.1"])
    high = main([str(run), "--gpu", "v100", "--utilisation", "0.2"])
    out = capsys.readouterr().out
    assert "v100" in out and "utilisation 0.1" in out
    assert low["baselines"]["gpu_model"]["gpu"]["name"] == "v100"
    assert high["baselines"]["gpu_j"] < low["baselines"]["gpu_j"]


def test_reprice_summary_matches_report(tmp_path, capsys):
    run = make_run(tmp_path)
    from_cli = main([str(run)])
    capsys.readouterr()
    total_snap = sum((LedgerSnapshot.from_dict(l, DQN_PHASES) for l in EPISODE_LEDGERS),
                     LedgerSnapshot.zeros(DQN_PHASES))
    direct = reprice_summary(total_snap, energy_preset("default"), 64)
    assert direct["energy_j"] == pytest.approx(from_cli["energy_j"])
    assert direct["baselines"]["gpu_j"] == pytest.approx(from_cli["baselines"]["gpu_j"])


def test_malformed_line_names_the_line(tmp_path):
    run = make_run(tmp_path)
    path = run / "episodes.jsonl"
    lines = path.read_text().splitlines()
    lines.insert(2, '{"episode": 7, "step": 3, "ledger": {"forward": {"adc_con')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit) as err:
        main([str(run)])
    message = str(err.value.code)
    assert "line 3" in message and "episodes.jsonl" in message


def test_unknown_ledger_kind_names_the_line(tmp_path):
    run = make_run(tmp_path)
    with (run / "episodes.jsonl").open("a") as f:
        f.write(json.dumps({"episode": 9, "ledger": {"forward": {"flux_capacitor": 1}}}) + "\n")
    with pytest.raises(SystemExit) as err:
        main([str(run)])
    assert "line 4" in str(err.value.code) and "flux_capacitor" in str(err.value.code)


def test_missing_ledger_is_an_error(tmp_path):
    run = make_run(tmp_path)
    (run / "episodes.jsonl").write_text(json.dumps({"episode": 0, "energy_j": 1.0}) + "\n")
    with pytest.raises(SystemExit, match="line 1.*ledger"):
        main([str(run)])


def test_missing_run_dir_and_missing_episodes(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        main([str(tmp_path / "nope")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="episodes.jsonl"):
        main([str(empty)])


def test_bad_config_preset_is_an_error(tmp_path):
    run = make_run(tmp_path)
    (run / "config.toml").write_text('[run]\nenergy_preset = "free"\n')
    with pytest.raises(SystemExit, match="free"):
        main([str(run)])


def test_plot_is_written(tmp_path, capsys):
    run = make_run(tmp_path)
    out = tmp_path / "ratio.png"
    main([str(run), "--sweep", "1,10,100,1000", "--plot", str(out)])
    capsys.readouterr()
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000



def test_bad_input_exit_is_a_message_not_a_traceback(tmp_path):
    # SystemExit with a string code: Python prints it to stderr and exits with status 1
    with pytest.raises(SystemExit) as err:
        main([str(tmp_path / "missing")])
    assert isinstance(err.value.code, str) and err.value.code.startswith("rlime.report: ")


# --------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tiny CartPole runs (rram with an evaluation round, and float), 600 steps each."""
    from rlime.harness.cli import main as train
    root = tmp_path_factory.mktemp("runs")
    common = ["--env", "CartPole", "--total-steps", "600", "--seed", "3", "--no-progress",
              "--eval-every", "300", "--eval-episodes", "2", "--set", "agent.learning_starts=200"]
    for backend in ("rram", "float"):
        assert train(common + ["--backend", backend, "--run-dir", str(root / backend)]) == 0
    return root


def test_report_totals_reconcile_with_summary_json(trained, capsys):
    run = trained / "rram"
    stored = json.loads((run / "summary.json").read_text())
    result = main([str(run)])
    out = capsys.readouterr().out
    whole = result["run"]["total"]
    assert whole["writes"] == stored["writes_total"]
    assert whole["energy_j"] == pytest.approx(stored["energy_j_total"], rel=1e-12)
    # setup and evaluation are shown apart, and the parts add up to the whole run
    assert result["run"]["setup"]["writes"] > 0 and result["run"]["eval"]["energy_j"] > 0
    parts = [v for k, v in result["run"].items() if k != "total"]
    for key in ("writes", "target_sync_pulses", "replay_write_bits"):
        assert whole[key] == stored[f"{key}_total"]
        assert sum(p[key] for p in parts) == whole[key]
    # the split is exact: it adds up to every pulse and memory-mode bit of the ledger
    total_ledger = LedgerSnapshot.from_dict(stored["ledger"]["total"], DQN_PHASES)
    assert whole["writes"] + whole["target_sync_pulses"] == (
        total_ledger.count("set_pulses") + total_ledger.count("reset_pulses"))
    assert whole["replay_write_bits"] == total_ledger.count("rram_memory_write_bits") > 0
    assert whole["target_sync_pulses"] > 0 and result["run"]["episodes"]["writes"] > 0
    assert sum(p["energy_j"] for p in parts) == pytest.approx(whole["energy_j"], rel=1e-12)
    # the baselines compare the same training workload summary.json compares
    assert result["baselines"]["rram_j"] == pytest.approx(stored["baselines"]["rram_j"], rel=1e-12)
    assert f"{stored['writes_total']:,}" in out and "note:" not in out
    assert "target-sync pulses" in out and "replay write bits" in out


def test_report_shows_a_short_table_by_default(trained, capsys):
    episodes = len((trained / "rram" / "episodes.jsonl").read_text().splitlines())
    assert episodes > 12
    main([str(trained / "rram")])
    assert f"(last 10 of {episodes} episodes)" in capsys.readouterr().out
    main([str(trained / "rram"), "--max-rows", "0"])
    out = capsys.readouterr().out
    assert "episodes)" not in out and "energy_j" not in out  # no per-episode table
    main([str(trained / "rram"), "--all-episodes"])
    out = capsys.readouterr().out
    assert "(last" not in out and out.count("\n") > episodes


def test_report_on_a_float_run_says_there_is_nothing_to_price(trained, capsys):
    main([str(trained / "float")])
    out = capsys.readouterr().out
    assert "float-backend run counts no hardware operations" in out and "undefined" not in out


def test_report_without_summary_json_counts_episodes_and_says_so(trained, tmp_path, capsys):
    import shutil
    run = tmp_path / "copy"
    shutil.copytree(trained / "rram", run)
    (run / "summary.json").unlink()
    result = main([str(run)])
    out = capsys.readouterr().out
    assert "note:" in out and "only the finished episodes are counted" in out
    assert set(result["run"]) == {"episodes", "total"}


def test_report_prices_the_run_s_own_cells(trained, tmp_path):
    """A run whose device has other conductances is re-priced with those cells' read energy."""
    import shutil
    run = tmp_path / "wide"
    shutil.copytree(trained / "rram", run)
    text = (run / "config.toml").read_text()
    assert "g_max_siemens = 1e-05" in text
    (run / "config.toml").write_text(text.replace("g_max_siemens = 1e-05", "g_max_siemens = 2e-05"))
    same, wide = main([str(trained / "rram"), "--max-rows", "0"]), main([str(run), "--max-rows", "0"])
    # forward energy grows by exactly the cell reads of the forward phases at the wider G_mid
    reads = sum(same["ledger"].get(p, {}).get("cell_reads", 0) for p in ("act", "forward", "target"))
    g_mid_step = (1e-6 + 2e-5) / 2 - (1e-6 + 1e-5) / 2
    read_v, read_s = 0.5, 10e-9  # the default preset's read pulse
    assert reads > 0
    assert wide["energy"]["forward"] - same["energy"]["forward"] == pytest.approx(
        reads * read_v**2 * g_mid_step * read_s, rel=1e-9)
    assert wide["energy"]["gradient"] == pytest.approx(same["energy"]["gradient"], rel=1e-12)


def test_claims_table_sets_the_paper_beside_the_runs(trained, capsys):
    result = main([str(trained / "rram"), str(trained / "float"), "--claims"])
    out = capsys.readouterr().out
    rows = {r["claim"]: r for r in result["claims"]}
    gpu = rows["deep RL: RRAM vs GPU"]
    single = main([str(trained / "rram"), "--max-rows", "0"])
    capsys.readouterr()
    assert gpu["paper"] == "126x" and gpu["rlime"] == f"{single['baselines']['gpu_over_rram']:,.1f}x"
    assert "1 float run(s) left out" in gpu["configuration"]
    assert rows["supervised learning: RRAM vs DaDianNao"]["rlime"] == "not measured"
    cheap = rows["with cheaper tuning: RRAM vs ASIC"]
    assert f"{single['tuning_sweep'][-1]['asic_over_rram']:,.1f}x" in cheap["rlime"]
    assert out.startswith("| claim | paper | rlime |") and out.count("\n") == 5


def test_several_run_dirs_need_claims(trained):
    with pytest.raises(SystemExit, match="several with --claims"):
        main([str(trained / "rram"), str(trained / "float")])
