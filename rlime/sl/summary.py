"""summary.json of a supervised training run: accuracy, writes, energy, baselines and wear.

The ledger splits (`rlime.harness.attribution`) into `setup` (programming the initial weights),
finished epochs, `eval` (the test-set passes) and `in_progress` (an unfinished epoch). The
baselines compare the training workload -- everything but setup and evaluation -- on a GPU
(`rlime.cost.baselines.gpu_energy`, kernel launches from `classifier_launches`) and on a
DaDianNao-class ASIC; the ratios are baseline / RRAM (TIME's supervised-learning claim is
ASIC / RRAM = 5.3 on MNIST); `baselines_without_data` gives the ratios without the minibatch
reads from off-chip DRAM (`without_data`). The leaderboard's score (`final_score`) is the test accuracy after
the last epoch, in percent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from rlime.cost.baselines import classifier_launches, compare
from rlime.cost.energy import TechnologyPreset, price
from rlime.cost.wear import wear_report
from rlime.harness.attribution import LedgerSplit
from rlime.hw.ledger import LedgerSnapshot
from rlime.sl.config import SLConfig


@dataclass(frozen=True)
class SLFacts:
    """Everything summary.json is made of."""

    cfg: SLConfig
    protocol: Mapping[str, Any]
    epochs: Sequence[dict[str, Any]]    # epochs.jsonl records
    steps: int                          # minibatch updates so far
    ledger: LedgerSplit
    tech: TechnologyPreset
    on_chip: bool                       # False: float backend (no baselines, no wear)
    cell_pulse_counts: list[torch.Tensor]  # pulses per cell, one flat int64 counter per array
    dead_cell_fraction: float
    layers: int                         # weight layers (GPU kernel launches)
    pools: int                          # pooling layers
    wall_s: float
    steps_per_s: float                  # in this session
    run_dir: str


def without_data(training: LedgerSnapshot, tech: TechnologyPreset, minibatch: int,
                 launches: Mapping[str, float] | None) -> dict[str, Any]:
    """The baselines of the training workload without its `data` phase (reading the minibatches
    from off-chip DRAM, priced alike on the RRAM chip, the GPU and the ASIC): what the ratios
    would be if the dataset sat on chip -- the sensitivity of TIME's comparison, which does
    not say where its MNIST lives."""
    table = training.table.copy()
    table[training.phases.index("data")] = 0.0
    cmp = compare(LedgerSnapshot(table, training.phases), tech, minibatch=minibatch,
                  launches=launches)
    return {k: cmp[k] for k in ("rram_j", "gpu_j", "asic_j", "gpu_over_rram", "asic_over_rram")}


def _last(records: Sequence[dict[str, Any]], key: str) -> float | None:
    return float(records[-1][key]) if records else None


def _mean(records: Sequence[dict[str, Any]], key: str) -> float | None:
    return float(np.mean([r[key] for r in records])) if records else None


def summarise(facts: SLFacts) -> dict[str, Any]:
    """The summary.json dictionary of `facts`."""
    cfg, records, split = facts.cfg, facts.epochs, facts.ledger
    energy = price(split.total, facts.tech)
    training = split.training
    accuracy = _last(records, "test_accuracy")
    summary: dict[str, Any] = {
        "kind": "sl", "dataset": cfg.dataset, "network": cfg.train.network,
        "backend": cfg.backend, "preset": cfg.preset, "energy_preset": cfg.energy_preset,
        "scheme": cfg.hardware.tuning.scheme, "seed": cfg.seed,
        "update_mode": cfg.mode_in_effect, "update_rule": cfg.train.update_rule,
        "learning_rate": cfg.train.learning_rate, "batch_size": cfg.train.batch_size,
        "protocol": dict(facts.protocol), "epochs": len(records), "steps": facts.steps,
        "samples": int(sum(r["samples"] for r in records)),
        "test_accuracy": accuracy,
        "best_test_accuracy": max(r["test_accuracy"] for r in records) if records else None,
        "train_accuracy": _last(records, "train_accuracy"),
        "test_loss": _last(records, "test_loss"), "train_loss": _last(records, "train_loss"),
        "final_score": None if accuracy is None else 100 * accuracy,
        # writes as `LedgerSnapshot.writes` defines them; the total over the whole run (setup's
        # initial programming included), per epoch the mean of the epochs.jsonl records
        "writes_total": split.total.writes,
        "writes_setup": split.setup.writes,
        "writes_per_epoch": _mean(records, "writes"),
        "energy_j_total": sum(energy.values()),
        "energy_by_category": energy,
        "energy_j_per_epoch": _mean(records, "energy_j"),
        "energy_per_epoch_by_category": (
            {c: float(np.mean([r["energy"][c] for r in records])) for c in energy}
            if records else None),
        "energy_j_per_step": sum(price(training, facts.tech).values()) / max(facts.steps, 1),
        "eval_energy_j_total": sum(price(split.eval, facts.tech).values()),
        "ledger": split.as_dict(),
        "wall_s": facts.wall_s, "steps_per_s": facts.steps_per_s, "run_dir": facts.run_dir,
    }
    if facts.on_chip:
        launches = classifier_launches(training, facts.steps, facts.layers, facts.pools,
                                       cfg.train.update_rule)
        summary["baselines"] = compare(training, facts.tech, minibatch=cfg.train.batch_size,
                                       epochs=len(records), steps=facts.steps,
                                       launches=launches)
        summary["baselines_without_data"] = without_data(training, facts.tech,
                                                         cfg.train.batch_size, launches)
        summary["wear"] = wear_report(facts.cell_pulse_counts, max(len(records), 1),
                                      cfg.hardware.device.endurance_pulses, unit="epoch")
        summary["dead_cell_fraction"] = facts.dead_cell_fraction
    return summary
