"""Tests for one-factor-at-a-time sweeps: the suite's [sweep] table, the leaderboard's rows per
variant, its sweep section and figure (hand-made run directories; nothing is trained)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from envs import resolve_env
from rlime.bench import runner as bench
from rlime.bench.leaderboard import build_tables, load_runs, render_markdown, write_leaderboard
from rlime.bench.suite import SuiteError, load_suite, parse_suite
from rlime.bench.sweep_view import sweep_curves, sweep_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BASE = "CartPole-rram-default-time-write-verify"
SUITE = """
[matrix]
envs = ["CartPole"]
backends = ["rram", "float"]
schemes = ["write-verify"]
seeds = [1, 2]
[budget]
total_steps = 100
[sweep]
"device.levels" = [16, 128, 32]
"tuning.scheme" = ["open-loop", "write-verify", "gradual"]
adc_bits = [{ "forward.adc_bits" = 6, "backward.adc_bits" = 6 }]
nonlinearity = [
    { value = 0, "device.nonlinearity_up" = 0.0, "device.nonlinearity_down" = 0.0 },
    { value = 1, "device.nonlinearity_up" = 0.04, "device.nonlinearity_down" = -0.63 }]
"device.c2c_sigma" = [0.0185]
"""
VARIANTS = ["device.levels=16", "device.levels=32", "tuning.scheme=open-loop",
            "tuning.scheme=gradual", "adc_bits=6", "nonlinearity=0", "device.c2c_sigma=0.0185"]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return parse_suite(SUITE, tmp_path_factory.mktemp("suite") / "sweep.toml")


# ---------------------------------------------------------------------------------------------
# the suite: expansion
# ---------------------------------------------------------------------------------------------


def test_each_point_is_one_variant_per_seed_and_the_baseline_runs_once(suite):
    names = [e.name for e in suite.entries]
    assert names == ([f"{BASE}-s1", f"{BASE}-s2"]
                     + [f"{BASE}-{v}-s{seed}" for v in VARIANTS for seed in (1, 2)]
                     + ["CartPole-float-s1", "CartPole-float-s2"])
    # the defaults listed (128 levels, write-verify, nonlinearity 1) are the baseline itself
    assert not any("=128" in n or "scheme=write-verify" in n or "nonlinearity=1" in n
                   for n in names)


def test_a_variant_differs_from_its_baseline_in_its_factor_only(suite):
    runs = {e.name: e for e in suite.entries}
    base = runs[f"{BASE}-s1"].config
    levels = runs[f"{BASE}-device.levels=16-s1"]
    assert levels.config == dataclasses.replace(base, hardware=dataclasses.replace(
        base.hardware, device=dataclasses.replace(base.hardware.device, levels=16)))
    adc = runs[f"{BASE}-adc_bits=6-s2"].config.hardware
    assert (adc.forward.adc_bits, adc.backward.adc_bits) == (6, 6)
    scheme = runs[f"{BASE}-tuning.scheme=gradual-s1"]
    assert scheme.config.hardware.tuning.scheme == "gradual"
    assert scheme.argv.count("--scheme") == 1 and "gradual" in scheme.argv
    assert levels.argv[-2:] == ("--set", "device.levels=16")
    assert (levels.preset, levels.mapping, levels.scheme) == ("default", "time", "write-verify")


def test_factor_and_axes_are_recorded_in_the_manifest(suite):
    entries = {e["name"]: e for e in suite.manifest()["entries"]}
    base = {"device.levels": 128, "tuning.scheme": "write-verify", "adc_bits": 8,
            "nonlinearity": 1, "device.c2c_sigma": 0.037}
    assert entries[f"{BASE}-s1"]["factor"] == "" and entries[f"{BASE}-s1"]["axes"] == base
    variant = entries[f"{BASE}-tuning.scheme=open-loop-s2"]
    assert variant["factor"] == "tuning.scheme"
    assert variant["axes"] == {**base, "tuning.scheme": "open-loop"}
    reference = entries["CartPole-float-s1"]
    assert reference["factor"] == "" and reference["axes"] == {}


def test_a_sweep_varies_every_rram_matrix_entry_and_names_stay_distinct(tmp_path):
    suite = parse_suite('[matrix]\nenvs = ["CartPole"]\npresets = ["default", "pessimistic"]\n'
                        '[sweep]\n"device.levels" = [40, 128]\n', tmp_path / "x.toml")
    assert [e.name for e in suite.entries] == [
        "CartPole-rram-default-time-gradual-s1",
        "CartPole-rram-default-time-gradual-device.levels=40-s1",
        "CartPole-rram-pessimistic-time-gradual-s1",        # 40 levels: its default
        "CartPole-rram-pessimistic-time-gradual-device.levels=128-s1"]
    assert dict(suite.entries[2].axes) == {"device.levels": 40}


BAD_SWEEPS = {  # case: (the [sweep] table's text, the start of the refusal)
    "unknown-key": ('"device.levelz" = [3]', 'sweep."device.levelz"'),
    "bad-value": ('"device.levels" = [16, 1]', 'sweep."device.levels": 1'),
    "bad-scheme": ('"tuning.scheme" = ["fast"]', 'sweep."tuning.scheme": fast'),
    "not-a-list": ('"device.levels" = 16', 'sweep."device.levels"'),
    "empty": ('"device.levels" = []', 'sweep."device.levels"'),
    "duplicate": ('"device.levels" = [16, 16]', 'sweep."device.levels"'),
    "owned": ('"run.seed" = [3]', 'sweep."run.seed"'),
    "table-in-setting": ('"device.levels" = [{ "device.levels" = 16 }]', 'sweep."device.levels"'),
    "value-in-named": ("adc = [6]", "sweep.adc"),
    "bad-name": ('"adc bits" = [{ "forward.adc_bits" = 6 }]', 'sweep."adc bits"'),
    "no-setting": ("adc = [{ value = 6 }]", "sweep.adc"),
    "not-section-key": ("adc = [{ adc_bits = 6 }]", "sweep.adc"),
    "different-keys": ('adc = [{ "forward.adc_bits" = 6 }, { "backward.adc_bits" = 6 }]',
                       "sweep.adc"),
    "no-value": ('nl = [{ "device.nonlinearity_up" = 1.0, "device.nonlinearity_down" = -1.0 }]',
                 "sweep.nl"),
    "bad-table-value": ('adc = [{ value = true, "forward.adc_bits" = 6 }]', "sweep.adc"),
    "bad-table-setting": ('adc = [{ "forward.adc_bits" = 0, "backward.adc_bits" = 0 }]',
                          "sweep.adc: 0"),
}


def _refusal(tmp_path: Path, text: str) -> str:
    """The SuiteError message of a suite file, after the file's path it must start with."""
    path = tmp_path / "suite.toml"
    path.write_text(text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert str(info.value).startswith(f"{path}: ")
    return str(info.value).removeprefix(f"{path}: ")


@pytest.mark.parametrize("sweep,key", BAD_SWEEPS.values(), ids=BAD_SWEEPS)
def test_bad_sweeps_name_the_file_the_factor_and_what_is_allowed(tmp_path, sweep, key):
    message = _refusal(tmp_path, f'[matrix]\nenvs = ["CartPole"]\n[sweep]\n{sweep}\n')
    assert message.startswith(key) and "allowed" in message, message


@pytest.mark.parametrize("matrix,problem", [
    ('backends = ["float"]', 'matrix.backends including "rram"'),
    # open-loop on each of two matrix schemes: the same run twice
    ('schemes = ["write-verify", "gradual"]', "would be the same configuration"),
], ids=["no-rram", "same-configuration"])
def test_a_sweep_that_cannot_apply_is_refused(tmp_path, matrix, problem):
    message = _refusal(tmp_path, f'[matrix]\nenvs = ["CartPole"]\n{matrix}\n[sweep]\n'
                                 f'"tuning.scheme" = ["open-loop"]\n')
    assert message.startswith("sweep: ") and problem in message and "allowed" in message


def test_bundled_levels_suite_sweeps_levels_over_three_seeds():
    suite = load_suite("nonideality_levels")
    rram = [e for e in suite.entries if e.backend == "rram"]
    assert len(rram) == 12 and len(suite.entries) == 15
    for seed in (1, 2, 3):
        levels = sorted(dict(e.axes)["device.levels"] for e in rram if e.seed == seed)
        assert levels == [16, 32, 64, 128]
    assert sum(not e.factor for e in rram) == 3  # one baseline (128 levels) per seed


def test_bundled_nonideality_suite_sweeps_five_factors_from_the_default():
    suite = load_suite("nonideality")
    rram = [e for e in suite.entries if e.backend == "rram"]
    assert len(rram) == 14 and len(suite.entries) == 15
    assert {e.seed for e in suite.entries} == {1}
    assert {e.preset for e in rram} == {"default"}
    assert {e.total_steps for e in suite.entries} == {20_000}
    baseline = [e for e in rram if not e.factor]
    assert [e.name for e in baseline] == [f"{BASE}-s1"]
    assert dict(baseline[0].axes) == {"device.levels": 128, "device.c2c_sigma": 0.037,
                                      "nonlinearity": 1, "adc_bits": 8,
                                      "tuning.scheme": "write-verify"}
    counts = {f: sum(e.factor == f for e in rram) for f in dict(baseline[0].axes)}
    assert counts == {"device.levels": 3, "device.c2c_sigma": 3, "nonlinearity": 3,
                      "adc_bits": 2, "tuning.scheme": 2}


# ---------------------------------------------------------------------------------------------
# the leaderboard: rows per variant, the sweep section and figure
# ---------------------------------------------------------------------------------------------

SCORES = {"": 100.0, "device.levels=16": 20.0, "device.levels=32": 60.0,
          "tuning.scheme=open-loop": 30.0, "tuning.scheme=gradual": 90.0, "adc_bits=6": 70.0,
          "nonlinearity=0": 110.0, "device.c2c_sigma=0.0185": 105.0}


def _variant(entry) -> str:
    return entry.name.removeprefix(f"{BASE}-").rpartition("-s")[0] if entry.factor else ""


@pytest.fixture(scope="module")
def sweep_dir(suite, tmp_path_factory):
    """The suite's run directories as finished runs leave them, with made-up results: the score
    and writes per variant, energy 10x apart between open-loop and gradual."""
    out = tmp_path_factory.mktemp("sweep") / "out"
    bench.write_manifest(suite, out)
    for entry in suite.entries:
        run_dir = out / entry.name
        run_dir.mkdir(parents=True)
        (run_dir / "config.toml").write_text(entry.config.to_toml(resolve_env(entry.env)))
        rram = entry.backend == "rram"
        score = SCORES[_variant(entry)] + entry.seed if rram else 150.0 + entry.seed
        energy = {"tuning.scheme=open-loop": 1e-6, "tuning.scheme=gradual": 1e-4}.get(
            _variant(entry), 1e-5)
        summary = {"env_id": "CartPole-v1", "steps": 100, "final_score": score,
                   "best_eval_score": score + 5, "episodes": 10,
                   "writes_per_episode": score * 10 if rram else 0,
                   "energy_j_per_episode": energy + entry.seed * 1e-7 if rram else None,
                   "protocol": {"env_id": "CartPole-v1", "family": "classic"}}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        (run_dir / "episodes.jsonl").write_text("".join(
            json.dumps({"step": 10 * i, "return": score, "writes": i, "energy_j": i * 1e-6}) + "\n"
            for i in range(1, 11)))
    return out


def test_leaderboard_has_a_row_per_variant_with_its_factor_and_value(sweep_dir):
    board = write_leaderboard(sweep_dir, n_resamples=200)
    with open(sweep_dir / "leaderboard.csv", newline="") as f:
        rows = {r["config"]: r for r in csv.DictReader(f)}
    base = "rram default/time/write-verify"
    assert set(rows) == {base, "float"} | {f"{base} [{v}]" for v in VARIANTS}
    levels = rows[f"{base} [device.levels=16]"]
    assert (levels["factor"], levels["value"], levels["seeds"]) == ("device.levels", "16", "2")
    assert float(levels["iqm"]) == pytest.approx(21.5)
    assert float(levels["writes_per_episode"]) == pytest.approx(215.0)
    assert rows[base]["factor"] == "" and float(rows[base]["iqm"]) == pytest.approx(101.5)
    assert float(rows[f"{base} [tuning.scheme=gradual]"]["energy_j_per_episode"]) == \
        pytest.approx(1e-4 + 1.5e-7)
    assert {p.name for p in board["files"] if p.suffix == ".png"} == {
        "CartPole-v1-curves.png", "CartPole-v1-pareto.png", "CartPole-v1-sweep.png"}
    assert (sweep_dir / "plots" / "CartPole-v1-sweep.png").read_bytes().startswith(PNG_MAGIC)


def test_curves_put_the_baseline_on_every_factor_at_its_default(sweep_dir):
    (table,) = build_tables(load_runs(sweep_dir)[0], n_resamples=200)
    curves = {c.factor: c for c in sweep_curves(table)}
    assert list(curves) == ["device.levels", "tuning.scheme", "adc_bits", "nonlinearity",
                            "device.c2c_sigma"]
    levels = curves["device.levels"]
    assert levels.default == 128 and [v for v, _, _ in levels.points] == [16, 32, 128]
    assert [r["iqm"] for _, r, _ in levels.points] == pytest.approx([21.5, 61.5, 101.5])
    # categorical: the baseline first, then the variants as listed
    assert [v for v, _, _ in curves["tuning.scheme"].points] == ["write-verify", "open-loop",
                                                                  "gradual"]
    assert [v for v, _, _ in curves["nonlinearity"].points] == [0, 1]
    assert [v for v, _, _ in curves["device.c2c_sigma"].points] == [0.0185, 0.037]
    md = render_markdown([table])
    assert "One factor at a time from the default" in md
    assert ("| rram default/time/write-verify | device.levels | 128 (default) | 2 | 101.5 "
            in md)
    assert "| float (reference) | - | - | 2 | 151.5" in md


def test_sweep_figure_has_a_column_per_factor_and_the_float_reference(sweep_dir):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    (table,) = build_tables(load_runs(sweep_dir)[0], n_resamples=200)
    fig = sweep_figure(plt, table, {})
    axes = fig.axes
    assert len(axes) == 3 * 5
    top = axes[:5]
    assert top[0].get_title() == "device.levels\n(default 128: dotted, bold)"
    assert [t.get_fontweight() for t in top[0].get_xticklabels()] == ["normal", "normal", "bold"]
    assert top[0].get_xscale() == "log"                     # 16 to 128 levels: base-2 log
    assert [t.get_text() for t in top[0].get_xticklabels()] == ["16", "32", "128"]
    assert [t.get_text() for t in top[1].get_xticklabels()] == ["write-verify", "open-loop",
                                                               "gradual"]
    assert any(line.get_linestyle() == "--" and line.get_ydata()[0] == pytest.approx(151.5)
               for line in top[1].get_lines())          # the float reference, IQM
    energy = axes[10:]
    assert energy[1].get_yscale() == "log" and energy[0].get_yscale() == "linear"
    legend = [t.get_text() for t in top[0].get_legend().get_texts()]
    assert "rram default/time/write-verify" in legend and any("float" in t for t in legend)
    plt.close(fig)
    plain = build_tables([r for r in load_runs(sweep_dir)[0] if not r.axes], n_resamples=50)
    assert sweep_figure(plt, plain[0], {}) is None          # no sweep: no figure
