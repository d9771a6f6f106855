"""The leaderboard of a benchmark directory: runs -> per-configuration rows, tables and plots.

Input: run directories (``summary.json``, ``config.toml``, ``episodes.jsonl``) under one output
directory, and the suite manifest ``suite.json`` the runner writes there (which runs belong to
the suite and their step budgets). Output: ``leaderboard.md``, ``leaderboard.csv``,
``leaderboard.json`` and ``plots/*.png``.

Tables. Results are never mixed across protocols: one table per (env id, protocol, step budget),
where the protocol is ``summary["protocol"]`` (frameskip, sticky actions, action set, life loss,
reward clipping, episode cap, ...; its short hash is the ``protocol_id`` column). Within a table
one row per configuration (backend x preset x mapping x scheme, and a sweep's variant:
``config`` "rram default/time/write-verify [device.levels=16]", columns ``factor`` and
``value``), seeds aggregated:

* per seed the final score (mean of the last 100 training returns, ``rlime.bench.stats.final_score``,
  as summary.json holds it); across seeds mean +- sample std (``stats.mean_std``), and the IQM
  with a 95 % stratified-bootstrap interval (``stats.iqm``, ``stats.stratified_bootstrap_ci``;
  strata = the envs of the table -- one per table here, so it is a plain bootstrap over seeds);
  Atari rows also human-normalised (``stats.human_normalized``). Rows are ranked by IQM.
* hardware cost, averaged over seeds: writes total and per episode (the headline:
  weight-programming pulses, ``LedgerSnapshot.writes`` -- setup programming and Q-array updates),
  beside them target-sync pulses and replay memory-mode write bits (total and per episode; never
  summed into writes), energy total and per episode, the GPU and ASIC baseline energies of the same workload and the
  ratios gpu_over_rram / asic_over_rram (pooled: mean baseline energy / mean RRAM energy).
  Float rows have no device cost: their writes are 0 and energies are empty (not modelled).
* the trade-off: ``energy_rank`` (1 = least energy per episode) and ``pareto`` (not beaten on
  both IQM score and energy per episode by another row, ``stats.pareto_front``).

A suite with a sweep (`rlime.bench.sweep`) also gets, per table, a "one factor at a time"
section (`rlime.bench.sweep_view`: per factor the baseline at its default and the variants, with
score IQM and CI, best eval, writes and energy per episode, the float rows as references) and
the figure ``plots/<table>-sweep.png``. Variants are known from the manifest (a directory
without one has no sweep).

An extra "aggregate" table pools Atari games of one protocol per configuration on
human-normalised scores (IQM, stratified bootstrap with the games as strata).

Only finished runs (steps >= budget) enter the rows; the others are listed as incomplete.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np


from rlime.common.files import tomllib
from rlime.cost.energy import categories
from rlime.drl.phases import DQN_PHASES
from rlime.sl.phases import SL_PHASES
from rlime.common.files import JsonlError, atomic_write, json_safe, read_jsonl
from rlime.bench.stats import human_normalized, iqm, mean_std, pareto_front, stratified_bootstrap_ci
from rlime.bench.labels import NOT_APPLICABLE, format_value, run_labels, variant_label
from rlime.bench.sweep_view import sweep_curves, sweep_figure

__all__ = ["RunResult", "Table", "load_runs", "build_tables", "aggregate_row", "atari_aggregate",
           "write_leaderboard", "render_markdown", "COLUMNS", "MANIFEST"]

MANIFEST = "suite.json"

#: CSV / JSON row columns, in order.
CATEGORIES = categories(DQN_PHASES)  # energy categories of a DQN run
SL_CATEGORIES = categories(SL_PHASES)  # and of a supervised run

COLUMNS = (
    "table", "env_id", "env", "protocol_id", "frameskip", "sticky_actions", "action_set",
    "terminal_on_life_loss", "reward_clipping", "max_episode_steps", "budget_steps",
    "config", "backend", "preset", "mapping", "scheme", "factor", "value",
    "seeds", "seed_list", "final_scores", "score_mean", "score_std", "iqm", "iqm_ci_low",
    "iqm_ci_high", "hns_mean", "hns_iqm", "eval_mean", "eval_best", "eval_best_per_seed", "episodes_mean",
    "writes_total", "writes_per_episode", "target_sync_pulses_total",
    "target_sync_pulses_per_episode", "replay_write_bits_total", "replay_write_bits_per_episode",
    "energy_j_total", "energy_j_per_episode",
    "gpu_j", "asic_j", "gpu_j_per_episode", "asic_j_per_episode", "gpu_over_rram",
    "asic_over_rram", "wall_s", "sps", "score_rank", "energy_rank", "pareto",
    *(f"energy_per_episode_{c}" for c in CATEGORIES),
)

#: Columns of a supervised suite's rows (`sl_row`).
SL_COLUMNS = (
    "table", "task", "dataset", "network", "protocol_id", "budget_epochs", "config", "backend",
    "preset", "scheme", "update_mode", "update_mode_in_effect", "seeds", "seed_list",
    "final_scores", "score_mean", "score_std", "iqm", "iqm_ci_low", "iqm_ci_high",
    "best_per_seed", "best_mean", "writes_total", "writes_per_epoch", "energy_j_total",
    "energy_j_per_epoch", "gpu_j", "asic_j", "gpu_j_per_epoch", "asic_j_per_epoch",
    "gpu_over_rram", "asic_over_rram", "wall_s", "steps_per_s", "score_rank", "energy_rank",
    "pareto", *(f"energy_per_epoch_{c}" for c in SL_CATEGORIES),
)

BOOTSTRAP_RESAMPLES = 10_000


# ---------------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """One run (one seed of one configuration) as the leaderboard sees it."""

    name: str
    env_id: str
    env: str
    backend: str
    preset: str          # labels (rlime.bench.labels.run_labels): "-" where they do not apply
    mapping: str
    scheme: str
    seed: int
    budget: int
    summary: dict[str, Any]
    path: Path | None = None
    protocol: dict[str, Any] = field(default_factory=dict)
    kind: str = "dqn"        # "sl": a supervised run (budget in epochs, labels preset/scheme/mode)
    mode: str = NOT_APPLICABLE
    factor: str = ""     # the sweep factor it varies ("" for a baseline and outside sweeps)
    axes: dict[str, Any] = field(default_factory=dict)   # its value on each factor's axis

    @property
    def complete(self) -> bool:
        return int(self.summary.get("epochs" if self.kind == "sl" else "steps", 0)) >= self.budget

    @property
    def base(self) -> str:
        """The configuration label without the sweep variant."""
        if self.kind == "sl":
            return "float" if self.backend == "float" else \
                f"{self.backend} {self.preset}/{self.scheme}/{self.mode}"
        return config_label(self.backend, self.preset, self.mapping, self.scheme)

    @property
    def config(self) -> str:
        """The row label: base configuration and, for a sweep variant, "[factor=value]"."""
        if not self.factor:
            return self.base
        return f"{self.base} [{variant_label(self.factor, self.axes.get(self.factor))}]"

    @property
    def protocol_id(self) -> str:
        return protocol_id(self.protocol)


def config_label(backend: str, preset: str, mapping: str, scheme: str) -> str:
    if backend == "float":
        return "float" if mapping == NOT_APPLICABLE else f"float {mapping}"
    return f"{backend} {preset}/{mapping}/{scheme}"


def protocol_id(protocol: dict[str, Any]) -> str:
    text = json.dumps(protocol, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def load_runs(out_dir: str | Path) -> tuple[list[RunResult], list[str]]:
    """Runs under `out_dir` (the manifest's, else every sub-directory with a summary.json).

    Returns (runs with a summary.json, names of the manifest's runs that have none).
    """
    out = Path(out_dir)
    manifest_file = out / MANIFEST
    runs, missing = [], []
    if manifest_file.exists():
        manifest = json.loads(manifest_file.read_text())
        for entry in manifest["entries"]:
            path = out / entry["name"]
            summary = _read_json(path / "summary.json")
            if summary is None:
                missing.append(entry["name"])
                continue
            runs.append(RunResult(
                name=entry["name"], env_id=entry["env_id"], env=entry["env_name"],
                backend=entry["backend"], preset=entry["preset"], mapping=entry["mapping"],
                scheme=entry["scheme"], seed=int(entry["seed"]), budget=int(entry["total_steps"]),
                summary=summary, path=path, protocol=_protocol(summary, _read_config(path)),
                kind=entry.get("kind", "dqn"), mode=entry.get("mode", NOT_APPLICABLE),
                factor=entry.get("factor", ""), axes=entry.get("axes", {})))
        return runs, missing
    for path in sorted(p for p in out.iterdir() if (p / "summary.json").is_file()):
        summary = _read_json(path / "summary.json")
        config = _read_config(path)
        if summary.get("kind") == "sl":
            runs.append(_sl_run(path, summary, config))
            continue
        run = config.get("run", {})
        scheme = config.get("hardware", {}).get("tuning", {}).get("scheme", NOT_APPLICABLE)
        labels = run_labels(summary["backend"], summary["preset"], summary["mapping"], scheme)
        budget = int(run.get("total_steps", summary["steps"]))
        runs.append(RunResult(
            name=path.name, env_id=summary["env_id"], env=summary.get("env", summary["env_id"]),
            backend=summary["backend"], preset=labels[0], mapping=labels[1], scheme=labels[2],
            seed=int(summary["seed"]), budget=budget, summary=summary, path=path,
            protocol=_protocol(summary, config)))
    return runs, missing


def _sl_run(path: Path, summary: dict[str, Any], config: dict[str, Any]) -> RunResult:
    """A supervised run directory found without a manifest (labels from its summary)."""
    chip = summary["backend"] != "float"
    task = f"{summary['dataset']}/{summary['network']}"
    return RunResult(
        name=path.name, env_id=task, env=task.replace("/", "-"), backend=summary["backend"],
        preset=summary["preset"] if chip else NOT_APPLICABLE, mapping=NOT_APPLICABLE,
        scheme=summary["scheme"] if chip else NOT_APPLICABLE, seed=int(summary["seed"]),
        budget=int(config.get("run", {}).get("epochs", summary["epochs"])), summary=summary,
        path=path, protocol=summary.get("protocol", {}), kind="sl",
        mode=config.get("run", {}).get("update_mode", "auto") if chip else NOT_APPLICABLE)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads((path / "config.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _protocol(summary: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """summary["protocol"], with the run's life-loss setting from config.toml (it is a run flag)."""
    protocol = dict(summary.get("protocol") or {"env_id": summary.get("env_id")})
    run = config.get("run", {})
    if "terminal_on_life_loss" in run and protocol.get("family") == "atari":
        protocol["terminal_on_life_loss"] = bool(run["terminal_on_life_loss"])
    return protocol


# ---------------------------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------------------------


@dataclass
class Table:
    """One env id under one protocol and budget; rows sorted by score rank."""

    key: str
    env_id: str
    env: str
    protocol: dict[str, Any]
    budget: int
    rows: list[dict[str, Any]]
    runs: dict[str, list[RunResult]]    # config label -> its runs (seed order)

    @property
    def is_atari(self) -> bool:
        return self.protocol.get("family") == "atari"

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.key)


def build_tables(runs: Iterable[RunResult], *, n_resamples: int = BOOTSTRAP_RESAMPLES
                 ) -> list[Table]:
    """Group complete runs into tables (env id x protocol x budget) of per-configuration rows."""
    groups: dict[tuple, list[RunResult]] = defaultdict(list)
    for run in runs:
        if run.complete:
            groups[(run.env_id, run.protocol_id, run.budget)].append(run)
    keys = sorted(groups, key=lambda k: (k[0], k[2], k[1]))
    # a table is named by its env; the protocol id / budget are added only where needed
    per_env = defaultdict(list)
    for k in keys:
        per_env[k[0]].append(k)
    tables = []
    for key in keys:
        members = groups[key]
        first = members[0]
        name = first.env_id
        siblings = per_env[key[0]]
        if len({k[1] for k in siblings}) > 1:
            name += f" [protocol {key[1]}]"
        if len({k[2] for k in siblings}) > 1:
            name += f" [{key[2]:,} steps]"
        by_config: dict[str, list[RunResult]] = defaultdict(list)
        for run in sorted(members, key=lambda r: (_config_order(r), r.seed)):
            by_config[run.config].append(run)
        rows = [aggregate_row(rs, table=name, n_resamples=n_resamples)
                for rs in by_config.values()]
        _rank(rows, "epoch" if first.kind == "sl" else "episode")
        rows.sort(key=lambda r: (r["score_rank"] or math.inf, r["config"]))
        tables.append(Table(key=name, env_id=first.env_id, env=first.env, protocol=first.protocol,
                            budget=first.budget, rows=rows, runs=dict(by_config)))
    return tables


def _config_order(run: RunResult) -> tuple:
    return (run.backend != "rram", run.preset, run.mapping, run.scheme)


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(vals)) if vals else None


def aggregate_row(runs: Sequence[RunResult], *, table: str = "",
                  n_resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """One leaderboard row from the runs (seeds) of one configuration in one table."""
    first = runs[0]
    if first.kind == "sl":
        return sl_row(runs, table=table, n_resamples=n_resamples)
    sums = [r.summary for r in runs]
    protocol = first.protocol
    scores = [s.get("final_score") for s in sums]
    valid = [float(x) for x in scores if x is not None]
    row: dict[str, Any] = {
        "table": table or first.env_id, "env_id": first.env_id, "env": first.env,
        "protocol_id": first.protocol_id, "frameskip": protocol.get("frameskip"),
        "sticky_actions": protocol.get("repeat_action_probability"),
        "action_set": protocol.get("action_set"),
        "terminal_on_life_loss": protocol.get("terminal_on_life_loss"),
        "reward_clipping": protocol.get("reward_clipping"),
        "max_episode_steps": protocol.get("max_episode_steps"),
        "budget_steps": first.budget, "config": first.config, "backend": first.backend,
        "preset": first.preset, "mapping": first.mapping, "scheme": first.scheme,
        "factor": first.factor or None,
        "value": first.axes.get(first.factor) if first.factor else None,
        "seeds": len(runs), "seed_list": [r.seed for r in runs], "final_scores": scores,
        **_score_stats(first.env_id, valid, n_resamples), "hns_mean": None, "hns_iqm": None,
    }
    if valid and protocol.get("family") == "atari":
        hns = [human_normalized(first.env_id, x) for x in valid]
        if all(h is not None for h in hns):
            row["hns_mean"], row["hns_iqm"] = float(np.mean(hns)), iqm(hns)
    row.update({
        "eval_mean": _mean([s.get("eval_score") for s in sums]),
        "eval_best": _mean([s.get("best_eval_score") for s in sums]),
        "eval_best_per_seed": [s.get("best_eval_score") for s in sums],
        "episodes_mean": _mean([s.get("episodes") for s in sums]),
        **{key: _mean([s.get(key) for s in sums]) for key in (
            "target_sync_pulses_total", "target_sync_pulses_per_episode",
            "replay_write_bits_total", "replay_write_bits_per_episode")},
        **_cost_columns(first.backend, sums, "episode", CATEGORIES),
        "sps": _mean([s.get("sps") for s in sums]),
    })
    return row


def _score_stats(task: str, valid: Sequence[float], n_resamples: int) -> dict[str, Any]:
    """Mean +- std and IQM with its 95 % bootstrap interval of one configuration's scores."""
    out: dict[str, Any] = {"score_mean": None, "score_std": None, "iqm": None,
                           "iqm_ci_low": None, "iqm_ci_high": None}
    if valid:
        out["score_mean"], out["score_std"] = mean_std(valid)
        out["iqm"] = iqm(valid)
        out["iqm_ci_low"], out["iqm_ci_high"] = stratified_bootstrap_ci(
            {task: list(valid)}, iqm, n_resamples=n_resamples, seed=0)
    return out


def _cost_columns(backend: str, sums: Sequence[dict[str, Any]], unit: str,
                  categories: Sequence[str]) -> dict[str, Any]:
    """Hardware cost of one configuration, means over seeds: writes and energy, total and per
    `unit` ("episode", "epoch") and by category, the GPU / ASIC baselines and their pooled
    ratios (mean baseline energy / mean RRAM energy); float rows have no device energy."""
    rram = backend != "float"
    baselines = [s.get("baselines") or {} for s in sums]
    rram_j = _mean([b.get("rram_j") for b in baselines])
    gpu_j = _mean([b.get("gpu_j") for b in baselines])
    asic_j = _mean([b.get("asic_j") for b in baselines])
    per = f"per_{unit}"
    by_category = [s.get(f"energy_{per}_by_category") or {} for s in sums]
    return {
        "writes_total": _mean([s.get("writes_total") for s in sums]),
        f"writes_{per}": _mean([s.get(f"writes_{per}") for s in sums]),
        "energy_j_total": _mean([s.get("energy_j_total") for s in sums]) if rram else None,
        f"energy_j_{per}": _mean([s.get(f"energy_j_{per}") for s in sums]) if rram else None,
        "gpu_j": gpu_j, "asic_j": asic_j,
        f"gpu_j_{per}": _mean([(b.get(per) or {}).get("gpu_j") for b in baselines]),
        f"asic_j_{per}": _mean([(b.get(per) or {}).get("asic_j") for b in baselines]),
        "gpu_over_rram": gpu_j / rram_j if gpu_j is not None and rram_j else None,
        "asic_over_rram": asic_j / rram_j if asic_j is not None and rram_j else None,
        "wall_s": _mean([s.get("wall_s") for s in sums]),
        "score_rank": None, "energy_rank": None, "pareto": False,
        **{f"energy_{per}_{c}": _mean([b.get(c) for b in by_category]) if rram else None
           for c in categories},
    }


def sl_row(runs: Sequence[RunResult], *, table: str = "",
           n_resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """One row of a supervised table: a configuration's final test accuracy (%) per seed, its
    statistics, and the cost columns per epoch."""
    first = runs[0]
    sums = [r.summary for r in runs]
    scores = [s.get("final_score") for s in sums]
    best = [None if s.get("best_test_accuracy") is None else 100 * s["best_test_accuracy"]
            for s in sums]
    protocol = first.protocol
    return {
        "table": table or first.env_id, "task": first.env_id,
        "dataset": protocol.get("dataset"), "network": protocol.get("network"),
        "protocol_id": first.protocol_id, "budget_epochs": first.budget,
        "config": first.config, "backend": first.backend, "preset": first.preset,
        "scheme": first.scheme, "update_mode": first.mode,
        "update_mode_in_effect": sums[0].get("update_mode") if first.backend != "float" else None,
        "seeds": len(runs), "seed_list": [r.seed for r in runs], "final_scores": scores,
        **_score_stats(first.env_id, [float(x) for x in scores if x is not None], n_resamples),
        "best_per_seed": best, "best_mean": _mean(best),
        **_cost_columns(first.backend, sums, "epoch", SL_CATEGORIES),
        "steps_per_s": _mean([s.get("steps_per_s") for s in sums]),
    }


def _rank(rows: list[dict[str, Any]], unit: str = "episode") -> None:
    """Score rank (1 = best IQM), energy rank (1 = least energy per `unit`), Pareto
    membership."""
    energy = f"energy_j_per_{unit}"
    scored = [r for r in rows if r["iqm"] is not None]
    for r in scored:
        r["score_rank"] = 1 + sum(o["iqm"] > r["iqm"] for o in scored)
    costed = [r for r in rows if r[energy] is not None]
    for r in costed:
        r["energy_rank"] = 1 + sum(o[energy] < r[energy] for o in costed)
    both = [r for r in costed if r["iqm"] is not None]
    for i in pareto_front([(r["iqm"], r[energy]) for r in both]):
        both[i]["pareto"] = True


def atari_aggregate(tables: Sequence[Table], *, n_resamples: int = BOOTSTRAP_RESAMPLES
                    ) -> list[dict[str, Any]]:
    """Per configuration, human-normalised IQM pooled over the Atari games of one protocol.

    Protocols are compared without their game-specific keys (env id, game, version); strata of
    the bootstrap = games. Empty unless at least two games share a protocol and budget.
    """
    groups: dict[tuple, dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(dict))
    for t in tables:
        if not t.is_atari:
            continue
        common = {k: v for k, v in t.protocol.items() if k not in ("env_id", "game", "env_version")}
        key = (protocol_id(common), t.budget)
        for config, runs in t.runs.items():
            hns = [human_normalized(t.env_id, r.summary["final_score"]) for r in runs
                   if r.summary.get("final_score") is not None]
            if hns and all(h is not None for h in hns):
                groups[key][config][t.env_id] = hns
    out = []
    for (pid, budget), configs in sorted(groups.items()):
        games = {g for per_game in configs.values() for g in per_game}
        if len(games) < 2:
            continue
        for config, per_game in sorted(configs.items()):
            pooled = [x for v in per_game.values() for x in v]
            low, high = stratified_bootstrap_ci(per_game, iqm, n_resamples=n_resamples, seed=0)
            out.append({"protocol_id": pid, "budget_steps": budget, "config": config,
                        "games": len(per_game), "runs": len(pooled), "hns_iqm": iqm(pooled),
                        "hns_ci_low": low, "hns_ci_high": high,
                        "hns_mean": float(np.mean(pooled)), "game_list": sorted(per_game)})
    return out


# ---------------------------------------------------------------------------------------------
# output: markdown, csv, json
# ---------------------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


#: Every return (score, IQM and its interval, eval) is shown with one decimal.
RETURN_SPEC = ".1f"


def _ret(value: Any) -> str:
    """A return as the Markdown tables show it (RETURN_SPEC)."""
    return _fmt(value, RETURN_SPEC)


def format_duration(seconds: float | None) -> str:
    """Wall time for people: "4.2 s", "42 s", "12 min", "3.1 h", "69 d" (two significant digits)."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _protocol_line(p: dict[str, Any]) -> str:
    cap = p.get("max_episode_steps")
    return (f"env id `{p.get('env_id')}` (v{p.get('env_version', '?')}), frameskip "
            f"{p.get('frameskip', '?')}, sticky actions {p.get('repeat_action_probability', '?')}, "
            f"action set {p.get('action_set', '?')}, lost life ends training episode: "
            f"{_fmt(p.get('terminal_on_life_loss'))}, reward clipping "
            f"{p.get('reward_clipping', '?')} ({p.get('reward_clipping_scope', '-')}), logged "
            f"return: {p.get('logged_return', '?')}, episode cap {cap} steps")


def render_markdown(tables: Sequence[Table], aggregate: Sequence[dict[str, Any]] = (),
                    incomplete: Sequence[str] = (), title: str = "rlime leaderboard",
                    description: str = "") -> str:
    lines = [f"# {title}", ""]
    if description:
        lines += [description, ""]
    lines += ["Score = per seed the mean of the last 100 training-episode returns (raw game "
              "score); rows ranked by its IQM across seeds, with a 95 % stratified-bootstrap "
              "interval; returns with one decimal. Costs are means over seeds; `writes` are "
              "weight-programming pulses (initial programming and Q-array updates); "
              "`sync pulses/ep` (target-network syncs) and `replay bits/ep` (replay bits "
              "written to RRAM memory-mode cells) are counted beside them, never in them; "
              "energy in joules; `GPU/RRAM` and `ASIC/RRAM` "
              "are the baseline energy of the same training workload over the RRAM chip's. "
              "Float rows run the Q-network in float PyTorch: no device writes, no device "
              "energy. `E/ep rank` ranks energy per episode (1 = least); `Pareto` marks rows "
              "no other row beats on both score IQM and energy per episode.", ""]
    if not tables:
        lines += ["No finished runs yet.", ""]
    for t in tables:
        lines += [f"## {t.key}", "", f"Protocol `{protocol_id(t.protocol)}`: "
                  f"{_protocol_line(t.protocol)}. Budget {t.budget:,} environment steps.", ""]
        header = ["rank", "configuration", "seeds", "final score per seed", "mean ± std",
                  "IQM [95 % CI]"]
        if t.is_atari:
            header += ["human-norm. (mean / IQM)"]
        header += ["eval", "best eval per seed", "writes total", "writes/ep", "sync pulses/ep",
                   "replay bits/ep", "energy/ep (J)", "energy total (J)",
                   "GPU (J)", "ASIC (J)", "GPU/RRAM", "ASIC/RRAM", "E/ep rank", "Pareto",
                   "wall", "SPS"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in t.rows:
            cells = [_fmt(r["score_rank"]), r["config"], str(r["seeds"]),
                     ", ".join(f"{_ret(x)} (s{s})" for x, s in
                               zip(r["final_scores"], r["seed_list"])),
                     f"{_ret(r['score_mean'])} ± {_ret(r['score_std'])}",
                     f"{_ret(r['iqm'])} [{_ret(r['iqm_ci_low'])}, {_ret(r['iqm_ci_high'])}]"]
            if t.is_atari:
                cells += [f"{_fmt(r['hns_mean'], '.3f')} / {_fmt(r['hns_iqm'], '.3f')}"]
            cells += [_ret(r["eval_mean"]), ", ".join(_ret(x) for x in r["eval_best_per_seed"]),
                      _fmt(r["writes_total"], ".4g"),
                      _fmt(r["writes_per_episode"], ".4g"),
                      _fmt(r["target_sync_pulses_per_episode"], ".4g"),
                      _fmt(r["replay_write_bits_per_episode"], ".4g"),
                      _fmt(r["energy_j_per_episode"], ".3e"),
                      _fmt(r["energy_j_total"], ".3e"), _fmt(r["gpu_j"], ".3e"),
                      _fmt(r["asic_j"], ".3e"), _fmt(r["gpu_over_rram"], ".3g"),
                      _fmt(r["asic_over_rram"], ".3g"), _fmt(r["energy_rank"]),
                      "★" if r["pareto"] else "", format_duration(r["wall_s"]),
                      _fmt(r["sps"], ".0f")]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        costed = [r for r in t.rows if r["energy_per_episode_tuning"] is not None]
        if costed:
            lines += ["Energy per episode by category (J):", "",
                      "| configuration | best eval | " + " | ".join(CATEGORIES) + " |",
                      "|" + "---|" * (len(CATEGORIES) + 2)]
            for r in costed:
                lines.append(f"| {r['config']} | {_ret(r['eval_best'])} | " + " | ".join(
                    _fmt(r[f'energy_per_episode_{c}'], '.3e') for c in CATEGORIES) + " |")
            lines.append("")
        lines += _sweep_markdown(t)
    if aggregate:
        lines += ["## Atari aggregate (human-normalised)", "",
                  "Per configuration, games of one protocol pooled; IQM with a stratified "
                  "bootstrap (strata = games).", "",
                  "| protocol | budget | configuration | games | runs | HNS IQM [95 % CI] | HNS mean |",
                  "|---|---|---|---|---|---|---|"]
        for a in aggregate:
            lines.append(f"| `{a['protocol_id']}` | {a['budget_steps']:,} | {a['config']} | "
                         f"{a['games']} | {a['runs']} | {a['hns_iqm']:.3f} [{a['hns_ci_low']:.3f}, "
                         f"{a['hns_ci_high']:.3f}] | {a['hns_mean']:.3f} |")
        lines.append("")
    if incomplete:
        lines += ["## Not in the tables (unfinished or not started)", ""]
        lines += [f"- {name}" for name in incomplete] + [""]
    return "\n".join(lines)


def _sweep_markdown(t: Table) -> list[str]:
    """The table's sweep (`rlime.bench.sweep_view`): factor by factor, the default marked."""
    curves = sweep_curves(t)
    if not curves:
        return []
    lines = ["One factor at a time from the default (the baseline run, shared by every factor):",
             "", "| configuration | factor | value | seeds | IQM [95 % CI] | best eval | "
             "writes/ep | energy/ep (J) |", "|---|---|---|---|---|---|---|---|"]
    for c in curves:
        for value, r, _ in c.points:
            shown = format_value(value) + (" (default)" if not r["factor"] else "")
            lines.append(f"| {c.base} | {c.factor} | {shown} | {_score_cells(r)} | "
                         f"{_fmt(r['writes_per_episode'], '.4g')} | "
                         f"{_fmt(r['energy_j_per_episode'], '.3e')} |")
    lines += [f"| {r['config']} (reference) | - | - | {_score_cells(r)} | - | - |"
              for r in t.rows if r["backend"] == "float"]
    return lines + [""]


def _score_cells(r: dict[str, Any]) -> str:
    """seeds | IQM [95 % CI] | best eval, of a row."""
    return (f"{r['seeds']} | {_ret(r['iqm'])} [{_ret(r['iqm_ci_low'])}, "
            f"{_ret(r['iqm_ci_high'])}] | {_ret(r['eval_best'])}")


def render_sl_markdown(tables: Sequence[Table], incomplete: Sequence[str] = (),
                       title: str = "rlime leaderboard", description: str = "") -> str:
    """A supervised suite's leaderboard: per (dataset, network) table, one row per
    configuration."""
    lines = [f"# {title}", ""] + ([description, ""] if description else [])
    lines += ["Score = per seed the test accuracy (%) after the last epoch; rows ranked by its "
              "IQM across seeds, with a 95 % bootstrap interval. `best` is the best epoch's "
              "test accuracy (%). Costs are means over seeds of the training workload (test "
              "passes and initial programming apart; `writes total` includes the programming): "
              "`writes` are weight-programming pulses, energy in joules; `GPU/RRAM` and "
              "`ASIC/RRAM` are the baseline energy of the same training over the RRAM chip's "
              "(TIME's claim: ASIC/RRAM 5.3 on MNIST). `mode` is the update mode asked for "
              "(time: plain SGD, no residual; mixed-precision: a digital residual) and, after "
              "the slash, the mode in effect. Float rows: float PyTorch, no device cost.", ""]
    if not tables:
        lines += ["No finished runs yet.", ""]
    for t in tables:
        p = t.protocol
        lines += [f"## {t.key}", "", f"Protocol `{protocol_id(p)}`: {p.get('source')}, split "
                  f"{p.get('split')}, {p.get('train_images')} training / {p.get('test_images')} "
                  f"test images of {p.get('image_shape')}, network {p.get('network')} "
                  f"({p.get('parameters')} parameters), {p.get('steps_per_epoch')} steps an "
                  f"epoch. Budget {t.budget} epochs.", ""]
        header = ["rank", "configuration", "seeds", "test accuracy per seed", "mean ± std",
                  "IQM [95 % CI]", "best", "writes total", "writes/epoch", "energy/epoch (J)",
                  "GPU (J)", "ASIC (J)", "GPU/RRAM", "ASIC/RRAM", "E/epoch rank", "Pareto",
                  "wall"]
        rows = [[_fmt(r["score_rank"]), r["config"], str(r["seeds"]),
                 ", ".join(f"{_fmt(x, '.2f')} (s{s})" for x, s in zip(r["final_scores"],
                                                                      r["seed_list"])),
                 f"{_fmt(r['score_mean'], '.2f')} ± {_fmt(r['score_std'], '.2f')}",
                 f"{_fmt(r['iqm'], '.2f')} [{_fmt(r['iqm_ci_low'], '.2f')}, "
                 f"{_fmt(r['iqm_ci_high'], '.2f')}]", _fmt(r["best_mean"], ".2f"),
                 _fmt(r["writes_total"], ".4g"), _fmt(r["writes_per_epoch"], ".4g"),
                 _fmt(r["energy_j_per_epoch"], ".3e"), _fmt(r["gpu_j"], ".3e"),
                 _fmt(r["asic_j"], ".3e"), _fmt(r["gpu_over_rram"], ".3g"),
                 _fmt(r["asic_over_rram"], ".3g"), _fmt(r["energy_rank"]),
                 "★" if r["pareto"] else "", format_duration(r["wall_s"])] for r in t.rows]
        lines += _md_table(header, rows)
        costed = [r for r in t.rows if r["energy_j_per_epoch"] is not None]
        if costed:
            lines += ["Energy per epoch by category (J), and the mode in effect:", ""]
            lines += _md_table(["configuration", "mode", *SL_CATEGORIES],
                               [[r["config"], f"{r['update_mode']} / {r['update_mode_in_effect']}",
                                 *(_fmt(r[f"energy_per_epoch_{c}"], ".3e") for c in SL_CATEGORIES)]
                                for r in costed])
    if incomplete:
        lines += ["## Not in the tables (unfinished or not started)", ""]
        lines += [f"- {name}" for name in incomplete] + [""]
    return "\n".join(lines)


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table (and a blank line after it)."""
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(row) + " |" for row in rows] + [""])


def _csv_value(value: Any) -> Any:
    if isinstance(value, list):
        return ";".join("" if v is None else str(v) for v in value)
    if value is None:
        return ""
    return value


def render_csv(tables: Sequence[Table], columns: Sequence[str] = COLUMNS) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for t in tables:
        for r in t.rows:
            writer.writerow({k: _csv_value(r[k]) for k in columns})
    return buf.getvalue()


def render_json(tables: Sequence[Table], aggregate: Sequence[dict[str, Any]] = (),
                incomplete: Sequence[str] = (), meta: dict[str, Any] | None = None,
                columns: Sequence[str] = COLUMNS) -> str:
    data = {**(meta or {}), "columns": list(columns),
            "tables": [{"table": t.key, "env_id": t.env_id, "protocol_id": protocol_id(t.protocol),
                        "protocol": t.protocol, "budget_steps": t.budget,
                        "rows": [{k: r[k] for k in columns} for r in t.rows]} for t in tables],
            "atari_aggregate": list(aggregate), "incomplete": list(incomplete)}
    return json.dumps(json_safe(data), indent=2) + "\n"


def write_leaderboard(out_dir: str | Path, *, plots: bool = True,
                      n_resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """Write leaderboard.{md,csv,json} (and plots/) for the runs under `out_dir`.

    Returns {"tables": [...], "files": [paths], "incomplete": [names]}.
    """
    out = Path(out_dir)
    runs, missing = load_runs(out)
    manifest = _read_json(out / MANIFEST) or {}
    tables = build_tables(runs, n_resamples=n_resamples)
    aggregate = atari_aggregate(tables, n_resamples=n_resamples)
    units = {r.name: "epochs" if r.kind == "sl" else "steps" for r in runs}
    incomplete = sorted([f"{r.name}: {int(r.summary.get(units[r.name], 0)):,} of {r.budget:,} "
                         f"{units[r.name]}" for r in runs if not r.complete]
                        + [f"{name}: not started" for name in missing])
    title = f"rlime leaderboard: {manifest['name']}" if manifest.get("name") else "rlime leaderboard"
    supervised = manifest.get("kind") == "sl" or bool(runs) and all(r.kind == "sl" for r in runs)
    if supervised:   # a supervised suite: its own rows and columns
        markdown = render_sl_markdown(tables, incomplete, title, manifest.get("description", ""))
        columns: Sequence[str] = SL_COLUMNS
    else:
        markdown = render_markdown(tables, aggregate, incomplete, title,
                                   manifest.get("description", ""))
        columns = COLUMNS
    files = {out / "leaderboard.md": markdown,
             out / "leaderboard.csv": render_csv(tables, columns),
             out / "leaderboard.json": render_json(tables, aggregate, incomplete,
                                                   {"suite": manifest.get("name")}, columns)}
    for path, text in files.items():
        atomic_write(path, text)
    written = list(files)
    if plots and tables:
        written += plot_tables(tables, out / "plots")
    return {"tables": tables, "files": written, "incomplete": incomplete}


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------

GRID_POINTS = 200


@dataclass(frozen=True)
class _View:
    """What a table's plots show: the records file, their x axis and score, per what unit."""

    records: str
    x: str
    score: str
    scale: float           # score x scale is plotted (test accuracy in %)
    unit: str
    score_label: str
    x_label: str
    final_label: str


DQN_VIEW = _View("episodes.jsonl", "step", "return", 1.0, "episode", "episode return (smoothed)",
                 "environment steps", "final score: IQM over seeds\n(mean of last 100 episode "
                                      "returns per seed)")
SL_VIEW = _View("epochs.jsonl", "epoch", "test_accuracy", 100.0, "epoch", "test accuracy (%)",
                "epochs", "final test accuracy (%): IQM over seeds")


def _view(t: Table) -> _View:
    return SL_VIEW if next(iter(t.runs.values()))[0].kind == "sl" else DQN_VIEW


def _episode_series(path: Path, view: _View = DQN_VIEW) -> dict[str, np.ndarray] | None:
    """The run's records as arrays: x ("step"), score ("return"), writes, energy_j."""
    try:
        records = read_jsonl(path / view.records)
    except JsonlError as err:
        warnings.warn(f"{err}; its curve is left out of the plots")
        return None
    steps, returns, writes, energy = [], [], [], []
    for e in records:
        steps.append(e[view.x])
        returns.append(view.scale * e[view.score])
        writes.append(e.get("writes", 0))
        energy.append(e.get("energy_j", 0.0))
    if not steps:
        return None
    return {"step": np.asarray(steps, float), "return": np.asarray(returns, float),
            "writes": np.asarray(writes, float), "energy_j": np.asarray(energy, float)}


def smooth_on_grid(steps: np.ndarray, values: np.ndarray, grid: np.ndarray,
                   window: int | None = None) -> np.ndarray:
    """Rolling mean over the last `window` episodes, read off at each grid step.

    The value at grid step g is the mean of the `window` episodes that ended last at or before
    g (NaN before the first episode ends). Default window: n/20 episodes, clipped to [1, 100].
    """
    n = len(values)
    if window is None:
        window = int(np.clip(n // 20, 1, 100))
    csum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.searchsorted(steps, grid, side="right")   # episodes finished by g
    lo = np.maximum(idx - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (csum[idx] - csum[lo]) / (idx - lo)
    out[idx == 0] = np.nan
    return out


def _band(curves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stack = np.vstack(curves)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN columns before any episode
        return np.nanmean(stack, 0), np.nanmin(stack, 0), np.nanmax(stack, 0)


def _colors(tables: Sequence[Table]) -> dict[str, Any]:
    import matplotlib

    labels = sorted({c for t in tables for c in t.runs}, key=lambda c: (c.startswith("float"), c))
    cmap = matplotlib.colormaps["tab10"]
    return {label: cmap(i % 10) for i, label in enumerate(labels)}


def plot_tables(tables: Sequence[Table], plots_dir: str | Path) -> list[Path]:
    """Per table: reward / writes / energy curves, and return vs energy with the Pareto front."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    colors = _colors(tables)
    written = []
    for t in tables:
        with plt.rc_context({"figure.dpi": 110, "font.size": 9}):
            path = plots_dir / f"{t.slug}-curves.png"
            if _plot_curves(plt, t, colors, path, _view(t)):
                written.append(path)
            path = plots_dir / f"{t.slug}-pareto.png"
            fig = pareto_figure(plt, t, colors, _view(t))
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
            fig = sweep_figure(plt, t, colors)
            if fig is not None:
                path = plots_dir / f"{t.slug}-sweep.png"
                fig.savefig(path)
                plt.close(fig)
                written.append(path)
    return written


def _plot_curves(plt, t: Table, colors: dict[str, Any], path: Path,
                 view: _View = DQN_VIEW) -> bool:
    grid = np.linspace(0, t.budget, GRID_POINTS)
    series = {config: [s for r in runs if r.path is not None
                       and (s := _episode_series(r.path, view)) is not None]
              for config, runs in t.runs.items()}
    if not any(series.values()):
        return False
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(8, 9), constrained_layout=True)
    panels = [("return", view.score_label, False),
              ("writes", f"writes per {view.unit}\n(weight-programming pulses)", True),
              ("energy_j", f"energy per {view.unit} (J)", True)]
    no_cost = []
    for config, runs in series.items():
        if not runs:
            continue
        color = colors[config]
        for ax, (key, _, log) in zip(axes, panels):
            curves = [smooth_on_grid(s["step"], s[key], grid) for s in runs]
            mean, low, high = _band(curves)
            if log:
                positive = np.nanmax(mean) > 0 if np.isfinite(mean).any() else False
                if not positive:
                    if key == "writes":
                        no_cost.append(config)
                    continue
                mean, low, high = (np.where(a > 0, a, np.nan) for a in (mean, low, high))
            label = f"{config} (n={len(runs)})" if key == "return" else config
            ax.plot(grid, mean, color=color, lw=1.6, label=label)
            if len(runs) > 1:
                ax.fill_between(grid, low, high, color=color, alpha=0.2, lw=0)
    for ax, (key, ylabel, log) in zip(axes, panels):
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if log and ax.lines:
            ax.set_yscale("log")
    axes[0].legend(loc="best", fontsize=8, title="configuration (seeds): mean, band = min–max")
    if no_cost:
        axes[1].text(0.01, 0.97, f"no device cost (float PyTorch): {', '.join(no_cost)}",
                     transform=axes[1].transAxes, va="top", fontsize=8, color="0.35")
    axes[-1].set_xlabel(view.x_label)
    axes[-1].set_xlim(0, t.budget)
    fig.suptitle(f"{t.key}: learning curve and device cost per {view.unit}\n"
                 f"(rolling mean over {view.unit}s, on a common grid)")
    fig.savefig(path)
    plt.close(fig)
    return True


def pareto_figure(plt, t: Table, colors: dict[str, Any], view: _View = DQN_VIEW):
    """Score (IQM, 95 % CI) vs energy per episode (epoch) of each row, with the Pareto front."""
    energy = f"energy_j_per_{view.unit}"
    fig, ax = plt.subplots(figsize=(7.5, 5.2), constrained_layout=True)
    costed = [r for r in t.rows if r[energy] and r["iqm"] is not None]
    for r in costed:
        runs = t.runs[r["config"]]
        per_seed = [x.summary.get(energy) for x in runs
                    if x.summary.get(energy)]
        x = r[energy]
        xerr = [[x - min(per_seed)], [max(per_seed) - x]] if per_seed else None
        yerr = [[r["iqm"] - r["iqm_ci_low"]], [r["iqm_ci_high"] - r["iqm"]]]
        ax.errorbar([x], [r["iqm"]], xerr=xerr, yerr=yerr, fmt="o", ms=7, capsize=3,
                    color=colors[r["config"]], label=r["config"] + (" ★ Pareto" if r["pareto"] else ""),
                    mfc=colors[r["config"]] if r["pareto"] else "white", mew=1.5)
    front = sorted((r for r in costed if r["pareto"]), key=lambda r: r[energy])
    if len(front) > 1:
        ax.step([r[energy] for r in front], [r["iqm"] for r in front],
                where="post", color="0.3", ls="--", lw=1, label="Pareto front")
    for r in t.rows:
        if r[energy] is None and r["iqm"] is not None:
            ax.axhline(r["iqm"], color=colors[r["config"]], ls=":", lw=1.5,
                       label=f"{r['config']} (no device energy): IQM")
            ax.axhspan(r["iqm_ci_low"], r["iqm_ci_high"], color=colors[r["config"]], alpha=0.1,
                       label=f"{r['config']}: 95 % CI of that IQM")
    if costed:
        from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

        xs = [r[energy] for r in costed]
        ax.set_xscale("log")
        ax.set_xlim(min(xs) / 4, max(xs) * 4)
        # labelled ticks at 1, 2 and 5 x 10^k (several within even a narrow range), as "20 µJ"
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(EngFormatter(unit="J"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"energy per training {view.unit} (log scale)")
    ax.set_ylabel(view.final_label)
    ax.set_title(f"{t.key}: score vs energy per {view.unit}\n"
                 f"(bars: 95 % bootstrap CI of the IQM; min–max energy over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    return fig
