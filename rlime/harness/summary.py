"""summary.json of a run: scores, totals, where the hardware cost went, baselines and wear.

The ledger of a run splits without remainder into `setup` (programming the initial weights),
the training episodes, evaluation rounds, `abandoned` episodes (cut by a restart of envs that
could not be checkpointed) and `in_progress` (episodes still running); the summary keeps each
part so the split can be checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from rlime.cost.baselines import compare
from rlime.cost.energy import price
from rlime.drl.phases import DQN_PHASES
from rlime.hw.ledger import LedgerSnapshot
from rlime.bench.stats import final_score
from rlime.cost.wear import wear_report

if TYPE_CHECKING:
    from rlime.harness.train import Trainer


def summarise(trainer: "Trainer") -> dict[str, Any]:
    cfg, episodes = trainer.cfg, trainer.episodes
    total = trainer._snapshot()
    in_progress = LedgerSnapshot(trainer.env_tables.sum(0) + (total.table - trainer.last), DQN_PHASES)
    energy = price(total, trainer.tech)
    returns = [e["return"] for e in episodes]
    training = total - trainer.setup - LedgerSnapshot(trainer.eval_table, DQN_PHASES)
    summary: dict[str, Any] = {
        "env": cfg.env, "env_id": trainer.spec.env_id, "backend": cfg.backend,
        "mapping": cfg.mapping, "mapping_info": trainer.agent.mapping.describe(),
        "preset": cfg.preset, "energy_preset": cfg.energy_preset, "seed": cfg.seed,
        "protocol": trainer.spec.protocol, "steps": trainer.step, "episodes": len(episodes),
        "final_score": final_score(returns) if returns else None,
        "eval_score": trainer.evals[-1]["mean_return"] if trainer.evals else None,
        "best_eval_score": max(e["mean_return"] for e in trainer.evals) if trainer.evals else None,
        "writes_total": total.writes,
        "writes_per_episode": float(np.mean([e["writes"] for e in episodes])) if episodes else None,
        "energy_j_total": sum(energy.values()),
        "energy_by_category": energy,
        "energy_j_per_episode": (float(np.mean([e["energy_j"] for e in episodes]))
                                 if episodes else None),
        "energy_per_episode_by_category": (
            {c: float(np.mean([e["energy"][c] for e in episodes])) for c in energy}
            if episodes else None),
        "energy_j_per_step": sum(price(training, trainer.tech).values()) / max(trainer.step, 1),
        "ledger": {"total": total.as_dict(), "setup": trainer.setup.as_dict(),
                   "eval": LedgerSnapshot(trainer.eval_table, DQN_PHASES).as_dict(),
                   "abandoned": LedgerSnapshot(trainer.abandoned, DQN_PHASES).as_dict(),
                   "in_progress": in_progress.as_dict()},
        "replay": {"bytes": trainer.replay.nbytes,
                   "bytes_per_transition": trainer.replay.bytes_per_transition},
        "wall_s": trainer.wall, "sps": trainer.sps(),
        "time_split_s": dict(trainer.timer.seconds),
        "run_dir": str(trainer.run_dir.path),
    }
    if trainer.chip is not None:
        summary["baselines"] = compare(training, trainer.tech, minibatch=cfg.agent.batch_size,
                                       act_batch=cfg.num_envs, episodes=len(episodes),
                                       steps=trainer.step)
        summary["wear"] = wear_report(trainer.agent.cell_pulse_counts(), max(len(episodes), 1),
                                      cfg.hardware.device.endurance_pulses)
        summary["dead_cell_fraction"] = trainer.agent.dead_cell_fraction()
    return summary
