"""Operation ledger: integer counts of every hardware operation, by phase and kind.

The kinds, the phase axis (`Phases`) and the immutable `LedgerSnapshot` are in
`rlime.hw.counts` (no torch, so pricing and leaderboards load without it). The ledger never
prices anything (that is `rlime.cost.energy`); it only counts. Two stores keep the hot
path cheap:

* counts known from shapes (MVM conversions, cell reads, digital MACs) are Python ints added to a
  numpy int64 table -- no tensor work, no device synchronisation;
* counts that come out of tensors (pulses actually fired, verify reads, the summed conductance of
  the cells at each pulse) accumulate in a float64 tensor on the compute device and are only
  copied to the host when a snapshot is taken.

`snapshot()` returns an immutable `LedgerSnapshot`; subtracting two snapshots answers "what
happened since the episode began".
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import numpy as np
import torch

from rlime.hw.counts import (ALL_KINDS, CONDUCTANCE_KINDS, TRAINING_PHASES, LedgerSnapshot, Phases,
                             kind_index)


class Ledger:
    """Mutable operation counter shared by every array of one accelerator.

    `phases` is the workload's phase axis (default `TRAINING_PHASES`; DQN brings its own);
    `phase` is the phase charged by code that does not name one (MVMs in a forward pass,
    tuning pulses); set it with `with ledger.in_phase("update"):`.
    """

    def __init__(self, phases: Phases = TRAINING_PHASES, device: torch.device | str = "cpu") -> None:
        self.phases = phases
        self.phase = "forward"
        self._index = {name: i for i, name in enumerate(phases.names)}
        self._host = np.zeros((len(phases), len(ALL_KINDS)), dtype=np.int64)
        self._device_table = torch.zeros(len(phases), len(ALL_KINDS), dtype=torch.float64,
                                         device=device)
        # on CPU the device table is host memory too: numbers are added through this view
        self._device_view = self._device_table.numpy() if self._device_table.is_cpu else None

    @contextlib.contextmanager
    def in_phase(self, phase: str) -> Iterator[None]:
        self._row(phase)
        previous, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = previous

    def add(self, kind: str, count: float, phase: str | None = None) -> None:
        """Add a value known on the host (no device synchronisation): a whole count, or for
        `CONDUCTANCE_KINDS` a sum in siemens (accumulated with the tensor-valued sums, in the
        order they come, so that a resumed run adds up exactly as an uninterrupted one)."""
        p, k = self._row(phase or self.phase), kind_index(kind)
        if kind not in CONDUCTANCE_KINDS:
            self._host[p, k] += round(count)
        elif self._device_view is not None:
            self._device_view[p, k] += count
        else:
            self._device_table[p, k] += count

    def add_row(self, row: np.ndarray, phase: str | None = None) -> None:
        """Add a whole row of integer counts (see `kinds_row`) in one go."""
        self._host[self._row(phase or self.phase)] += row

    def add_tensor(self, kind: str, value: torch.Tensor, phase: str | None = None) -> None:
        """Add a 0-d tensor (a count or a conductance sum) without synchronising the device."""
        p, k = self._row(phase or self.phase), kind_index(kind)
        self._device_table[p, k] += value.to(torch.float64)

    def _row(self, phase: str) -> int:
        try:
            return self._index[phase]
        except KeyError:
            raise ValueError(f"unknown ledger phase {phase!r}; phases are "
                             f"{', '.join(self.phases.names)}") from None

    def snapshot(self) -> LedgerSnapshot:
        return LedgerSnapshot(self._host.astype(np.float64) + self._device_table.cpu().numpy(),
                              self.phases)

    def state_dict(self) -> dict:
        return {"table": self.snapshot().table.copy()}

    def load_state_dict(self, state: Mapping) -> None:
        table = np.asarray(state["table"], dtype=np.float64)
        if table.shape != self._host.shape:
            raise ValueError(f"ledger checkpoint has shape {table.shape}, expected {self._host.shape} "
                             f"({len(self.phases)} phases x {len(ALL_KINDS)} kinds)")
        self._host[:] = 0
        self._device_table.copy_(torch.from_numpy(table))
