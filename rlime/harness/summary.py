"""summary.json of a run: scores, totals, where the hardware cost went, baselines and wear.

The ledger of a run splits without remainder into setup, training episodes, evaluation rounds,
abandoned and in-progress episodes (`rlime.harness.attribution`); the summary keeps each part
so the split can be checked. Runs on the chip also get GPU/ASIC baselines of the same training
workload, cell wear and the dead-cell fraction.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from rlime.bench.stats import final_score
from rlime.cost.baselines import compare, dqn_launches
from rlime.cost.energy import TechnologyPreset, price
from rlime.cost.wear import wear_report
from rlime.harness.attribution import LedgerSplit
from rlime.harness.run_config import RunConfig


@dataclass(frozen=True)
class RunFacts:
    """Everything summary.json is made of."""

    cfg: RunConfig
    env_id: str
    protocol: Mapping[str, Any]
    mapping_info: Mapping[str, Any]
    steps: int
    episodes: Sequence[dict[str, Any]]      # episodes.jsonl records
    evals: Sequence[dict[str, Any]]         # evals.jsonl records
    ledger: LedgerSplit
    tech: TechnologyPreset
    replay_bytes: int
    replay_bytes_per_transition: float
    on_chip: bool                           # False: float backend (no baselines, no wear)
    cell_pulse_counts: list[torch.Tensor]   # pulses per Q/target cell, a flat int32 counter per array
    dead_cell_fraction: float
    wall_s: float                           # seconds of training over all sessions
    sps: float                              # env steps per second in this session
    time_split_s: Mapping[str, float]       # seconds per timer phase
    run_dir: str


def _per_episode(episodes: Sequence[dict[str, Any]], key: str) -> float | None:
    """Mean of one write count over the episode records (None without episodes, or when a
    record lacks it: episodes.jsonl of a run begun before the split)."""
    if not episodes or any(key not in e for e in episodes):
        return None
    return float(np.mean([e[key] for e in episodes]))


def summarise(facts: RunFacts) -> dict[str, Any]:
    """The summary.json dictionary of `facts`."""
    cfg, episodes, evals, split = facts.cfg, facts.episodes, facts.evals, facts.ledger
    total = split.total
    energy = price(total, facts.tech)
    returns = [e["return"] for e in episodes]
    training = split.training
    summary: dict[str, Any] = {
        "env": cfg.env, "env_id": facts.env_id, "backend": cfg.backend,
        "mapping": cfg.mapping, "mapping_info": facts.mapping_info,
        "preset": cfg.preset, "energy_preset": cfg.energy_preset, "seed": cfg.seed,
        "update_mode": cfg.mode_in_effect,
        "protocol": facts.protocol, "steps": facts.steps, "episodes": len(episodes),
        "final_score": final_score(returns) if returns else None,
        "eval_score": evals[-1]["mean_return"] if evals else None,
        "best_eval_score": max(e["mean_return"] for e in evals) if evals else None,
        # writes split as `LedgerSnapshot` defines it; totals over the whole run (setup's initial
        # programming included), per-episode means of the episodes.jsonl fields
        "writes_total": total.writes,
        "writes_per_episode": _per_episode(episodes, "writes"),
        "target_sync_pulses_total": total.copy_pulses,
        "target_sync_pulses_per_episode": _per_episode(episodes, "target_sync_pulses"),
        "replay_write_bits_total": total.memory_write_bits,
        "replay_write_bits_per_episode": _per_episode(episodes, "replay_write_bits"),
        "energy_j_total": sum(energy.values()),
        "energy_by_category": energy,
        "energy_j_per_episode": (float(np.mean([e["energy_j"] for e in episodes]))
                                 if episodes else None),
        "energy_per_episode_by_category": (
            {c: float(np.mean([e["energy"][c] for e in episodes])) for c in energy}
            if episodes else None),
        "energy_j_per_step": sum(price(training, facts.tech).values()) / max(facts.steps, 1),
        "ledger": split.as_dict(),
        "replay": {"bytes": facts.replay_bytes,
                   "bytes_per_transition": facts.replay_bytes_per_transition,
                   # capacity is not modelled: the replay is assumed to fit; this is how many
                   # tiles of 1-bit memory-mode cells it takes where it lives in RRAM
                   "rram_tiles_if_in_rram": math.ceil(8 * facts.replay_bytes
                                                      / (cfg.hardware.tile.rows
                                                         * cfg.hardware.tile.cols))},
        "wall_s": facts.wall_s, "sps": facts.sps,
        "time_split_s": dict(facts.time_split_s),
        "run_dir": facts.run_dir,
    }
    if facts.on_chip:
        a = cfg.agent
        # minibatch updates and target syncs of an uninterrupted run (rlime.harness.train)
        updates = a.gradient_steps * max(0, facts.steps // a.train_freq
                                         - a.learning_starts // a.train_freq)
        layers = 5 if a.network == "nature_cnn" else len(a.hidden) + 1
        launches = dqn_launches(training, updates, layers, a.batch_size, cfg.num_envs,
                                syncs=facts.steps // a.target_period, steps=facts.steps)
        summary["baselines"] = compare(training, facts.tech, minibatch=a.batch_size,
                                       act_batch=cfg.num_envs, episodes=len(episodes),
                                       steps=facts.steps, launches=launches)
        summary["wear"] = wear_report(facts.cell_pulse_counts, max(len(episodes), 1),
                                      cfg.hardware.device.endurance_pulses)
        summary["dead_cell_fraction"] = facts.dead_cell_fraction
    return summary
