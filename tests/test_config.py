"""Tests for the configuration: hardware presets, validation messages, dotted overrides, dict
round trip, and the one pipeline from flags, --set and suites to a RunConfig."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest

from rlime.common.errors import ConfigError
from rlime.hw.config import (
    PRESETS,
    RESPONSE_MODELS,
    TUNING_SCHEMES,
    ConverterConfig,
    DeviceConfig,
    HardwareConfig,
    TileConfig,
    TuningConfig,
    preset,
)
from rlime.harness.run_config import RunConfig, parse_override, resolve

PRESET_NAMES = ("default", "optimistic", "pessimistic", "ideal")

# --------------------------------------------------------------------------- presets


def test_the_four_documented_presets_exist():
    assert set(PRESET_NAMES) <= set(PRESETS)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_builds_and_records_its_name(name):
    cfg = preset(name)
    assert isinstance(cfg, HardwareConfig)
    assert cfg.preset == name
    for section in ("device", "tile", "forward", "backward", "tuning"):
        assert dataclasses.is_dataclass(getattr(cfg, section))


def test_default_preset_matches_the_design_table():
    # docs/design.md "Energy model": Ron/Roff 100 kOhm / 1 MOhm, 128 levels, C2C 3.7 %,
    # NL 0.04 / -0.63, 128 x 128 arrays, 8-bit ADC, 1-bit DAC, endurance 1e9.
    cfg = preset("default")
    d = cfg.device
    assert d.g_min_siemens == pytest.approx(1 / 1e6) and d.g_max_siemens == pytest.approx(1 / 1e5)
    assert d.levels == 128
    assert d.c2c_sigma == pytest.approx(0.037)
    assert (d.nonlinearity_up, d.nonlinearity_down) == (0.04, -0.63)
    assert d.response == "nonlinear"
    assert d.endurance_pulses == 1e9
    assert (cfg.tile.rows, cfg.tile.cols) == (128, 128)
    for conv in (cfg.forward, cfg.backward):
        assert (conv.input_bits, conv.dac_bits, conv.adc_bits) == (8, 1, 8)
        assert conv.cycles() == 8


def test_optimistic_pessimistic_ideal_differ_as_documented():
    opt, pes, ide = preset("optimistic"), preset("pessimistic"), preset("ideal")
    assert opt.forward.adc_bits == 5 and opt.backward.adc_bits == 5
    assert opt.device.endurance_pulses == 1e12
    assert pes.device.levels == 40 and pes.device.c2c_sigma == pytest.approx(0.05)
    # ideal: noise-free linear devices, unquantised converters, exact (open-loop) tuning
    assert ide.device.response == "linear" and ide.device.c2c_sigma == 0
    assert ide.device.read_noise_sigma == 0 and ide.device.levels > 2**20
    assert math.isinf(ide.device.endurance_pulses)
    for conv in (ide.forward, ide.backward):
        assert conv.input_bits is None and conv.adc_bits is None and math.isinf(conv.adc_bound)


def test_presets_are_fresh_objects_each_call():
    # frozen dataclasses compare by value; two calls give equal configs
    assert preset("default") == preset("default")
    assert preset("default") != preset("pessimistic")


def test_unknown_preset_lists_allowed_names():
    with pytest.raises(ConfigError) as err:
        preset("nonsense")
    msg = str(err.value)
    assert "nonsense" in msg
    for name in PRESET_NAMES:
        assert name in msg


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --------------------------------------------------------------------------- validation

# (constructor, kwargs, field named in the message, bad value as repr, words of what is allowed)
BAD_VALUES = [
    (DeviceConfig, {"levels": 1}, "levels", "1", ">= 2"),
    (DeviceConfig, {"levels": 0}, "levels", "0", ">= 2"),
    (DeviceConfig, {"levels": 2.5}, "levels", "2.5", "integer"),
    (DeviceConfig, {"g_min_siemens": 1e-5, "g_max_siemens": 1e-5}, "g_max_siemens", "1e-05", "exceed g_min_siemens"),
    (DeviceConfig, {"g_min_siemens": 2e-5, "g_max_siemens": 1e-5}, "g_max_siemens", "1e-05", "exceed g_min_siemens"),
    (DeviceConfig, {"g_min_siemens": 0.0}, "g_min_siemens", "0.0", "> 0"),
    (DeviceConfig, {"c2c_sigma": -0.01}, "c2c_sigma", "-0.01", ">= 0"),
    (DeviceConfig, {"c2c_sigma": math.nan}, "c2c_sigma", "nan", "finite"),
    (DeviceConfig, {"read_noise_sigma": -1e-3}, "read_noise_sigma", "-0.001", ">= 0"),
    (DeviceConfig, {"d2d_step_sigma": -0.1}, "d2d_step_sigma", "-0.1", ">= 0"),
    (DeviceConfig, {"response": "sigmoid"}, "response", "'sigmoid'", ", ".join(RESPONSE_MODELS)),
    (DeviceConfig, {"stuck_at_min_fraction": 0.6, "stuck_at_max_fraction": 0.5},
     "stuck_at_max_fraction", "0.5", "stuck_at_min_fraction + stuck_at_max_fraction must be <= 1"),
    (DeviceConfig, {"stuck_at_min_fraction": 1.5}, "stuck_at_min_fraction", "1.5", "[0, 1]"),
    (DeviceConfig, {"down_up_ratio": 0.0}, "down_up_ratio", "0.0", "> 0"),
    (DeviceConfig, {"endurance_pulses": 0}, "endurance_pulses", "0", ">= 1"),
    (TuningConfig, {"scheme": "magic"}, "scheme", "'magic'", ", ".join(TUNING_SCHEMES)),
    (TuningConfig, {"tolerance_levels": 0}, "tolerance_levels", "0", "> 0"),
    (TuningConfig, {"max_pulses": 0}, "max_pulses", "0", ">= 1"),
    (ConverterConfig, {"adc_bits": 0}, "adc_bits", "0", "[1, 32] or None"),
    (ConverterConfig, {"dac_bits": 0}, "dac_bits", "0", ">= 1"),
    (ConverterConfig, {"input_bits": 1}, "input_bits", "1", "[2, 32] or None"),
    (TileConfig, {"rows": 0}, "rows", "0", ">= 1"),
    (TileConfig, {"weight_headroom": 0.5}, "weight_headroom", "0.5", ">= 1"),
]


@pytest.mark.parametrize("kind,kwargs,name,value,allowed", BAD_VALUES,
                         ids=[f"{k.__name__}-{n}-{v}" for k, _, n, v, _ in BAD_VALUES])
def test_bad_value_raises_config_error_naming_field_value_and_rule(kind, kwargs, name, value,
                                                                   allowed):
    with pytest.raises(ConfigError) as err:
        kind(**kwargs)
    msg = str(err.value)
    assert f".{name} = {value} " in msg, msg
    assert allowed in msg, msg


def test_stuck_fractions_summing_to_exactly_one_are_allowed():
    cfg = DeviceConfig(stuck_at_min_fraction=0.5, stuck_at_max_fraction=0.5)
    assert cfg.stuck_at_min_fraction + cfg.stuck_at_max_fraction == 1


def test_ideal_preset_values_pass_validation_individually():
    # inf endurance / inf adc bound are legal, None converters are legal
    DeviceConfig(endurance_pulses=math.inf)
    ConverterConfig(input_bits=None, adc_bits=None, adc_bound=math.inf)


# --------------------------------------------------------------------------- overrides


def test_with_overrides_changes_only_the_named_setting():
    base = preset("default")
    cfg = base.with_overrides({"device.c2c_sigma": 0.01, "tuning.scheme": "gradual",
                               "tile.rows": 16})
    assert cfg.device.c2c_sigma == 0.01
    assert cfg.tuning.scheme == "gradual"
    assert cfg.tile.rows == 16
    assert base.device.c2c_sigma == pytest.approx(0.037)  # original untouched (frozen)
    assert dataclasses.replace(cfg.device, c2c_sigma=base.device.c2c_sigma) == base.device
    assert cfg.forward == base.forward and cfg.backward == base.backward
    assert cfg.preset == "default"


@pytest.mark.parametrize("key", ["device.c2c", "devices.c2c_sigma", "c2c_sigma", "preset.x",
                                 "tuning."])
def test_with_overrides_unknown_key_errors_naming_it(key):
    with pytest.raises(ConfigError) as err:
        preset("default").with_overrides({key: 0.01})
    assert repr(key) in str(err.value)
    assert "allowed" in str(err.value) and ("c2c_sigma" in str(err.value)
                                            or "max_pulses" in str(err.value))


def test_with_overrides_validates_the_new_value():
    with pytest.raises(ConfigError) as err:
        preset("default").with_overrides({"device.levels": 1})
    assert "levels = 1" in str(err.value)


def test_with_overrides_accepts_inf_string_as_toml_would_give():
    cfg = preset("default").with_overrides({"device.endurance_pulses": "inf"})
    assert math.isinf(cfg.device.endurance_pulses)


# --------------------------------------------------------------------------- dict round trip


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_dict_round_trip(name):
    cfg = preset(name)
    data = cfg.to_dict()
    assert set(data) == {"preset", "device", "tile", "forward", "backward", "tuning"}
    assert HardwareConfig.from_dict(data) == cfg


def test_round_trip_of_an_overridden_config():
    cfg = preset("pessimistic").with_overrides({"tuning.scheme": "open-loop",
                                                "forward.adc_bits": None})
    assert HardwareConfig.from_dict(cfg.to_dict()) == cfg


def test_from_dict_missing_sections_take_defaults_and_preset_is_custom():
    cfg = HardwareConfig.from_dict({"device": {"levels": 64}})
    assert cfg.device.levels == 64
    assert cfg.tile == TileConfig() and cfg.tuning == TuningConfig()
    assert cfg.preset == "custom"


def test_from_dict_unknown_section_and_key_error():
    with pytest.raises(ConfigError) as err:
        HardwareConfig.from_dict({"devise": {}})
    assert "devise" in str(err.value) and "device" in str(err.value)
    with pytest.raises(ConfigError) as err:
        HardwareConfig.from_dict({"device": {"levelz": 3}})
    assert "levelz" in str(err.value) and "levels" in str(err.value)


# --------------------------------------------------------------------------- the run pipeline
CLEAN_ERRORS = [  # (--set, key, value as shown, words of what is allowed)
    ("agent.learning_rate=abc", "agent.learning_rate", "'abc'", "a number"),
    ("agent.hidden=64", "agent.hidden", "64", "a list of integers"),
    ("device.levels=1", "device.levels", "1", ">= 2"),
    ("nosuch.key=1", "'nosuch.key'", "", "allowed sections are run, agent, device"),
    ("run.seed=-1", "run.seed", "-1", "[0, 2**31)"),
    ("forward.adc_bits=2.5", "forward.adc_bits", "2.5", "an integer or none"),
    ("agent.gama=0.9", "agent.gama", "", "allowed in [agent]"),
]


@pytest.mark.parametrize("text,key,value,allowed", CLEAN_ERRORS, ids=[c[0] for c in CLEAN_ERRORS])
def test_bad_set_is_one_config_error_naming_key_value_and_what_is_allowed(text, key, value,
                                                                          allowed):
    with pytest.raises(ConfigError) as err:
        resolve([("run.env", "CartPole"), parse_override(text)])
    msg = str(err.value)
    assert key in msg and value in msg and allowed in msg, msg


@pytest.mark.parametrize("text,key,value,allowed", CLEAN_ERRORS[:4],
                         ids=[c[0] for c in CLEAN_ERRORS[:4]])
def test_train_cli_prints_a_bad_setting_as_one_paragraph_and_exits_2(tmp_path, capsys, text, key,
                                                                     value, allowed):
    from rlime.harness.cli import main

    assert main(["--env", "CartPole", "--set", text, "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.strip().count("\n") == 0
    assert key in err and allowed in err
    assert not (tmp_path / "r").exists()


def test_layers_are_env_defaults_then_flags_then_set():
    from rlime.harness.cli import build_parser, config_from_args

    cfg, _ = config_from_args(build_parser().parse_args(["--env", "CartPole"]))
    assert cfg.agent.learning_rate == 2.3e-3          # experiments/hyperparams.toml
    args = ["--env", "CartPole", "--lr", "1e-4", "--seed", "3", "--scheme", "gradual",
            "--double-dqn", "--set", "run.seed=4", "--set", "device.c2c_sigma=0.01"]
    cfg, _ = config_from_args(build_parser().parse_args(args))
    assert (cfg.agent.learning_rate, cfg.seed, cfg.agent.double_dqn) == (1e-4, 4, True)
    assert cfg.hardware.tuning.scheme == "gradual" and cfg.hardware.device.c2c_sigma == 0.01
    assert cfg.checkpoint_every == cfg.eval_every and cfg.energy_preset == cfg.preset
    cfg, _ = config_from_args(build_parser().parse_args(["--env", "CartPole", "--preset", "ideal",
                                                         "--set", "forward.adc_bits=8"]))
    assert cfg.hardware.preset == "ideal" and cfg.hardware.forward.adc_bits == 8
    assert cfg.hardware.backward.adc_bits is None and cfg.energy_preset == "ideal"


def test_help_settings_lists_every_field_with_its_value_and_help(capsys):
    from rlime.harness.cli import main

    assert main(["--env", "CartPole", "--preset", "pessimistic", "--help-settings"]) == 0
    out = capsys.readouterr().out
    for kind, section in ((RunConfig, "run"), (DeviceConfig, "device"), (TuningConfig, "tuning"),
                          (ConverterConfig, "forward"), (TileConfig, "tile")):
        for f in dataclasses.fields(kind):
            if f.name not in ("env", "agent", "hardware"):
                assert f"{section}.{f.name} = " in out, f.name
    assert "agent.learning_rate = 0.0023" in out and "step size of the update rule" in out
    assert "device.levels = 40" in out and "[an integer]" in out
    assert "tuning.scheme = \"gradual\"" in out and "open-loop, write-verify or gradual" in out


def test_train_help_shows_each_flag_s_setting_and_default(capsys):
    from rlime.harness.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(run.seed; default: 1)" in out and "--lr" in out
    assert "(tuning.scheme; default: the preset's)" in out
    assert "(run.checkpoint_every; default: per env, else --eval-every)" in out


def test_suite_argv_resolves_to_the_entry_s_config():
    from rlime.bench.suite import parse_suite
    from rlime.harness.cli import build_parser, config_from_args

    suite = parse_suite("""
        [matrix]
        envs = ["CartPole"]
        backends = ["rram", "float"]
        presets = ["default", "ideal"]
        mappings = ["time", "shared"]
        [settings]
        "agent.hidden" = [8]
        "agent.double_dqn" = true
        "device.endurance_pulses" = inf
        "forward.adc_bits" = "none"
    """)
    for entry in suite.entries:
        cfg, _ = config_from_args(build_parser().parse_args(list(entry.argv)))
        assert dataclasses.replace(cfg, device=entry.config.device) == entry.config, entry.name
        assert cfg.hardware.forward.adc_bits is None
        assert math.isinf(cfg.hardware.device.endurance_pulses)


def test_leaderboard_loads_without_suite_run_config_or_agents():
    code = ("import sys, rlime.bench.leaderboard; "
            "print([m for m in sys.modules if m.startswith(('rlime.bench.suite', "
            "'rlime.harness', 'agents'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_threads_default_to_omp_num_threads_else_physical_cores(monkeypatch):
    import os

    from rlime.harness.train import choose_threads, physical_cores

    assert resolve([("run.env", "CartPole"), ("run.threads", 3)]).threads == 3
    assert choose_threads(3) == (3, "run.threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert choose_threads(0) == (2, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    cores = physical_cores()
    assert choose_threads(0) == (cores, "physical cores")
    assert 1 <= cores <= len(os.sched_getaffinity(0))
    with pytest.raises(ConfigError, match="run.threads"):
        resolve([("run.env", "CartPole"), ("run.threads", -1)])


@pytest.mark.parametrize("device", ["tpu", "cuda:99", "gpu"])
def test_a_device_this_machine_lacks_is_a_config_error_naming_the_choices(device):
    with pytest.raises(ConfigError) as err:
        RunConfig(env="CartPole", device=device)
    assert f"run.device = {device!r} is not allowed" in str(err.value) and "cpu" in str(err.value)


def test_atari_evaluates_three_times_in_the_first_hour_of_a_cpu_run_but_checkpoints_rarely():
    cfg = resolve([("run.env", "Pong")])
    steps_per_hour = 90 * 3600  # a CPU Pong run on the chip
    assert steps_per_hour // cfg.eval_every >= 3
    assert cfg.checkpoint_every >= 250_000  # each one holds up to the whole replay (7.3 GB)
    assert resolve([("run.env", "Pong"), ("run.eval_every", 5000)]).checkpoint_every == 250_000
    assert resolve([("run.env", "CartPole"), ("run.eval_every", 5000)]).checkpoint_every == 5000


# --------------------------------------------------------------------------- update modes
def test_time_update_mode_is_plain_sgd_without_residual_over_the_env_defaults():
    from rlime.harness.run_config import resolve
    mixed = resolve([("run.env", "CartPole")])                 # CartPole's defaults: Adam
    assert mixed.update_mode == "auto" and mixed.mode_in_effect == "mixed-precision"
    assert mixed.agent.update_rule == "adam" and mixed.hardware.tuning.residual
    time = resolve([("run.env", "CartPole"), ("run.update_mode", "time")])
    assert time.agent.update_rule == "sgd" and not time.hardware.tuning.residual
    assert time.mode_in_effect == "time"
    assert time.agent.learning_rate == mixed.agent.learning_rate  # nothing else changes
    # a preset without a residual keeps it in auto mode, and gets one when asked for
    ideal = resolve([("run.env", "CartPole"), ("run.preset", "ideal")])
    assert not ideal.hardware.tuning.residual and ideal.mode_in_effect == "other"
    asked = resolve([("run.env", "CartPole"), ("run.preset", "ideal"),
                     ("run.update_mode", "mixed-precision")])
    assert asked.hardware.tuning.residual


@pytest.mark.parametrize("settings, key", [
    ([("run.update_mode", "time"), ("agent.update_rule", "adam")], "agent.update_rule"),
    ([("run.update_mode", "time"), ("tuning.residual", True)], "tuning.residual"),
    ([("run.update_mode", "mixed-precision"), ("tuning.residual", False)], "tuning.residual"),
    ([("run.update_mode", "paper")], "run.update_mode"),
])
def test_an_update_mode_and_settings_that_contradict_it_are_one_error(settings, key):
    from rlime.harness.run_config import resolve
    with pytest.raises(ConfigError) as err:
        resolve([("run.env", "CartPole"), *settings])
    assert key in str(err.value)


def test_update_mode_survives_config_toml():
    from envs import resolve_env
    from rlime.harness.run_config import RunConfig, resolve
    cfg = resolve([("run.env", "CartPole"), ("run.update_mode", "time")])
    assert RunConfig.from_toml(cfg.to_toml(resolve_env("CartPole"))) == cfg
