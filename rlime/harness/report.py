"""Re-price a finished run's energy under any technology preset, without re-running it.

    python -m rlime.report RUN_DIR [--preset optimistic] [--gpu v100] [--asic dadiannao]
                           [--utilisation 0.3] [--minibatch N] [--sweep 1,10,100,1000]
                           [--plot out.png] [--max-rows N | --all-episodes]

Reads ``RUN_DIR/episodes.jsonl`` (one JSON object per finished episode with ``episode``,
``step``, ``return``, ``length``, ``writes``, ``target_sync_pulses``, ``replay_write_bits``,
``energy_j``, ``energy`` and ``ledger``: the episode's ledger difference in
`LedgerSnapshot.as_dict` form), ``RUN_DIR/summary.json`` (the run's whole ledger: setup,
episodes, evaluation, abandoned and unfinished episodes) and ``RUN_DIR/config.toml``
(``[run] energy_preset``, the preset used when ``--preset`` is not given; ``[agent]
batch_size``, the minibatch of the GPU model when ``--minibatch`` is not given).

Prints the totals of the whole run re-priced under the chosen preset (with the same preset
they equal summary.json's; the write counts do not change), where they came from, energy
by category, the RRAM vs GPU and RRAM vs ASIC energy ratios of the training workload
(`rlime.cost.baselines`), the tuning-cost sweep (for each k, the energy and both ratios if
write pulses and verify reads cost k times less), and the last `--max-rows` episodes (default
10; ``--all-episodes`` for every one). ``--plot`` writes the ratios against k (PNG).

Writes are shown split, each under its own name and never summed (`LedgerSnapshot` defines
them): ``writes`` (weight-programming pulses: initial programming and Q-array updates),
``target_sync_pulses`` (target-network syncs) and ``replay_write_bits`` (replay bits written
to RRAM memory-mode cells).

The functions are the train command's too: `reprice_episodes(records, tech)` and
`reprice_summary(total_snapshot, tech, minibatch, ...)` (the dict written to summary.json).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from rlime.common.files import JsonlError, numbered_jsonl, tomllib
from agents.config import DQNConfig
from rlime.cost.baselines import ASIC_PRESETS, DEFAULT_UTILISATION, GPU_PRESETS, compare
from rlime.common.errors import ConfigError
from rlime.cost.energy import (PRESETS as ENERGY_PRESETS, TechnologyPreset, categories, energy_preset,
                               price, price_tables, total, tuning_cost_scaled)
from rlime.drl.phases import DQN_PHASES
from rlime.harness.claims import claims, format_claims
from rlime.sl.phases import SL_PHASES
from rlime.sl.summary import without_data
from rlime.hw.config import DeviceConfig, HardwareConfig, TileConfig
from rlime.hw.optim import sram_bits_per_cell
from rlime.hw.ledger import LedgerSnapshot


DEFAULT_SWEEP: tuple[float, ...] = (1, 10, 100, 1000)
SUMMARY_FILE = "summary.json"
# summary.json's ledger parts besides the episodes, in the order they are shown
RUN_PARTS = (("setup", "setup (initial programming)"), ("eval", "evaluation rounds"),
             ("abandoned", "abandoned episodes"), ("in_progress", "unfinished episodes"))
CATEGORIES = categories(DQN_PHASES)  # energy categories of a DQN run
EPISODES_FILE = "episodes.jsonl"
SL_EPOCHS_FILE = "epochs.jsonl"   # a supervised run's records (rlime.sl)
CONFIG_FILE = "config.toml"


# ---- library functions -------------------------------------------------------------------


def record_snapshot(record: dict[str, Any]) -> LedgerSnapshot:
    """The episode's ledger difference; ValueError if the record has none or it is malformed."""
    ledger = record.get("ledger")
    if not isinstance(ledger, dict) or not all(isinstance(v, dict) for v in ledger.values()):
        raise ValueError("it has no 'ledger' object of the form {phase: {kind: value}} (the "
                         "episode's ledger difference, needed to re-price it)")
    for phase, row in ledger.items():
        for kind, value in row.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f"ledger entry ({phase!r}, {kind!r}) = {value!r} is not a "
                                 f"finite number")
    return LedgerSnapshot.from_dict(ledger, DQN_PHASES)


def write_counts(snapshot: LedgerSnapshot) -> dict[str, int]:
    """The writes of `snapshot`, split: ``writes`` (weight-programming pulses, the headline),
    ``target_sync_pulses`` and ``replay_write_bits`` (`LedgerSnapshot` defines each)."""
    return {"writes": snapshot.writes, "target_sync_pulses": snapshot.copy_pulses,
            "replay_write_bits": snapshot.memory_write_bits}


def reprice_episodes(records: Sequence[dict[str, Any]], tech: TechnologyPreset,
                     snapshots: Sequence[LedgerSnapshot] | None = None) -> list[dict[str, Any]]:
    """Copies of `records` with ``energy_j`` and ``energy`` re-priced under `tech`.

    The write counts (``writes``, ``target_sync_pulses``, ``replay_write_bits``) are taken
    from the ledger as `LedgerSnapshot` defines them (so records written before the split get
    it too); every other field is kept. `snapshots` (one per record) skips parsing the ledgers
    again.
    """
    if snapshots is None:
        snapshots = []
        for i, record in enumerate(records):
            try:
                snapshots.append(record_snapshot(record))
            except ValueError as err:
                raise ValueError(f"episode record {i} (episode "
                                 f"{record.get('episode', '?')}): {err}") from None
    if not records:
        return []
    energies = price_tables(np.stack([s.table for s in snapshots]), tech, DQN_PHASES)
    out = []
    for record, snapshot, row in zip(records, snapshots, energies):
        new = dict(record)
        new.update(write_counts(snapshot))
        new["energy"] = {c: float(v) for c, v in zip(CATEGORIES, row)}
        new["energy_j"] = float(row.sum())
        out.append(new)
    return out


def reprice_summary(total_snapshot: LedgerSnapshot, tech: TechnologyPreset, minibatch: int,
                    gpu: str = "titanx-maxwell", utilisation: float = DEFAULT_UTILISATION,
                    asic: str = "dadiannao", sweep: Iterable[float] = DEFAULT_SWEEP,
                    launches: dict[str, float] | None = None) -> dict[str, Any]:
    """Totals, baselines, ratios and the tuning-cost sweep of a run (JSON-safe dict);
    `launches`: GPU kernel launches per phase (summary.json's, for the launch floor)."""
    cmp = compare(total_snapshot, tech, gpu=gpu, utilisation=utilisation, asic=asic,
                  minibatch=minibatch, launches=launches)
    rows = []
    for k in sweep:
        scaled = tuning_cost_scaled(tech, k)
        rram_j = total(total_snapshot, scaled)
        rows.append({
            "k": float(k),
            "rram_j": rram_j,
            "gpu_over_rram": cmp["gpu_j"] / rram_j if rram_j > 0 else None,
            "asic_over_rram": cmp["asic_j"] / rram_j if rram_j > 0 else None,
        })
    return {
        "energy_preset": tech.name,
        "energy_j": cmp["rram_j"],
        "energy": price(total_snapshot, tech),
        **write_counts(total_snapshot),
        "ledger": total_snapshot.as_dict(),
        "prices_pj": tech.table(),
        "baselines": cmp,
        "tuning_sweep": rows,
    }


def run_ledger(run_dir: Path, episodes: Sequence[LedgerSnapshot]
               ) -> tuple[dict[str, LedgerSnapshot], str | None]:
    """The run's ledger in parts: "episodes" (the sum of the episode records) plus summary.json's
    setup / eval / abandoned / in_progress when it matches episodes.jsonl, and their "total".

    Returns (parts, note); the note says what could not be included and why (None if all)."""
    parts = {"episodes": LedgerSnapshot(np.sum([s.table for s in episodes], axis=0), DQN_PHASES)}
    path = run_dir / SUMMARY_FILE
    note = None
    try:
        summary = json.loads(path.read_text())
        ledger = summary["ledger"]
        stored = {name: LedgerSnapshot.from_dict(ledger[name], DQN_PHASES)
                  for name, _ in RUN_PARTS + (("total", ""),)}
    except FileNotFoundError:
        summary, note = None, f"{path} does not exist yet"
    except (ValueError, KeyError, TypeError) as err:
        summary, note = None, f"{path} cannot be read ({type(err).__name__}: {err})"
    if summary is not None and summary.get("episodes") != len(episodes):
        note = (f"{path} was written at a checkpoint with {summary.get('episodes')} episodes; "
                f"episodes.jsonl has {len(episodes)}")
        summary = None
    if summary is not None:
        parts.update({name: stored[name] for name, _ in RUN_PARTS})
    parts["total"] = LedgerSnapshot(np.sum([p.table for p in parts.values()], axis=0), DQN_PHASES)
    if summary is not None and not np.allclose(parts["total"].table, stored["total"].table,
                                               rtol=1e-9, atol=1e-12):
        note = f"the parts do not add up to {path}'s total ledger; the file may be damaged"
    if note is not None:
        note += ": only the finished episodes are counted (no setup, evaluation or unfinished work)"
    return parts, note


def training_workload(parts: dict[str, LedgerSnapshot]) -> LedgerSnapshot:
    """What the baselines compare: the run without its setup and evaluation (as summary.json)."""
    training = parts["total"] - parts.get("setup", LedgerSnapshot.zeros(DQN_PHASES))
    return training - parts.get("eval", LedgerSnapshot.zeros(DQN_PHASES))


# ---- formatting ---------------------------------------------------------------------------


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def format_table(records: Sequence[dict[str, Any]], max_rows: int) -> str:
    """Per-episode table of the last `max_rows` records: episode, step, return, writes,
    target-sync pulses, replay write bits, energy_j and the category joules."""
    header = ["episode", "step", "return", "writes", "sync_pulses", "replay_bits", "energy_j",
              *CATEGORIES]
    specs = ["d", "d", ".2f", "d", "d", "d", ".4e", *[".3e"] * len(CATEGORIES)]
    shown = list(records)[-max_rows:]
    rows = []
    for r in shown:
        energy = r.get("energy", {})
        values = [r.get("episode"), r.get("step"), r.get("return"), r.get("writes"),
                  r.get("target_sync_pulses"), r.get("replay_write_bits"), r.get("energy_j"),
                  *[energy.get(c) for c in CATEGORIES]]
        rows.append([_fmt(v, s if not isinstance(v, float) or s != "d" else ".0f")
                     for v, s in zip(values, specs)])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    if len(shown) < len(records):
        lines.insert(0, f"(last {len(shown)} of {len(records)} episodes)")
    return "\n".join(lines)


def _times(value: float | None) -> str:
    return "undefined (no RRAM energy)" if value is None else f"{value:,.1f}x"


def format_run(parts: dict[str, LedgerSnapshot], tech: TechnologyPreset, episodes: int) -> str:
    """The whole run's writes (weight-programming pulses; target-sync pulses and replay write
    bits beside them) and energy, part by part (they add up to the total)."""
    labels = dict((("episodes", f"training episodes ({episodes:,})"),) + RUN_PARTS
                  + (("total", "whole run"),))
    width = max(len(labels[name]) for name in parts)
    lines = [f"Whole run (energy preset {tech.name!r}):",
             f"  {'':<{width}}  {'writes':>15}  {'sync pulses':>13}  {'replay bits':>17}  "
             f"{'energy':>12}"]
    for name, snapshot in parts.items():
        lines.append(f"  {labels[name]:<{width}}  {snapshot.writes:>15,}  "
                     f"{snapshot.copy_pulses:>13,}  {snapshot.memory_write_bits:>17,}  "
                     f"{total(snapshot, tech):>10.4e} J")
    return "\n".join(lines)


def format_reprice(summary: dict[str, Any]) -> str:
    cmp = summary["baselines"]
    g, a = cmp["gpu_model"], cmp["asic_model"]
    lines = [
        f"Training workload (the run without setup and evaluation; preset "
        f"{summary['energy_preset']!r}):",
        f"  writes (weight-programming pulses): {summary['writes']:,}",
        *([f"  target-sync pulses: {summary['target_sync_pulses']:,}",
           f"  replay write bits (RRAM memory mode): {summary['replay_write_bits']:,}"]
          if "target_sync" in summary["energy"] else []),   # DQN's; none in supervised runs
        f"  RRAM energy: {summary['energy_j']:.4e} J",
    ]
    for c, e in summary["energy"].items():
        share = e / summary["energy_j"] * 100 if summary["energy_j"] > 0 else 0.0
        lines.append(f"    {c:<14} {e:.4e} J  ({share:5.1f} %)")
    lines += [
        "",
        "Baselines, same workload:",
        f"  GPU {g['gpu']['name']}: {cmp['gpu_j']:.4e} J  ({g['flops']:.3e} FLOP, "
        f"{g['bytes']:.3e} bytes, {g['seconds']:.3e} s at utilisation {g['utilisation']:g} of "
        f"{g['gpu']['peak_fp32_flops']:.3g} FLOP/s, {g['gpu']['board_power_w']:g} W, "
        f"minibatch {g['minibatch']})",
        f"  ASIC {a['asic']['name']}: {cmp['asic_j']:.4e} J  ({a['ops']:.3e} ops at "
        f"{a['asic']['op_j'] * 1e12:.3f} pJ, eDRAM {a['edram_j']:.3e} J, off-chip "
        f"{a['dram_j']:.3e} J)",
        f"  RRAM vs GPU : GPU uses {_times(cmp['gpu_over_rram'])} the RRAM energy",
        f"  RRAM vs ASIC: ASIC uses {_times(cmp['asic_over_rram'])} the RRAM energy",
    ]
    band = cmp.get("gpu_band")
    if band is not None and band["low"] is not None:
        c = band["central"]
        floor = (f"launch floor {c['launch_latency_s'] * 1e6:g} us per kernel"
                 if c["launch_floor"] else "no launch floor (kernel counts unknown)")
        lines += [
            f"  GPU/RRAM band over {', '.join(band['gpus'])} x utilisation "
            f"{', '.join(f'{u:g}' for u in band['utilisations'])}: "
            f"{band['low']:,.1f}x .. {band['high']:,.1f}x",
            f"    central {_times(c['gpu_over_rram'])} ({c['gpu']}, utilisation "
            f"{c['utilisation']:g}, {floor}; board at idle + u x (TDP - idle))",
        ]
    lines += [
        "",
        "Tuning-cost sweep (write pulses and verify reads k times cheaper):",
        f"  {'k':>8}  {'RRAM J':>11}  {'GPU/RRAM':>10}  {'ASIC/RRAM':>10}",
    ]
    for row in summary["tuning_sweep"]:
        gr = "-" if row["gpu_over_rram"] is None else f"{row['gpu_over_rram']:.1f}"
        ar = "-" if row["asic_over_rram"] is None else f"{row['asic_over_rram']:.1f}"
        lines.append(f"  {row['k']:>8g}  {row['rram_j']:>11.4e}  {gr:>10}  {ar:>10}")
    return "\n".join(lines)


def plot_sweep(summary: dict[str, Any], path: str | Path) -> None:
    """PNG of GPU/RRAM and ASIC/RRAM energy ratios against the tuning-cost divisor k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["tuning_sweep"]
    ks = [r["k"] for r in rows]
    cmp = summary["baselines"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("gpu_over_rram", f"GPU ({cmp['gpu_model']['gpu']['name']}, "
                                         f"utilisation {cmp['utilisation']:g}) / RRAM"),
                       ("asic_over_rram", f"ASIC ({cmp['asic_model']['asic']['name']}) / RRAM")):
        ys = [np.nan if r[key] is None else r[key] for r in rows]
        ax.plot(ks, ys, "o-", label=label)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="parity")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tuning cost reduced k times")
    ax.set_ylabel("baseline energy / RRAM energy")
    share = summary["energy"]["tuning"] / summary["energy_j"] if summary["energy_j"] > 0 else 0.0
    ax.set_title(f"energy preset {summary['energy_preset']!r}: tuning is {100 * share:.2f} % "
                 f"of the RRAM energy at k = 1", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- command line ---------------------------------------------------------------------------


def _fail(message: str) -> SystemExit:
    return SystemExit(f"rlime.report: {message}")


def load_episodes(path: Path) -> tuple[list[dict[str, Any]], list[LedgerSnapshot]]:
    """Records and their ledger snapshots; SystemExit naming the file and line on bad input."""
    if not path.is_file():
        raise _fail(f"{path} does not exist. A run directory written by `python -m rlime.train` "
                    f"holds {EPISODES_FILE} (one JSON object per finished episode); check the "
                    f"path, or wait until the run has finished its first episode.")
    records, snapshots = [], []
    try:
        for number, record in numbered_jsonl(path):
            try:
                snapshot = record_snapshot(record)
            except ValueError as err:
                raise _fail(f"{path}, line {number}: cannot read this episode record: {err}. "
                            f"Each line must be one JSON object with at least episode, step, "
                            f"return, writes and ledger ({{phase: {{kind: value}}}}); fix or "
                            f"delete the line.") from None
            records.append(record)
            snapshots.append(snapshot)
    except JsonlError as err:
        raise _fail(str(err)) from None
    if not records:
        raise _fail(f"{path} holds no episode records, so there is nothing to re-price.")
    return records, snapshots


def load_config(run_dir: Path) -> dict[str, Any]:
    """RUN_DIR/config.toml as a dict ({} if absent); SystemExit if it is not valid TOML."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise _fail(f"{path} is not valid TOML ({err}); fix it or pass --preset.") from None


def configured_preset(run_dir: Path, config: dict[str, Any] | None = None) -> str | None:
    """`[run] energy_preset` from RUN_DIR/config.toml; None if the file or key is absent."""
    config = load_config(run_dir) if config is None else config
    run = config.get("run", {})
    value = run.get("energy_preset") if isinstance(run, dict) else None
    if value is not None and not isinstance(value, str):
        raise _fail(f"{run_dir / CONFIG_FILE}: [run] energy_preset = {value!r} must be a "
                    f"preset name, one of {', '.join(ENERGY_PRESETS)}.")
    return value


def configured_hardware(config: dict[str, Any]) -> tuple[DeviceConfig | None, TileConfig | None]:
    """The run's cells and tiles (`[hardware]` of config.toml): their conductances and line
    lengths set the read, write and memory-mode energies whatever preset prices them;
    (None, None) if config.toml has no device."""
    hardware = config.get("hardware")
    if not isinstance(hardware, dict) or "device" not in hardware:
        return None, None
    built = HardwareConfig.from_dict(hardware)
    return built.device, built.tile


def _rules(config: dict[str, Any]) -> Any:
    """config.toml's table of the update rule: `[agent]` (DQN) or `[train]` (supervised)."""
    return config.get("agent", config.get("train", {}))


def configured_sram_bits_per_cell(config: dict[str, Any]) -> float | None:
    """The SRAM a cell holds for the run's update rule and residual (None if config.toml does
    not say)."""
    try:
        return sram_bits_per_cell(_rules(config)["update_rule"],
                                  config["hardware"]["tuning"]["residual"])
    except (KeyError, TypeError):
        return None


def configured_minibatch(config: dict[str, Any]) -> int | None:
    """`[agent] batch_size` (`[train]` for a supervised run) from config.toml, if it is a
    positive integer."""
    agent = _rules(config)
    value = agent.get("batch_size") if isinstance(agent, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def _parse_sweep(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"--sweep {text!r}: give comma-separated factors > 0, "
                                         f"e.g. 1,10,100,1000")
    return values


def _parse_utilisation(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"--utilisation {text!r}: give the fraction of peak "
                                         f"FLOPS achieved, in (0, 1]")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rlime.report", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", type=Path, nargs="+",
                   help="a run directory (several with --claims)")
    p.add_argument("--claims", action="store_true",
                   help="the paper's claims next to what these runs measure (rlime.harness.claims)")
    p.add_argument("--preset", choices=sorted(ENERGY_PRESETS),
                   help="energy preset to re-price with (default: config.toml [run] "
                        "energy_preset, else 'default'); its prices are applied to the run's "
                        "own cells (config.toml [hardware] device)")
    p.add_argument("--gpu", choices=sorted(GPU_PRESETS), default="titanx-maxwell")
    p.add_argument("--asic", choices=sorted(ASIC_PRESETS), default="dadiannao")
    p.add_argument("--utilisation", type=_parse_utilisation, default=DEFAULT_UTILISATION,
                   help=f"fraction of the GPU's peak FP32 FLOPS achieved (default "
                        f"{DEFAULT_UTILISATION})")
    p.add_argument("--minibatch", type=int,
                   help=f"training minibatch for the GPU weight-traffic model (default: "
                        f"config.toml [agent] batch_size, else DQN's default {DQNConfig().batch_size})")
    p.add_argument("--sweep", type=_parse_sweep, default=DEFAULT_SWEEP,
                   help="tuning-cost divisors k, comma-separated (default 1,10,100,1000)")
    p.add_argument("--plot", type=Path, help="write the ratio-vs-k plot to this PNG")
    rows = p.add_mutually_exclusive_group()
    rows.add_argument("--max-rows", type=int, default=10, metavar="N",
                      help="episodes shown in the per-episode table: the last N (default 10; "
                           "0 = no table)")
    rows.add_argument("--all-episodes", action="store_true", help="show every episode")
    return p


def _configured_tech(run_dir: Path, config: dict[str, Any], args: argparse.Namespace
                     ) -> TechnologyPreset:
    """The preset the command line or config.toml names, pricing the run's own cells."""
    name = args.preset or configured_preset(run_dir, config)
    if name is None:
        print(f"note: no [run] energy_preset in {run_dir / CONFIG_FILE}; using 'default'",
              file=sys.stderr)
        name = "default"
    try:
        return energy_preset(name, *configured_hardware(config),
                             configured_sram_bits_per_cell(config))
    except ConfigError as err:
        raise _fail(f"{err} (from {run_dir / CONFIG_FILE}; or pass --preset)") from None


def reprice_sl_run(run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Re-price a supervised run directory (`python -m rlime.sl`): the ledger parts of its
    summary.json (setup, evaluation, unfinished epoch and their total), the training workload
    re-priced with its baselines and sweep, as `reprice_run` returns them (kind "sl")."""
    config = load_config(run_dir)
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
        ledger = summary["ledger"]
        parts = {name: LedgerSnapshot.from_dict(ledger[name], SL_PHASES)
                 for name in ("setup", "eval", "in_progress", "total")}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise _fail(f"{run_dir / SUMMARY_FILE} cannot be read as a supervised run's summary "
                    f"({type(err).__name__}: {err})") from None
    tech = _configured_tech(run_dir, config, args)
    minibatch = args.minibatch or configured_minibatch(config) or 32
    launches = (summary.get("baselines") or {}).get("gpu_band", {}).get("launches")
    training = parts["total"] - parts["setup"] - parts["eval"]
    repriced = reprice_summary(training, tech, minibatch, gpu=args.gpu,
                               utilisation=args.utilisation, asic=args.asic, sweep=args.sweep,
                               launches=launches)
    repriced["run"] = {name: {**write_counts(s), "energy_j": total(s, tech)}
                       for name, s in parts.items()}
    repriced["without_data"] = without_data(training, tech, minibatch, launches)
    repriced["test_accuracy"] = summary.get("test_accuracy")
    repriced["update_mode"] = summary.get("update_mode")
    repriced["dataset"] = f"{summary.get('dataset')}/{summary.get('network')}"
    return {"dir": run_dir, "config": config, "kind": "sl", "records": [], "snapshots": [],
            "parts": parts, "summary": repriced, "tech": tech, "note": None}


def is_sl_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a supervised run (python -m rlime.sl writes epochs.jsonl)."""
    return (run_dir / SL_EPOCHS_FILE).is_file() or "train" in load_config(run_dir)


def reprice_run(run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Re-price one run directory under the command line's choices: its records, ledger parts
    (`run_ledger`), the repriced summary (`reprice_summary`, plus "run": writes and joules per
    part), the preset used and a note of what could not be counted (or None). A supervised
    run's: `reprice_sl_run`."""
    if not run_dir.is_dir():
        raise _fail(f"run directory {run_dir} does not exist or is not a directory. Pass the "
                    f"directory `python -m rlime.train --run-dir` (or `rlime.sl`) wrote (it "
                    f"holds {EPISODES_FILE} or {SL_EPOCHS_FILE}, and {CONFIG_FILE}).")
    if is_sl_run(run_dir):
        return reprice_sl_run(run_dir, args)
    records, snapshots = load_episodes(run_dir / EPISODES_FILE)
    config = load_config(run_dir)
    minibatch = args.minibatch or configured_minibatch(config) or DQNConfig().batch_size
    tech = _configured_tech(run_dir, config, args)
    parts, note = run_ledger(run_dir, snapshots)
    launches = None
    if note is None:  # summary.json matches: its GPU kernel counts cover the same training
        try:
            launches = json.loads((run_dir / SUMMARY_FILE).read_text())["baselines"][
                "gpu_band"]["launches"]
        except (OSError, ValueError, KeyError, TypeError):
            launches = None
    summary = reprice_summary(training_workload(parts), tech, minibatch, gpu=args.gpu,
                              utilisation=args.utilisation, asic=args.asic, sweep=args.sweep,
                              launches=launches)
    summary["run"] = {name: {**write_counts(s), "energy_j": total(s, tech)}
                      for name, s in parts.items()}
    return {"dir": run_dir, "config": config, "kind": "dqn", "records": records,
            "snapshots": snapshots, "parts": parts, "summary": summary, "tech": tech,
            "note": note}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.minibatch is not None and args.minibatch < 1:
        raise _fail(f"--minibatch {args.minibatch} must be >= 1.")
    if args.claims:
        rows = claims([reprice_run(d, args) for d in args.run_dir])
        print(format_claims(rows))
        return {"claims": rows}
    if len(args.run_dir) > 1:
        raise _fail(f"give one RUN_DIR (got {len(args.run_dir)}), or several with --claims.")
    run = reprice_run(args.run_dir[0], args)
    records, parts, summary, tech = run["records"], run["parts"], run["summary"], run["tech"]
    if run["kind"] == "sl":
        print(f"Supervised run {run['dir']} ({summary['dataset']}), re-priced with energy "
              f"preset {tech.name!r}")
        print(format_reprice(summary))
        if args.plot is not None:
            plot_sweep(summary, args.plot)
            print(f"\nplot written to {args.plot}")
        return summary
    repriced = reprice_episodes(records, tech, run["snapshots"])
    print(f"Run {run['dir']}: {len(records)} episodes, re-priced with energy preset "
          f"{tech.name!r}")
    if run["note"] is not None:
        print(f"note: {run['note']}")
    print(format_run(parts, tech, len(records)))
    print()
    if parts["total"].table.any():
        print(format_reprice(summary))
    else:
        print("Nothing was counted on the chip (a float-backend run counts no hardware "
              "operations), so there is no RRAM energy to re-price or compare.")
    max_rows = len(repriced) if args.all_episodes else args.max_rows
    if max_rows > 0:
        print()
        print(format_table(repriced, max_rows))
    if args.plot is not None:
        try:
            plot_sweep(summary, args.plot)
        except OSError as err:
            raise _fail(f"cannot write the plot to {args.plot}: {err}") from None
        print(f"\nplot written to {args.plot}")
    return summary
