"""Latency model: seconds per phase from the operation ledger, and the static energy over them.

Time is priced like energy (`rlime.cost.energy`): a per-kind row of seconds per operation
(`time_row(tech)`), so a phase's latency is ``sum_kind count * seconds``, linear in the ledger
and cheap on a stack of tables. What runs in parallel and what runs one after another:

=====================  ===================================================================================
kind                   seconds per operation (and why)
=====================  ===================================================================================
``adc_conversions``    ``array_cycle_s / adc_conversions_per_cycle / parallel_arrays``. An MVM is
                       ADC-bound: ISAAC (Shafiee et al., ISCA 2016) has one 8-bit ADC per 128 x 128
                       crossbar and reads all 128 columns of it in one 100 ns array cycle (its ADC
                       samples at 1.28 GS/s: 128 conversions per 100 ns), so one conversion is
                       100 ns / 128 = 0.78 ns of array time. Bit-serial input cycles are already in
                       the counts (one conversion per column per array cycle).
``dac_conversions``,   0: every row of an array is driven and every cell read in the same array cycle
``cell_reads``         whose length the conversions above already set.
``shift_adds``         0: ISAAC's shift-and-add units run at the ADC rate, pipelined behind the ADCs.
``set_pulses``,        ``write_pulse_s / parallel_arrays``: one cell per pulse per array (pulses of one
``reset_pulses``       array are serialised: the selected word and bit line address one cell).
``verify_reads``       ``(read_pulse_s + one conversion) / parallel_arrays``: a read pulse on one cell,
                       then its sense conversion, serialised per array like the pulses.
``gradient_macs``,     ``digital_op_s`` each: one digital unit doing one operation per cycle at 1 GHz
``optimizer_ops``,     (the 1 ns global cycle of the Accelergy/hwcomponents ISAAC component library);
``digital_ops``,       digital work is not spread over arrays.
``partial_sum_adds``
everything else        0: buffer, SRAM, NoC, DRAM and RRAM memory-mode traffic is assumed pipelined
                       under the compute above (ISAAC's pipeline), ``mvm_macs`` is no hardware
                       operation and the ``*_siemens`` kinds are not counts.
=====================  ===================================================================================

``parallel_arrays`` (default 1: one array busy at a time, so the latency is an upper bound) is
how many arrays run MVMs, pulses and verify reads concurrently. Within a phase the kinds do not
overlap (MVM, then pulses, then digital work: their times add), and phases run one after another.

Static energy (category ``static`` in `rlime.cost.energy.price`) is ``static_power_w(tech) x
latency`` per phase: the busy arrays' (``parallel_arrays`` of them) periphery static power and
periphery SRAM leakage, held on for the whole phase. Idle arrays are taken as power-gated, so the
static energy counts busy array-time only: a lower bound, and the same whatever
``parallel_arrays`` is for the array-bound kinds (N arrays x 1/N of the time). The SRAM an array
holds is not in the ledger (``sram_bits`` counts accesses, not capacity, and the number of
update steps is not recorded), so it is ``sram_bits_per_cell`` x the array's cells: the preset's
32 by default, and for a training run the update rule's state and residual accumulator
(`rlime.hw.optim.sram_bits_per_cell`: 32-bit words per weight, two cells a weight; Adam with a
residual: 48). The digital units' leakage is not modelled.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from rlime.hw.counts import ALL_KINDS, LedgerSnapshot, Phases, check_tables

if TYPE_CHECKING:  # energy.py imports this module; the preset is only a type here
    from rlime.cost.energy import TechnologyPreset

_DIGITAL_KINDS = ("gradient_macs", "optimizer_ops", "digital_ops", "partial_sum_adds")


def kind_seconds(tech: "TechnologyPreset") -> dict[str, float]:
    """Seconds per unit of every ledger kind (phase-independent; see the module table)."""
    n = tech.parallel_arrays
    out = {kind: 0.0 for kind in ALL_KINDS}
    out["adc_conversions"] = tech.conversion_s / n
    out["set_pulses"] = tech.write_pulse_s / n
    out["reset_pulses"] = tech.write_pulse_s / n
    out["verify_reads"] = (tech.read_pulse_s + tech.conversion_s) / n
    for kind in _DIGITAL_KINDS:
        out[kind] = tech.digital_op_s
    return out


@functools.lru_cache(maxsize=64)
def time_row(tech: "TechnologyPreset") -> np.ndarray:
    """(len(ALL_KINDS),) seconds per unit of each kind; read-only."""
    seconds = kind_seconds(tech)
    row = np.array([seconds[k] for k in ALL_KINDS])
    row.setflags(write=False)
    return row


def static_power_w(tech: "TechnologyPreset") -> float:
    """Watts drawn statically while a phase runs: the busy arrays' periphery static power plus the
    leakage of the SRAM each holds."""
    per_array = tech.periphery_static_w + tech.sram_leak_w_per_bit * tech.sram_bits_per_array
    return tech.parallel_arrays * per_array


def latency_tables(tables: np.ndarray, tech: "TechnologyPreset", phases: Phases) -> np.ndarray:
    """Seconds per phase for a stack of ledger tables:
    (..., len(phases), len(ALL_KINDS)) -> (..., len(phases))."""
    tables = np.asarray(tables, dtype=np.float64)
    check_tables(tables, phases)
    return tables @ time_row(tech)


def latency(snapshot: LedgerSnapshot, tech: "TechnologyPreset") -> dict[str, float]:
    """Seconds per phase of a snapshot (every phase, zeros included)."""
    seconds = latency_tables(snapshot.table, tech, snapshot.phases)
    return {phase: float(s) for phase, s in zip(snapshot.phases.names, seconds)}


def total_latency(snapshot: LedgerSnapshot, tech: "TechnologyPreset") -> float:
    """Seconds of the whole snapshot (phases one after another)."""
    return float(latency_tables(snapshot.table, tech, snapshot.phases).sum())


def static_energy(snapshot: LedgerSnapshot, tech: "TechnologyPreset") -> dict[str, float]:
    """Joules of static power over each phase's latency: ``static_power_w(tech) x latency``."""
    power = static_power_w(tech)
    return {phase: power * s for phase, s in latency(snapshot, tech).items()}
