"""Operation ledger: integer counts of every hardware operation, by phase and kind.

The ledger never prices anything (that is `rlime.energy`); it only counts. Two stores keep the hot
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
from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np
import torch

PHASES: tuple[str, ...] = (
    "program",      # one-time programming of initial weights
    "act",          # Q forward passes that choose actions
    "forward",      # Q forward on the training minibatch
    "target",       # target-network forward on next states
    "backward",     # transposed MVMs and weight-gradient arithmetic
    "update",       # update rule and tuning of the Q arrays
    "target_sync",  # copying Q into the target network
    "replay",       # storing and sampling transitions
)

KINDS: tuple[str, ...] = (
    "mvm_macs",             # multiply-accumulates an MVM stands for (the float workload, for baselines)
    "dac_conversions",      # one DAC drive of one row for one array cycle
    "adc_conversions",      # one ADC conversion of one (differential) column for one array cycle
    "cell_reads",           # one cell read inside an MVM (per cell, per array cycle)
    "shift_adds",           # bit-serial shift-and-add of one ADC result
    "partial_sum_adds",     # digital add of one tile's partial sum into a layer output
    "set_pulses",           # potentiating programming pulses
    "reset_pulses",         # depressing programming pulses
    "verify_reads",         # one verify read: a cell read plus one sense conversion
    "gradient_macs",        # digital multiply-accumulates of weight gradients (outer products)
    "optimizer_ops",        # digital fp32 ops of the update rule (SGD/momentum/Adam)
    "digital_ops",          # other digital fp32 ops: bias, activations, loss, TD targets
    "buffer_bits",          # bits moved through the on-chip buffer (eDRAM/SRAM)
    "dram_bits",            # bits moved across the off-chip DRAM interface
    "noc_bit_hops",         # bits moved one hop over the on-chip network
    "rram_memory_write_bits",  # bits written to RRAM memory-mode subarrays (one pulse each)
    "rram_memory_read_bits",   # bits read from RRAM memory-mode subarrays
)

# Sums of the cell conductance (siemens) at the moment of each pulse; a pulse's energy is
# V^2 * G * t, so pricing needs sum(G) over pulses, not only the pulse count.
CONDUCTANCE_KINDS: tuple[str, ...] = ("set_pulse_siemens", "reset_pulse_siemens")

ALL_KINDS: tuple[str, ...] = KINDS + CONDUCTANCE_KINDS
_PHASE_INDEX = {name: i for i, name in enumerate(PHASES)}
_KIND_INDEX = {name: i for i, name in enumerate(ALL_KINDS)}


def kinds_row(counts: Mapping[str, int]) -> np.ndarray:
    """{kind: count} as an int64 row over ALL_KINDS (zeros elsewhere)."""
    row = np.zeros(len(ALL_KINDS), dtype=np.int64)
    for kind, value in counts.items():
        row[_check("program", kind)[1]] = value
    return row


def _check(phase: str, kind: str) -> tuple[int, int]:
    try:
        return _PHASE_INDEX[phase], _KIND_INDEX[kind]
    except KeyError:
        raise ValueError(
            f"unknown ledger entry ({phase!r}, {kind!r}); phases are {', '.join(PHASES)}; "
            f"kinds are {', '.join(ALL_KINDS)}"
        ) from None


@dataclass(frozen=True)
class LedgerSnapshot:
    """Immutable ledger totals: a (len(PHASES), len(ALL_KINDS)) float64 table.

    Entries of `KINDS` are exact integers (float64 is exact below 2**53); entries of
    `CONDUCTANCE_KINDS` are siemens summed over pulses.
    """

    table: np.ndarray

    def __sub__(self, other: "LedgerSnapshot") -> "LedgerSnapshot":
        return LedgerSnapshot(self.table - other.table)

    def __add__(self, other: "LedgerSnapshot") -> "LedgerSnapshot":
        return LedgerSnapshot(self.table + other.table)

    def get(self, phase: str, kind: str) -> float:
        p, k = _check(phase, kind)
        return float(self.table[p, k])

    def count(self, kind: str, phases: tuple[str, ...] | None = None) -> int:
        """Total of one integer kind over `phases` (all phases when None)."""
        k = _check(PHASES[0], kind)[1]
        rows = [_check(p, kind)[0] for p in phases] if phases else slice(None)
        return int(round(float(self.table[rows, k].sum())))

    @property
    def weight_writes(self) -> int:
        """Programming pulses (SET + RESET) on weight arrays, all phases."""
        return self.count("set_pulses") + self.count("reset_pulses")

    @property
    def writes(self) -> int:
        """Every write to RRAM cells: weight-array pulses plus memory-mode bits written (one
        pulse per bit) for replay kept in RRAM."""
        return self.weight_writes + self.count("rram_memory_write_bits")

    def as_dict(self) -> dict[str, dict[str, float | int]]:
        """{phase: {kind: value}} with zero entries left out; ints for counts, floats for siemens."""
        out: dict[str, dict[str, float | int]] = {}
        for p, phase in enumerate(PHASES):
            row = {}
            for k, kind in enumerate(ALL_KINDS):
                value = float(self.table[p, k])
                if value:
                    row[kind] = value if kind in CONDUCTANCE_KINDS else int(round(value))
            if row:
                out[phase] = row
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, float]]) -> "LedgerSnapshot":
        table = np.zeros((len(PHASES), len(ALL_KINDS)))
        for phase, row in data.items():
            for kind, value in row.items():
                p, k = _check(phase, kind)
                table[p, k] = value
        return cls(table)

    @classmethod
    def zeros(cls) -> "LedgerSnapshot":
        return cls(np.zeros((len(PHASES), len(ALL_KINDS))))


class Ledger:
    """Mutable operation counter shared by every array of one accelerator.

    `phase` is the phase charged by code that does not name one (MVMs in a forward pass,
    tuning pulses); set it with `with ledger.in_phase("act"):`.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.phase = "forward"
        self._host = np.zeros((len(PHASES), len(ALL_KINDS)), dtype=np.int64)
        self._device_table = torch.zeros(len(PHASES), len(ALL_KINDS), dtype=torch.float64,
                                         device=device)
        # on CPU the device table is host memory too: numbers are added through this view
        self._device_view = self._device_table.numpy() if self._device_table.is_cpu else None

    @contextlib.contextmanager
    def in_phase(self, phase: str) -> Iterator[None]:
        _check(phase, "cell_reads")
        previous, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = previous

    def add(self, kind: str, count: float, phase: str | None = None) -> None:
        """Add a value known on the host (no device synchronisation): a whole count, or for
        `CONDUCTANCE_KINDS` a sum in siemens (accumulated with the tensor-valued sums, in the
        order they come, so that a resumed run adds up exactly as an uninterrupted one)."""
        p, k = _check(phase or self.phase, kind)
        if kind not in CONDUCTANCE_KINDS:
            self._host[p, k] += round(count)
        elif self._device_view is not None:
            self._device_view[p, k] += count
        else:
            self._device_table[p, k] += count

    def add_row(self, row: np.ndarray, phase: str | None = None) -> None:
        """Add a whole row of integer counts (see `kinds_row`) in one go."""
        self._host[_check(phase or self.phase, "cell_reads")[0]] += row

    def add_tensor(self, kind: str, value: torch.Tensor, phase: str | None = None) -> None:
        """Add a 0-d tensor (a count or a conductance sum) without synchronising the device."""
        p, k = _check(phase or self.phase, kind)
        self._device_table[p, k] += value.to(torch.float64)

    def snapshot(self) -> LedgerSnapshot:
        return LedgerSnapshot(self._host.astype(np.float64) + self._device_table.cpu().numpy())

    def state_dict(self) -> dict:
        return {"table": self.snapshot().table.copy()}

    def load_state_dict(self, state: Mapping) -> None:
        table = np.asarray(state["table"], dtype=np.float64)
        if table.shape != self._host.shape:
            raise ValueError(f"ledger checkpoint has shape {table.shape}, expected {self._host.shape} "
                             f"({len(PHASES)} phases x {len(ALL_KINDS)} kinds)")
        self._host[:] = 0
        self._device_table.copy_(torch.from_numpy(table))
