"""Ledger attribution: which part of a run each counted operation belongs to.

The ledger of a run splits without remainder into `setup` (everything counted before training:
programming the initial weights), training episodes, evaluation rounds, `abandoned` episodes
(cut by a restart of envs that could not be checkpointed) and `in_progress` (episodes still
running). Episodes are charged by time: the ledger difference between two attribution points is
shared equally by the parallel envs, each env's share accumulating until its episode ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from rlime.hw.ledger import LedgerSnapshot


@dataclass(frozen=True)
class LedgerSplit:
    """A run's ledger `total` and the parts that are not finished episodes."""

    total: LedgerSnapshot
    setup: LedgerSnapshot
    eval: LedgerSnapshot
    abandoned: LedgerSnapshot
    in_progress: LedgerSnapshot

    @property
    def training(self) -> LedgerSnapshot:
        """Everything but setup and evaluation: finished, abandoned and running episodes."""
        return self.total - self.setup - self.eval

    def as_dict(self) -> dict[str, dict]:
        """{part: LedgerSnapshot.as_dict()} for total, setup, eval, abandoned, in_progress."""
        return {"total": self.total.as_dict(), "setup": self.setup.as_dict(),
                "eval": self.eval.as_dict(), "abandoned": self.abandoned.as_dict(),
                "in_progress": self.in_progress.as_dict()}


class Attribution:
    """Splits what `snapshot` counts among setup, episodes of `num_envs` envs, eval, abandoned.

    Created once setup is done: everything `snapshot` returns at that moment is `setup`.
    """

    def __init__(self, snapshot: Callable[[], LedgerSnapshot], num_envs: int) -> None:
        self._snapshot = snapshot
        self.num_envs = num_envs
        self.setup = snapshot()
        self.phases = self.setup.phases
        shape = self.setup.table.shape
        self._last = self.setup.table.copy()          # ledger at the last attribution point
        self._env_tables = np.zeros((num_envs,) + shape)  # running episodes' shares, per env
        self._abandoned = np.zeros(shape)
        self._eval = np.zeros(shape)

    def attribute(self) -> None:
        """Share the ledger difference since the last attribution point among the envs."""
        now = self._snapshot().table
        self._env_tables += (now - self._last) / self.num_envs
        self._last = now

    def finish_episode(self, env: int) -> LedgerSnapshot:
        """The share of env `env`'s episode (ended now; call `attribute` first); zeroed."""
        share = LedgerSnapshot(self._env_tables[env].copy(), self.phases)
        self._env_tables[env] = 0.0
        return share

    def book_eval(self) -> LedgerSnapshot:
        """The ledger difference since the last attribution point, booked as evaluation."""
        now = self._snapshot().table
        cost = LedgerSnapshot(now - self._last, self.phases)
        self._eval += cost.table
        self._last = now
        return cost

    def abandon_running(self) -> None:
        """Book every env's running episode as abandoned (the envs restart)."""
        self._abandoned = self._abandoned + self._env_tables.sum(0)
        self._env_tables[:] = 0.0

    def split(self) -> LedgerSplit:
        """The ledger now, split (finished episodes are what the split leaves out)."""
        total = self._snapshot()
        in_progress = LedgerSnapshot(self._env_tables.sum(0) + (total.table - self._last),
                                     self.phases)
        return LedgerSplit(total, self.setup, LedgerSnapshot(self._eval, self.phases),
                           LedgerSnapshot(self._abandoned, self.phases), in_progress)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every table (float64 numpy arrays)."""
        return {"setup": self.setup.table.copy(), "last": self._last.copy(),
                "env_tables": self._env_tables.copy(), "abandoned": self._abandoned.copy(),
                "eval": self._eval.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if np.shape(state["env_tables"]) != self._env_tables.shape:
            raise ValueError(f"attribution state for {len(state['env_tables'])} envs, "
                             f"expected {self.num_envs}")
        self.setup = LedgerSnapshot(np.array(state["setup"], dtype=np.float64), self.phases)
        self._last = np.array(state["last"], dtype=np.float64)
        self._env_tables = np.array(state["env_tables"], dtype=np.float64)
        self._abandoned = np.array(state["abandoned"], dtype=np.float64)
        self._eval = np.array(state["eval"], dtype=np.float64)
