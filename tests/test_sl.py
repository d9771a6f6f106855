"""Supervised learning in memory (`python -m rlime.sl`): the ideal preset against float PyTorch,
the MNIST IDX reader on files the tests write, clear errors for bad --data, the run-directory
contract, resume, update modes, the suite and the claims row."""

from __future__ import annotations

import gzip
import json
import struct
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlime.common.errors import ConfigError
from rlime.harness.run_dir import RunDirectory
from rlime.sl.cli import main
from rlime.sl.config import resolve
from rlime.sl.data import load_dataset, read_idx
from rlime.sl.nets import build_network
from rlime.sl.trainer import SLTrainer

FAST = ["--no-progress", "--set", "train.hidden=[16]"]


def _records(run_dir, name="epochs.jsonl"):
    return [json.loads(line) for line in (run_dir / name).read_text().splitlines()]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sl") / "digits"
    assert main(["--dataset", "digits", "--epochs", "2", "--run-dir", str(run_dir), *FAST]) == 0
    return run_dir


# --------------------------------------------------------------------------- ideal == float


def _train(tmp_path, name, settings):
    cfg = resolve([("run.dataset", "digits"), ("run.epochs", 2), ("run.threads", 1), *settings])
    trainer = SLTrainer(cfg, RunDirectory(tmp_path / name), progress=False)
    trainer.run_dir.path.mkdir()
    trainer.run()
    return trainer


@pytest.mark.parametrize("network, mode", [("mlp", "time"), ("lenet", "mixed-precision")])
def test_ideal_preset_learns_digits_exactly_as_float_pytorch(tmp_path, network, mode):
    # every preset bounds the weights at +-weight_headroom x max|W0| (2 by default); float SGD
    # grows digits' weights to 3.4 x max|W0| in two epochs, so the ideal chip gets room for them
    # (8). Its 2**24 levels (float32's resolution of a conductance) are then 2 x 8 x max|W0| /
    # 2**24 apart; in TIME's mode a change below half a level is dropped, which the MLP never
    # meets but LeNet's plateau does (its weights end up to 5e-4 from float's after two epochs,
    # though losses and accuracies still agree): LeNet is held to the bridge with a residual,
    # which keeps those remainders (then within 2e-7)
    settings = [("train.network", network), ("run.update_mode", mode)]
    ideal = _train(tmp_path, "ideal", [("run.preset", "ideal"), ("tile.weight_headroom", 8.0),
                                       *settings])
    floating = _train(tmp_path, "float", [("run.backend", "float"), *settings])
    assert ideal.backend.on_chip and not floating.backend.on_chip
    assert ideal.cfg.mode_in_effect == mode
    for a, b in zip(ideal.records, floating.records, strict=True):
        assert a["test_accuracy"] == b["test_accuracy"]
        assert a["train_accuracy"] == b["train_accuracy"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-5)
        assert a["writes"] > 0 and b["writes"] == 0   # the chip really tuned every update
    for p, q in zip(ideal.net.parameters(), floating.net.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
    # and the float backend is plain PyTorch: the same training written out here
    data = load_dataset("digits")
    torch.manual_seed(1)
    net = build_network(network, data.input_shape, 10, (64,))
    opt = torch.optim.SGD(net.parameters(), lr=floating.cfg.train.learning_rate)
    for epoch in range(2):
        order = torch.from_numpy(np.random.default_rng([1, epoch]).permutation(len(data.train_y)))
        for batch in order.split(32):
            opt.zero_grad()
            F.cross_entropy(net(data.train_x[batch]), data.train_y[batch]).backward()
            opt.step()
    with torch.no_grad():
        accuracy = int((net(data.test_x).argmax(1) == data.test_y).sum()) / len(data.test_y)
    assert accuracy == floating.records[-1]["test_accuracy"]
    if network == "mlp":
        assert accuracy > 0.5   # two epochs of SGD learn digits far above chance


# --------------------------------------------------------------------------- MNIST files


def _idx(path, array: np.ndarray, compress: bool = False) -> None:
    raw = struct.pack(f">BBBB{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape)
    raw += array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(raw)


def _mnist_dir(folder, n_train=40, n_test=20, side=28):
    rng = np.random.default_rng(0)
    folder.mkdir()
    parts = {"train": n_train, "t10k": n_test}
    arrays = {}
    for part, n in parts.items():
        arrays[f"{part}_x"] = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
        arrays[f"{part}_y"] = rng.integers(0, 10, n, dtype=np.uint8)
        _idx(folder / f"{part}-images-idx3-ubyte.gz", arrays[f"{part}_x"], compress=True)
        _idx(folder / f"{part}-labels-idx1-ubyte", arrays[f"{part}_y"])
    return arrays


def test_idx_reader_reads_a_tiny_file_written_here(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _idx(tmp_path / "img", images)
    _idx(tmp_path / "lab.gz", np.array([7, 1], dtype=np.uint8), compress=True)
    assert (read_idx(tmp_path / "img") == images).all()
    assert read_idx(tmp_path / "lab.gz").tolist() == [7, 1]
    (tmp_path / "bad").write_bytes(b"\x08\x03\x00\x00" + bytes(8))
    with pytest.raises(ConfigError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 5) + bytes(3))
    with pytest.raises(ConfigError, match="holds 3"):
        read_idx(tmp_path / "short")


def test_mnist_is_read_from_idx_files_and_npz_and_trains(tmp_path, capsys):
    arrays = _mnist_dir(tmp_path / "mnist")
    data = load_dataset("mnist", str(tmp_path / "mnist"))
    assert data.input_shape == (1, 28, 28) and len(data.train_y) == 40 and len(data.test_y) == 20
    assert (data.train_x[:, 0].numpy() == arrays["train_x"]).all()
    assert (data.test_y.numpy() == arrays["t10k_y"]).all()
    np.savez(tmp_path / "mnist.npz", x_train=arrays["train_x"], y_train=arrays["train_y"],
             x_test=arrays["t10k_x"], y_test=arrays["t10k_y"])
    again = load_dataset("mnist", str(tmp_path / "mnist.npz"))
    assert torch.equal(again.train_x, data.train_x) and torch.equal(again.test_y, data.test_y)
    run_dir = tmp_path / "run"
    assert main(["--dataset", "mnist", "--data", str(tmp_path / "mnist"), "--epochs", "1",
                 "--run-dir", str(run_dir), *FAST]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["protocol"]["image_shape"] == [1, 28, 28] and summary["steps"] == 2
    assert tomllib.loads((run_dir / "config.toml").read_text())["run"]["data"] == \
        str(tmp_path / "mnist")


@pytest.mark.parametrize("case", ["no-data", "missing-file", "no-dir", "digits-with-data"])
def test_bad_data_is_refused_before_anything_starts(tmp_path, capsys, case):
    if case == "missing-file":
        _mnist_dir(tmp_path / "mnist")
        (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    args = {"no-data": ["--dataset", "mnist"],
            "missing-file": ["--dataset", "mnist", "--data", str(tmp_path / "mnist")],
            "no-dir": ["--dataset", "mnist", "--data", str(tmp_path / "nowhere")],
            "digits-with-data": ["--dataset", "digits", "--data", str(tmp_path)]}[case]
    assert main([*args, "--run-dir", str(tmp_path / "run"), *FAST]) == 2
    err = capsys.readouterr().err
    expected = {"no-data": "--data DIR", "no-dir": "no such directory",
                "missing-file": "t10k-labels-idx1-ubyte or t10k-labels.idx1-ubyte",
                "digits-with-data": "bundled with scikit-learn"}[case]
    assert expected in err
    if case == "missing-file":
        assert "train-images-idx3-ubyte" in err   # the expected names are listed
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- the run directory


def test_run_directory_holds_every_file_of_the_contract(digits_run):
    config = tomllib.loads((digits_run / "config.toml").read_text())
    assert {"run", "train", "hardware", "protocol"} <= set(config)
    assert config["run"]["dataset"] == "digits" and config["train"]["hidden"] == [16]
    assert config["protocol"]["train_images"] + config["protocol"]["test_images"] == 1797
    epochs = _records(digits_run)
    assert [e["epoch"] for e in epochs] == [1, 2]
    for e in epochs:
        assert {"epoch", "step", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                "writes", "energy_j", "energy", "eval_energy_j", "ledger"} <= set(e)
        assert isinstance(e["writes"], int) and e["writes"] > 0
        assert {"forward", "backward", "gradient", "tuning", "data", "static"} <= set(e["energy"])
        assert e["energy_j"] == pytest.approx(sum(e["energy"].values()))
    summary = json.loads((digits_run / "summary.json").read_text())
    assert summary["kind"] == "sl" and summary["epochs"] == 2 and summary["steps"] == 90
    assert summary["final_score"] == pytest.approx(100 * epochs[-1]["test_accuracy"])
    assert summary["writes_total"] == summary["writes_setup"] + sum(e["writes"] for e in epochs)
    base = summary["baselines"]
    assert base["gpu_over_rram"] == pytest.approx(base["gpu_j"] / base["rram_j"])
    assert base["asic_over_rram"] == pytest.approx(base["asic_j"] / base["rram_j"])
    assert base["per_epoch"]["count"] == 2 and base["gpu_band"]["low"] <= base["gpu_band"]["high"]
    assert base["gpu_model"]["launches"] > 0                     # classifier kernel launches
    assert summary["wear"]["epochs"] == 2 and "epochs_to_endurance" in summary["wear"]
    assert (digits_run / "checkpoint.pt").exists()
    tags = EventAccumulator(str(digits_run)).Reload().Tags()["scalars"]
    assert {"charts/test_accuracy", "losses/train_loss", "device/epoch_writes",
            "device/epoch_energy_j", "energy/tuning", "energy/data"} <= set(tags)


def test_resume_continues_to_the_uninterrupted_run(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ["--dataset", "digits", *FAST, "--threads", "1"]
    assert main([*common, "--epochs", "3", "--run-dir", str(straight)]) == 0
    # paused in the middle of epoch 2, then resumed with a raised budget
    assert main([*common, "--epochs", "2", "--session-steps", "70", "--run-dir", str(split)]) == 0
    assert json.loads((split / "summary.json").read_text())["steps"] == 70
    assert main(["--resume", str(split), "--epochs", "3", "--no-progress"]) == 0
    a, b = _records(straight), _records(split)
    assert [e["epoch"] for e in b] == [1, 2, 3]

    def same(record):
        return {k: v for k, v in record.items() if k != "wall_s"}

    assert [same(e) for e in a] == [same(e) for e in b]
    sa = json.loads((straight / "summary.json").read_text())
    sb = json.loads((split / "summary.json").read_text())
    assert sa["ledger"] == sb["ledger"] and sa["baselines"]["rram_j"] == sb["baselines"]["rram_j"]


def test_update_modes_set_the_rule_and_the_residual(tmp_path, capsys):
    time_cfg = resolve([("run.dataset", "digits"), ("run.update_mode", "time")])
    assert time_cfg.train.update_rule == "sgd" and not time_cfg.hardware.tuning.residual
    mixed = resolve([("run.dataset", "digits"), ("run.update_mode", "mixed-precision")])
    assert mixed.hardware.tuning.residual and mixed.mode_in_effect == "mixed-precision"
    assert main(["--dataset", "digits", "--update-mode", "time", "--set", "tuning.residual=true",
                 "--run-dir", str(tmp_path / "x"), *FAST]) == 2
    assert "run.update_mode = 'time' means" in capsys.readouterr().err
    assert main(["--dataset", "digits", "--network", "lenet", "--help-settings"]) == 0
    out = capsys.readouterr().out
    assert "train.learning_rate = 0.3" in out and "train.network = \"lenet\"" in out


# --------------------------------------------------------------------------- suite and claims


def test_paper_sl_suite_parses_into_supervised_entries():
    from rlime.bench.suite import SuiteError, load_suite, parse_suite
    from rlime.sl.cli import build_parser, config_from_args

    suite = load_suite("paper_sl")
    assert suite.kind == "sl" and len(suite.entries) == 18   # 2 nets x (2 modes rram + float) x 3
    rram = [e for e in suite.entries if e.backend == "rram"]
    assert {(e.env_id, e.mode) for e in rram} == {
        (f"digits/{n}", m) for n in ("mlp", "lenet") for m in ("time", "mixed-precision")}
    assert {e.total_steps for e in suite.entries} == {20}      # epochs, from sl_defaults.toml
    for e in suite.entries:   # each entry's command resolves to the entry's configuration
        assert e.command.module == "rlime.sl" and e.command.budget_flag == "--epochs"
        assert config_from_args(build_parser().parse_args(list(e.argv)))[0] == e.config
    time = next(e for e in rram if e.mode == "time")
    assert time.config.mode_in_effect == "time" and not time.config.hardware.tuning.residual
    lenet = next(e for e in suite.entries if e.env_id == "digits/lenet")
    assert lenet.config.train.learning_rate == 0.3          # [digits.lenet.train]
    for text, key in (('[matrix]\ndatasets = ["cifar"]\n', "matrix.datasets"),
                      ('[matrix]\ndatasets = ["digits"]\nenvs = ["CartPole"]\n', "matrix"),
                      ('[matrix]\ndatasets = ["digits"]\n[settings]\n"run.update_mode" = "time"\n',
                       "matrix.update_modes"),
                      ('[matrix]\ndatasets = ["digits"]\n[budget]\ntotal_steps = 5\n', "budget"),
                      ('[matrix]\ndatasets = ["digits"]\n[env.digits]\nepochs = 2\n', "env")):
        with pytest.raises(SuiteError, match=key):
            parse_suite(text)


def test_bench_runs_a_supervised_suite_resumes_it_and_ranks_it(tmp_path):
    from rlime.bench import runner as bench
    from rlime.bench.suite import load_suite

    suite_file = tmp_path / "sl.toml"
    suite_file.write_text('[matrix]\ndatasets = ["digits"]\nbackends = ["rram", "float"]\n'
                          'update_modes = ["time"]\n[budget]\nepochs = 1\n'
                          '[settings]\n"train.hidden" = [16]\n')
    out = tmp_path / "out"
    assert bench.main([str(suite_file), "--out", str(out), "--workers", "2", "--no-progress",
                       "--no-plots"]) == 0
    entries = load_suite(suite_file).entries
    assert [bench.plan(e, out).action for e in entries] == ["skip", "skip"]
    longer = type(entries[0])(**{**entries[0].__dict__, "total_steps": 2})
    job = bench.plan(longer, out)
    assert job.action == "resume" and job.argv[2:4] == ("--epochs", "2")
    board = json.loads((out / "leaderboard.json").read_text())
    rows = board["tables"][0]["rows"]
    assert board["tables"][0]["table"] == "digits/mlp"
    assert {r["config"] for r in rows} == {"float", "rram default/gradual/time"}
    chip = next(r for r in rows if r["backend"] == "rram")
    summary = json.loads((out / entries[0].name / "summary.json").read_text())
    assert chip["asic_over_rram"] == pytest.approx(summary["baselines"]["asic_over_rram"])
    assert chip["final_scores"] == [summary["final_score"]]
    assert "ASIC/RRAM" in (out / "leaderboard.md").read_text()


def test_claims_row_is_filled_from_a_supervised_run(digits_run, capsys):
    from rlime.harness.report import main as report

    result = report([str(digits_run), "--claims"])
    rows = {r["claim"]: r for r in result["claims"]}
    row = rows["supervised learning: RRAM vs DaDianNao"]
    summary = json.loads((digits_run / "summary.json").read_text())
    assert row["paper"] == "5.3x"
    assert row["rlime"] == f"{summary['baselines']['asic_over_rram']:,.1f}x"
    assert "digits/mlp mixed-precision" in row["configuration"] and digits_run.name in row["configuration"]
    assert "without it ASIC/RRAM is" in row["drivers"]
    assert rows["deep RL: RRAM vs GPU"]["rlime"] == "not measured"
    assert "| supervised learning: RRAM vs DaDianNao | 5.3x |" in capsys.readouterr().out
