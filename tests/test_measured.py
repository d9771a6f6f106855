"""Tests for measured devices (rlime.hw.measured, `device.response = "measured"`).

The bundled table is the default preset's closed form tabulated by rlime itself
(experiments/device_fidelity.py --write-table), so a measured device built from it must behave
as that closed form. Statistical checks use M = 20 000 cells per model, each model with its own
seeded generator, and compare the two samples at every pulse within Z = 5 standard errors of
the difference: for means sqrt(s1^2 / M + s2^2 / M); for standard deviations
sqrt(se1^2 + se2^2) with se = s sqrt((kurtosis - 1) / (4 M)) (the large-sample standard error
of a sample standard deviation; s / sqrt(2 M) for a Gaussian). 5 SE over the ~500 comparisons
of a test leaves a false alarm below 1e-3.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch

from experiments.device_fidelity import closed_form_table, fitted_label
from rlime.common.errors import ConfigError
from rlime.harness.cli import main
from rlime.harness.run_config import RunConfig, resolve
from rlime.hw import measured
from rlime.hw.config import DeviceConfig, preset
from rlime.hw.device import CellSet, PulseModel, fresh_cells
from rlime.hw.ledger import Ledger
from rlime.hw.tuning import Tuner
from envs import resolve_env

M = 20_000
Z = 5.0
CPU = torch.device("cpu")
BUNDLED = measured.BUNDLED
D2D = {"d2d_step_sigma": 0.1, "d2d_bound_sigma": 0.05}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measured_cfg(path: Path = BUNDLED, **extra) -> DeviceConfig:
    return DeviceConfig(response="measured", table=str(path), **extra)


def assert_same_distribution(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """Means and standard deviations of two independent samples agree within Z SE."""
    a, b = a.double(), b.double()
    se_mean = math.sqrt(a.var() / a.numel() + b.var() / b.numel())
    assert abs(a.mean() - b.mean()) <= Z * se_mean + 1e-12, \
        f"{what}: means {a.mean():.6g} vs {b.mean():.6g} (+- {Z * se_mean:.3g})"

    def se_std(x: torch.Tensor) -> float:
        centred = x - x.mean()
        kurtosis = float((centred**4).mean() / (centred**2).mean() ** 2) if x.std() > 0 else 3.0
        return float(x.std()) * math.sqrt(max(kurtosis - 1, 0.0) / (4 * x.numel()))

    se = math.hypot(se_std(a), se_std(b))
    assert abs(a.std() - b.std()) <= Z * se + 1e-12, \
        f"{what}: stds {a.std():.6g} vs {b.std():.6g} (+- {Z * se:.3g})"


# --------------------------------------------------------------------------- the round trip


@pytest.mark.parametrize("d2d", [False, True], ids=["d2d-off", "d2d-on"])
def test_measured_table_of_the_default_preset_reproduces_its_closed_form(d2d):
    """Mean and spread of G after each of the 127 SET pulses from Gmin and RESET pulses from
    Gmax, one pulse at a time, with and without device-to-device variation."""
    extra = D2D if d2d else {}
    closed, table = DeviceConfig(**extra), measured_cfg(**extra)
    assert (table.g_min_siemens, table.g_max_siemens, table.levels) == \
        (closed.g_min_siemens, closed.g_max_siemens, closed.levels)
    for up in (True, False):
        runs = []
        for cfg, seed in ((closed, 1), (table, 2)):
            g = torch.Generator().manual_seed(seed)
            model, cells = PulseModel(cfg), fresh_cells(M // 2, cfg, g, CPU)
            cells.u = (cells.u_min if up else cells.u_max).clone()
            trace = []
            for _ in range(cfg.levels - 1):
                model.apply(cells, torch.ones(M), torch.full((M,), up), g)
                trace.append(cells.u.clone())
            runs.append(trace)
        for k, (a, b) in enumerate(zip(*runs), 1):
            assert_same_distribution(a, b, f"{'SET' if up else 'RESET'} pulse {k}")


@pytest.mark.parametrize("scheme, compiled", [("write-verify", True), ("write-verify", False),
                                              ("gradual", True), ("gradual", False),
                                              ("open-loop", True)])
def test_the_tuner_programs_the_measured_device_as_its_closed_form(scheme, compiled, monkeypatch):
    """The controller, unchanged: final error (levels) and pulses per cell of two tuning
    events to random targets agree between the two models (d2d on), with the verify loop
    compiled and as tensor rounds. Open-loop is compared for its pulse count only: a closed
    form's burst adds its noise at the end, a measured device takes its pulses one by one, so
    their errors differ where clipping at the bounds acts."""
    monkeypatch.setattr(Tuner, "compiled", compiled)
    m = 8_000
    outcomes = []
    for response, seed in (({}, 3), ({"device.response": "measured",
                                        "device.table": str(BUNDLED)}, 4)):
        cfg = preset("default").with_overrides({"tuning.scheme": scheme, **response,
                                                **{f"device.{k}": v for k, v in D2D.items()}})
        g = torch.Generator().manual_seed(seed)
        model = PulseModel(cfg.device)
        tuner = Tuner(cfg.tuning, model, g, Ledger())
        cells = fresh_cells(m // 2, cfg.device, g, CPU)
        for _ in range(2):
            target = torch.randint(0, 128, (m,), generator=g).float() / 127
            tuner.tune(cells, target)
        outcomes.append(((cells.u - target) * 127, cells.pulses.float()))
    (error_a, pulses_a), (error_b, pulses_b) = outcomes
    assert_same_distribution(pulses_a, pulses_b, f"{scheme}: pulses per cell")
    if scheme != "open-loop":
        assert_same_distribution(error_a, error_b, f"{scheme}: final error (levels)")


def noise_free_copy(tmp_path: Path) -> Path:
    """The bundled table without its step_sigma_siemens column: one cycle, so no noise."""
    path = tmp_path / "noise_free.csv"
    lines = [line.rsplit(",", 1)[0] for line in BUNDLED.read_text().splitlines()
             if not line.startswith("#")]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_open_loop_belief_walks_the_averaged_curve(tmp_path):
    """The controller's model of a nominal cell is the noise-free physics: from the k-th point
    of a curve, nominal_pulses to the (k + n)-th is n, and predict after n pulses lands where
    n noise-free pulses (`apply`) take a nominal cell: on the (k + n)-th point."""
    cfg = measured_cfg(noise_free_copy(tmp_path))
    model, table = PulseModel(cfg), measured.load(cfg.table)
    n = 40
    for up, curve in ((True, table.potentiation), (False, table.depression)):
        p = ((torch.tensor(curve.siemens, dtype=torch.float64) - table.g_min_siemens)
             / (table.g_max_siemens - table.g_min_siemens)).float()
        start, end, pulses = p[:-n], p[n:], torch.full((len(p) - n,), float(n))
        count, going_up = model.nominal_pulses(start, end, 1e6)
        assert torch.equal(count, pulses) and bool((going_up == up).all())
        believed = model.predict(start, pulses, going_up)
        torch.testing.assert_close(believed, end, atol=1e-5, rtol=0)
        cells = CellSet(u=start.clone(), u_min=torch.zeros_like(start),
                        u_max=torch.ones_like(start), step_scale=torch.ones_like(start),
                        stuck=torch.zeros_like(going_up), pulses=torch.zeros(len(start),
                                                                            dtype=torch.int64))
        model.apply(cells, pulses, going_up, torch.Generator())
        torch.testing.assert_close(cells.u, end, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- the bundled file


def test_bundled_table_is_what_the_generator_makes_of_the_default_preset(tmp_path):
    made = tmp_path / "made.csv"
    made.write_text(closed_form_table(DeviceConfig()))
    bundled, regenerated = measured.load(BUNDLED), measured.load(made)
    for ours, theirs in zip(bundled.curves, regenerated.curves):
        assert len(ours.siemens) == len(theirs.siemens) == 128
        for a, b in zip(ours.siemens + ours.step_sigma, theirs.siemens + theirs.step_sigma):
            assert a == pytest.approx(b, rel=1e-12)


def test_bundled_table_ships_as_package_data():
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '"hw/data/*.csv"' in pyproject and BUNDLED.is_file()


def test_fitting_the_bundled_table_recovers_the_default_labels():
    table = measured.load(BUNDLED)
    (up, rms_up), (down, rms_down) = fitted_label(table, True), fitted_label(table, False)
    assert up == pytest.approx(0.04, abs=2e-3) and down == pytest.approx(-0.63, abs=2e-3)
    assert rms_up < 0.01 and rms_down < 0.01  # levels


# --------------------------------------------------------------------------- averaging


def test_cycles_are_averaged_and_their_step_spread_estimated(tmp_path):
    rows = ["direction,cycle,pulse,conductance_siemens"]
    up = [[1e-6, 2e-6, 3.2e-6, 4e-6], [1.2e-6, 2.4e-6, 3.0e-6, 4.4e-6],
          [1.1e-6, 2.0e-6, 3.1e-6, 4.2e-6]]
    down = [[4e-6, 3e-6, 2e-6], [4.2e-6, 3.4e-6, 1.8e-6]]
    for direction, cycles in (("potentiation", up), ("depression", down)):
        rows += [f"{direction},{c + 1},{k},{g}" for c, curve in enumerate(cycles)
                 for k, g in enumerate(curve)]
    path = tmp_path / "cycles.csv"
    path.write_text("\n".join(rows) + "\n")
    table = measured.load(path)
    mean = torch.tensor(up, dtype=torch.float64).mean(0)
    steps = torch.diff(torch.tensor(up, dtype=torch.float64), dim=1)
    assert table.potentiation.siemens == pytest.approx(mean.tolist())
    assert table.potentiation.step_sigma == pytest.approx(steps.std(0).tolist())
    assert table.potentiation.cycles == 3 and table.levels == 4
    assert (table.g_min_siemens, table.g_max_siemens) == (pytest.approx(1.1e-6),
                                                          pytest.approx(4.2e-6))


def test_given_step_sigmas_combine_as_the_root_mean_square(tmp_path):
    rows = ["direction,cycle,pulse,conductance_siemens,step_sigma_siemens"]
    for cycle, sigma in ((1, 1e-7), (2, 3e-7)):
        rows += [f"potentiation,{cycle},{k},{g},{sigma if k < 2 else ''}"
                 for k, g in enumerate((1e-6, 2e-6, 3e-6))]
        rows += [f"depression,{cycle},{k},{g},{sigma}" for k, g in enumerate((3e-6, 2e-6, 1e-6))]
    path = tmp_path / "sigma.csv"
    path.write_text("\n".join(rows) + "\n")
    expected = math.sqrt((1e-14 + 9e-14) / 2)
    assert measured.load(path).potentiation.step_sigma == pytest.approx([expected] * 2)


# --------------------------------------------------------------------------- bad files

GOOD_UP = ["potentiation,0,1e-06", "potentiation,1,2e-06", "potentiation,2,3e-06"]
GOOD_DOWN = ["depression,0,3e-06", "depression,1,2e-06", "depression,2,1e-06"]
HEADER = "direction,pulse,conductance_siemens"


def _table(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


BAD = {
    "non-monotonic": (_table("potentiation,0,1e-06", "potentiation,1,3e-06",
                             "potentiation,2,2e-06", *GOOD_DOWN),
                      "potentiation pulse 1 -> 2", "must rise with every pulse"),
    "negative conductance": (_table("potentiation,0,-1e-06", *GOOD_UP[1:], *GOOD_DOWN),
                             "line 2", "conductance_siemens = -1e-06 is not allowed"),
    "too few points": (_table(*GOOD_UP[:2], *GOOD_DOWN), "potentiation cycle 1",
                       "at least 3"),
    "microsiemens": (_table("potentiation,0,1.0", "potentiation,1,2.0", "potentiation,2,3.0",
                            *GOOD_DOWN), "line 2", "looks like microsiemens"),
    "missing section": (_table(*GOOD_UP), "depression section is missing", "depression"),
    "unknown column": (_table(*GOOD_UP, *GOOD_DOWN, header=HEADER + ",temperature"),
                       "the header", "column 'temperature' is not allowed"),
    "missing column": (_table("potentiation,0", header="direction,pulse"), "the header",
                       "conductance_siemens are missing"),
    "not a number": (_table("potentiation,0,1e-06", "potentiation,1,two",
                            *GOOD_UP[2:], *GOOD_DOWN), "line 3", "'two' is not a number"),
    "unknown direction": (_table(*GOOD_UP, "ltd,0,3e-06"), "line 5",
                          "choose potentiation or depression"),
    "pulse gap": (_table(GOOD_UP[0], GOOD_UP[2], "potentiation,3,4e-06", *GOOD_DOWN),
                  "potentiation cycle 1", "pulse 1 is missing"),
    "pulse twice": (_table(*GOOD_UP, GOOD_UP[1], *GOOD_DOWN), "line 5",
                    "has pulse 1 already"),
    "unequal cycles": (_table(*(f"potentiation,1,{r.split(',', 1)[1]}" for r in GOOD_UP),
                              "potentiation,2,0,1e-06", "potentiation,2,1,2e-06",
                              "potentiation,2,2,3e-06", "potentiation,2,3,4e-06",
                              *(f"depression,1,{r.split(',', 1)[1]}" for r in GOOD_DOWN),
                              header="direction,cycle,pulse,conductance_siemens"),
                       "potentiation cycle 2", "every cycle of a direction"),
    "negative sigma": (_table(*(r + ",-1e-07" for r in GOOD_UP), *(r + ",1e-07" for r in GOOD_DOWN),
                              header=HEADER + ",step_sigma_siemens"),
                       "line 2", "step_sigma_siemens = -1e-07 is not allowed"),
    "sigma missing on a row": (_table(GOOD_UP[0] + ",1e-07", GOOD_UP[1] + ",", GOOD_UP[2] + ",",
                                      *(r + ",1e-07" for r in GOOD_DOWN),
                                      header=HEADER + ",step_sigma_siemens"),
                               "line 3", "step_sigma_siemens is empty"),
    "wrong column count": (_table(GOOD_UP[0] + ",7", *GOOD_UP[1:], *GOOD_DOWN), "line 2",
                           "4 values for the 3 columns"),
    "empty": ("# only a comment\n", "holds no header", "direction,cycle,pulse"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_table_is_refused_naming_file_row_value_and_rule(kind, tmp_path):
    text, where, what = BAD[kind]
    path = tmp_path / f"{kind.replace(' ', '_')}.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        measured.load(path)
    message = str(err.value)
    assert str(path) in message and where in message and what in message, message


def test_a_missing_table_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        measured_cfg(tmp_path / "nowhere.csv")


# --------------------------------------------------------------------------- configuration


def test_measured_device_takes_range_levels_path_and_hash_from_its_table(tmp_path):
    cfg = measured_cfg(Path("rlime/hw/data/default_preset.csv"), levels=64, g_max_siemens=1e-4)
    assert Path(cfg.table).is_absolute() and cfg.table == str(BUNDLED.resolve())
    assert cfg.table_sha256 == sha256_of(BUNDLED)
    assert (cfg.g_min_siemens, cfg.g_max_siemens, cfg.levels) == (1e-6, 1e-5, 128)


def test_table_and_response_must_go_together():
    with pytest.raises(ConfigError, match="needs the path"):
        DeviceConfig(response="measured")
    with pytest.raises(ConfigError, match='only device.response = "measured" reads a table'):
        DeviceConfig(table=str(BUNDLED))


def test_a_changed_table_is_refused_on_reload(tmp_path):
    path = tmp_path / "device.csv"
    path.write_text(BUNDLED.read_text())
    cfg = resolve([("run.env", "CartPole"), ("device.response", "measured"),
                   ("device.table", str(path))])
    text = cfg.to_toml(resolve_env("CartPole"))
    assert f'table_sha256 = "{sha256_of(path)}"' in text
    assert RunConfig.from_toml(text) == cfg
    path.write_text(BUNDLED.read_text().replace("9.910096814013325e-06", "9.9101e-06"))
    with pytest.raises(ConfigError, match="has changed since this configuration was recorded"):
        RunConfig.from_toml(text)


def test_a_new_table_given_over_a_measured_configuration_is_hashed_anew(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text(BUNDLED.read_text().replace("9.910096814013325e-06", "9.9101e-06"))
    base = preset("default").with_overrides({"device.response": "measured",
                                             "device.table": str(BUNDLED)})
    moved = base.with_overrides({"device.table": str(other)})
    assert moved.device.table_sha256 == sha256_of(other)


def test_resuming_a_run_whose_table_changed_is_an_error_that_says_so(tmp_path, capsys):
    path = tmp_path / "device.csv"
    path.write_text(BUNDLED.read_text())
    run_dir = tmp_path / "run"
    fast = ["--env", "CartPole", "--no-progress", "--threads", "1",
            "--set", "agent.hidden=[16, 16]", "--set", "agent.learning_starts=100",
            "--set", "agent.train_freq=50", "--set", "agent.gradient_steps=2",
            "--eval-episodes", "0", "--checkpoint-every", "150",
            "--set", "device.response=measured", "--set", f"device.table={path}"]
    assert main(fast + ["--total-steps", "300", "--session-steps", "150",
                        "--run-dir", str(run_dir)]) == 0
    assert sha256_of(path) in (run_dir / "config.toml").read_text()
    path.write_text(BUNDLED.read_text().replace("9.910096814013325e-06", "9.9101e-06"))
    capsys.readouterr()
    assert main(["--resume", str(run_dir), "--no-progress"]) == 2
    assert "has changed since this configuration was recorded" in capsys.readouterr().err
