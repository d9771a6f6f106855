"""What the ledger counts, without torch: operation kinds, the phase axis, and snapshots.

A ledger table is (phases x kinds). The kinds are the hardware's operations (fixed here). The
phases are the workload's vocabulary, given by whoever trains on the chip: `TRAINING_PHASES`
for a network trained by plain backpropagation (the public API's default), `rlime.drl.phases`
for DQN. Each phase has a *role* that tells the cost layer how to account for it (which energy
category, whether a GPU would do it as arithmetic) without knowing the workload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

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
    "sram_bits",            # bits read or written in periphery SRAM (optimizer state, residuals)
)

# Sums of the cell conductance (siemens) at the moment of each pulse; a pulse's energy is
# V^2 * G * t, so pricing needs sum(G) over pulses, not only the pulse count.
CONDUCTANCE_KINDS: tuple[str, ...] = ("set_pulse_siemens", "reset_pulse_siemens")

ALL_KINDS: tuple[str, ...] = KINDS + CONDUCTANCE_KINDS
_KIND_INDEX = {name: i for i, name in enumerate(ALL_KINDS)}

# What a phase's operations are, for accounting:
ROLES: tuple[str, ...] = (
    "program",    # one-time programming of initial weights (no arithmetic)
    "inference",  # forward MVMs that only read out a result, one input at a time
    "forward",    # forward MVMs on a training minibatch
    "backward",   # transposed MVMs and weight-gradient arithmetic
    "update",     # the update rule and the tuning of the trained arrays
    "copy",       # weights copied between arrays (no arithmetic; its own energy category)
    "storage",    # data stored in and sampled from memory (its own energy category)
)


def kind_index(kind: str) -> int:
    try:
        return _KIND_INDEX[kind]
    except KeyError:
        raise ValueError(f"unknown ledger kind {kind!r}; kinds are {', '.join(ALL_KINDS)}") from None


def kinds_row(counts: Mapping[str, int]) -> np.ndarray:
    """{kind: count} as an int64 row over ALL_KINDS (zeros elsewhere)."""
    row = np.zeros(len(ALL_KINDS), dtype=np.int64)
    for kind, value in counts.items():
        row[kind_index(kind)] = value
    return row


@dataclass(frozen=True)
class Phases:
    """The phase axis of a ledger: (name, role) pairs in table order; roles from `ROLES`."""

    entries: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        names = [n for n, _ in self.entries]
        if len(set(names)) != len(names):
            raise ValueError(f"phase names must be unique, got {names}")
        for name, role in self.entries:
            if role not in ROLES:
                raise ValueError(f"phase {name!r} has role {role!r}; roles are {', '.join(ROLES)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def index(self, name: str) -> int:
        for i, (n, _) in enumerate(self.entries):
            if n == name:
                return i
        raise ValueError(f"unknown ledger phase {name!r}; phases are {', '.join(self.names)}")

    def role(self, name: str) -> str:
        return self.entries[self.index(name)][1]

    def with_role(self, *roles: str) -> tuple[str, ...]:
        """Names of the phases whose role is one of `roles`, in table order."""
        return tuple(n for n, r in self.entries if r in roles)


def check_tables(tables: np.ndarray, phases: Phases) -> None:
    """ValueError unless `tables` (..., P, K) are ledger tables over `phases` and ALL_KINDS."""
    shape = (len(phases), len(ALL_KINDS))
    if np.shape(tables)[-2:] != shape:
        raise ValueError(f"ledger table has shape {np.shape(tables)[-2:]}, expected {shape} "
                         f"({len(phases)} phases x {len(ALL_KINDS)} kinds)")


# A network trained on the chip by backpropagation (the public API's default vocabulary).
TRAINING_PHASES = Phases((("program", "program"), ("forward", "forward"),
                          ("backward", "backward"), ("update", "update")))


@dataclass(frozen=True)
class LedgerSnapshot:
    """Immutable ledger totals: a (len(phases), len(ALL_KINDS)) float64 table.

    Entries of `KINDS` are exact integers (float64 is exact below 2**53); entries of
    `CONDUCTANCE_KINDS` are siemens summed over pulses.
    """

    table: np.ndarray
    phases: Phases

    def __post_init__(self) -> None:
        check_tables(self.table, self.phases)

    def _same_axis(self, other: "LedgerSnapshot") -> None:
        if other.phases != self.phases:
            raise ValueError(f"ledger snapshots of different phases: {self.phases.names} vs "
                             f"{other.phases.names}")

    def __sub__(self, other: "LedgerSnapshot") -> "LedgerSnapshot":
        self._same_axis(other)
        return LedgerSnapshot(self.table - other.table, self.phases)

    def __add__(self, other: "LedgerSnapshot") -> "LedgerSnapshot":
        self._same_axis(other)
        return LedgerSnapshot(self.table + other.table, self.phases)

    def get(self, phase: str, kind: str) -> float:
        return float(self.table[self.phases.index(phase), kind_index(kind)])

    def count(self, kind: str, phases: tuple[str, ...] | None = None) -> int:
        """Total of one integer kind over `phases` (all phases when None)."""
        k = kind_index(kind)
        rows = [self.phases.index(p) for p in phases] if phases else slice(None)
        return int(round(float(self.table[rows, k].sum())))

    # -- what "writes" means -------------------------------------------------------------------
    #
    # Every write to an RRAM cell falls in exactly one of three categories:
    #
    #   writes            SET + RESET pulses in every phase whose role is not `copy`: the pulses
    #                     that program weights into weight cells -- the initial programming of
    #                     all arrays (role `program`; for DQN the Q *and* target arrays, at
    #                     setup only) and the tuning of the trained arrays by the update rule
    #                     (role `update`; for DQN the Q arrays). The headline number: an
    #                     episode's `writes` are its Q-array update pulses.
    #   copy_pulses       SET + RESET pulses in phases of role `copy` (DQN: `target_sync`,
    #                     re-programming the target arrays to a copy of Q every target_period).
    #   memory_write_bits `rram_memory_write_bits`, every phase: bits written to memory-mode
    #                     subarrays (DQN: the replay memory where the mapping keeps it in RRAM),
    #                     one pulse per bit, but data storage rather than weight programming.
    #
    # so writes + copy_pulses == weight_writes (all pulses) exactly, and the bits are apart.
    # Why the target sync is not in the headline although it programs target weight cells: it
    # is a copy whose count is set by target_period and the mapping (one mapping has no target
    # arrays and no syncs), not by what the update rule learns. The memory-mode bits are data
    # storage, orders of magnitude more numerous (a Pong run: ~4.6e9 replay bits against ~1.6e6
    # weight pulses) and priced as storage. Summed into "writes" they would make the headline
    # measure the mapping and the replay instead of the weight programming; both are reported
    # beside it under their own names, never summed into it.

    def pulses(self, roles: tuple[str, ...] | None = None) -> int:
        """SET + RESET pulses over the phases whose role is in `roles` (all phases when None)."""
        phases = self.phases.names if roles is None else self.phases.with_role(*roles)
        if not phases:
            return 0
        return self.count("set_pulses", phases) + self.count("reset_pulses", phases)

    @property
    def writes(self) -> int:
        """The headline writes: programming pulses (SET + RESET) into weight cells, in every
        phase whose role is not `copy` (initial programming and update tuning). Target-sync
        copies (`copy_pulses`) and memory-mode bits (`memory_write_bits`) are not in it."""
        return self.pulses(tuple(r for r in ROLES if r != "copy"))

    @property
    def copy_pulses(self) -> int:
        """SET + RESET pulses in phases of role `copy` (DQN: the target-network sync)."""
        return self.pulses(("copy",))

    @property
    def memory_write_bits(self) -> int:
        """Bits written to RRAM memory-mode subarrays (one pulse each), all phases (DQN: the
        replay memory where it lives in RRAM). Not weight programming; not in `writes`."""
        return self.count("rram_memory_write_bits")

    @property
    def weight_writes(self) -> int:
        """Every programming pulse (SET + RESET) on weight arrays, all phases:
        `writes` + `copy_pulses`. Memory-mode bits are not in it."""
        return self.pulses()

    def as_dict(self) -> dict[str, dict[str, float | int]]:
        """{phase: {kind: value}} with zero entries left out; ints for counts, floats for siemens."""
        out: dict[str, dict[str, float | int]] = {}
        for p, phase in enumerate(self.phases.names):
            row = {}
            for k, kind in enumerate(ALL_KINDS):
                value = float(self.table[p, k])
                if value:
                    row[kind] = value if kind in CONDUCTANCE_KINDS else int(round(value))
            if row:
                out[phase] = row
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, float]], phases: Phases) -> "LedgerSnapshot":
        table = np.zeros((len(phases), len(ALL_KINDS)))
        for phase, row in data.items():
            p = phases.index(phase)
            for kind, value in row.items():
                table[p, kind_index(kind)] = value
        return cls(table, phases)

    @classmethod
    def zeros(cls, phases: Phases) -> "LedgerSnapshot":
        return cls(np.zeros((len(phases), len(ALL_KINDS))), phases)
