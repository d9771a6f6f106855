"""The record of a run's episodes: one line of `episodes.jsonl` per finished training episode
and of `evals.jsonl` per evaluation round, TensorBoard scalars on the global-step axis, and the
records kept in memory for the summary.

An episode's line holds its return and length next to its ledger share: its writes, split
(`rlime.hw.counts.LedgerSnapshot` defines each) into

* `writes` -- the headline: programming pulses (SET + RESET) into weight cells; in an episode
  these are the Q-array update pulses (phase `update`; the initial programming of the Q and
  target arrays happens at setup, outside every episode);
* `target_sync_pulses` -- SET + RESET pulses of the target-network syncs (phase `target_sync`);
* `replay_write_bits` -- bits written to RRAM memory-mode cells (the replay memory, where the
  mapping keeps it in RRAM; one pulse per bit, but storage, not weight programming);

never summed into one another; then energy in joules (`energy_j`, and `energy` by category) and
the raw `ledger`. TensorBoard gets the three as `device/episode_writes`,
`device/episode_target_sync_pulses` and `device/episode_replay_write_bits`.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from rlime.cost.energy import TechnologyPreset, price
from rlime.harness.run_dir import RunDirectory
from rlime.hw.ledger import LedgerSnapshot


class EpisodeLog:
    """Episode and evaluation records of one run directory, priced with `tech`."""

    def __init__(self, run_dir: RunDirectory, tech: TechnologyPreset) -> None:
        self.run_dir = run_dir
        self.tech = tech
        self.episodes: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []
        self.recent: deque[float] = deque(maxlen=100)  # the last 100 episode returns

    def log_episodes(self, writer: SummaryWriter, step: int,
                     finished: Iterable[tuple[int, float, int, LedgerSnapshot]], epsilon: float,
                     dead_cell_fraction: float) -> None:
        """Record episodes that ended at `step`, each given as (env, return, length, ledger)."""
        writer.add_scalar("device/dead_cell_fraction", dead_cell_fraction, step)
        records = []
        for env, episode_return, length, ledger in finished:
            energy = price(ledger, self.tech)
            record = {"episode": len(self.episodes), "step": step, "env": env,
                      "return": episode_return, "length": length,
                      "writes": ledger.writes,
                      "target_sync_pulses": ledger.copy_pulses,
                      "replay_write_bits": ledger.memory_write_bits,
                      "energy_j": sum(energy.values()),
                      "energy": energy, "epsilon": epsilon,
                      "dead_cell_fraction": dead_cell_fraction, "ledger": ledger.as_dict()}
            records.append(record)
            self.episodes.append(record)
            self.recent.append(episode_return)
            writer.add_scalar("charts/episodic_return", record["return"], step)
            writer.add_scalar("charts/episodic_length", record["length"], step)
            writer.add_scalar("device/episode_writes", record["writes"], step)
            writer.add_scalar("device/episode_target_sync_pulses", record["target_sync_pulses"],
                              step)
            writer.add_scalar("device/episode_replay_write_bits", record["replay_write_bits"],
                              step)
            writer.add_scalar("device/episode_energy_j", record["energy_j"], step)
            for category, joules in energy.items():
                writer.add_scalar(f"energy/{category}", joules, step)
        self.run_dir.append("episodes.jsonl", records)

    def log_eval(self, writer: SummaryWriter, step: int, returns: list[float], epsilon: float,
                 cost: LedgerSnapshot) -> None:
        """Record an evaluation round at `step`: its episode returns and its ledger `cost`."""
        record = {"step": step, "mean_return": float(np.mean(returns)), "returns": returns,
                  "epsilon": epsilon, "energy_j": sum(price(cost, self.tech).values()),
                  "ledger": cost.as_dict()}
        self.evals.append(record)
        self.run_dir.append("evals.jsonl", [record])
        writer.add_scalar("eval/episodic_return", record["mean_return"], step)

    def state_dict(self) -> dict[str, int]:
        """How many records are written (what a checkpoint continues from)."""
        return {"episodes": len(self.episodes), "evals": len(self.evals)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Cut the files back to the checkpoint's records (later ones are lost work) and
        reload them."""
        self.run_dir.truncate_jsonl("episodes.jsonl", state["episodes"])
        self.run_dir.truncate_jsonl("evals.jsonl", state["evals"])
        self.episodes = self.run_dir.read_jsonl("episodes.jsonl")
        self.evals = self.run_dir.read_jsonl("evals.jsonl")
        self.recent = deque((e["return"] for e in self.episodes[-100:]), maxlen=100)
