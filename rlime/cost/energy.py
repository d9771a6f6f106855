"""Energy model: a technology preset prices the operation ledger (joules by category).

The ledger (`rlime.hw.ledger`) counts operations by (phase, kind); a `TechnologyPreset` gives the
energy of one operation of each kind; `price(snapshot, tech)` turns a snapshot (or the
difference of two) into joules per category. Pricing is a product with a precomputed
per-kind price row and a (phase x kind) -> category assignment, cached per preset, so
it is cheap enough to call at every episode end, and energy can be re-priced from a saved
ledger without re-running (`python -m rlime.report`).

Category mapping by the phase's role (`rlime.hw.counts.ROLES`; first matching rule wins):

====================  ==========================================================================
category              ledger entries
====================  ==========================================================================
<phase name>          EVERY kind in a phase of role ``copy`` or ``storage`` (DQN's
                      ``target_sync``: weight read-out, buffer traffic, the target cells'
                      pulses and verify reads; DQN's ``replay``: ``dram_bits`` under the
                      ``separate`` mapping, ``rram_memory_*_bits`` under ``time``, ...)
``forward``           MVM periphery/array kinds ``dac_conversions``, ``adc_conversions``,
                      ``cell_reads``, ``shift_adds`` in every other phase except those of role
                      ``backward`` (DQN: ``act``, ``forward``, ``target``)
``backward``          the same MVM kinds in a phase of role ``backward`` (TIME's transposed MVMs)
``gradient``          ``gradient_macs`` (digital outer products) and ``optimizer_ops``
``tuning``            ``set_pulses``, ``reset_pulses``, ``set_pulse_siemens``,
                      ``reset_pulse_siemens``, ``verify_reads`` (phases ``program``, ``update``)
``data_movement``     ``buffer_bits``, ``dram_bits``, ``noc_bit_hops``, ``rram_memory_*_bits``,
                      ``sram_bits`` (optimizer state and residual accumulators in periphery SRAM)
``digital``           ``partial_sum_adds`` and ``digital_ops`` (bias, activations, loss, TD)
====================  ==========================================================================

``mvm_macs`` is never priced here (price 0): it is the logical float workload the MVMs stand
for, used by the GPU/ASIC baselines (`rlime.cost.baselines`).

Per-operation prices (all in joules; the pJ value and its source sit next to each default):

* write pulse, priced by its circuits and drawn from the supply through the write voltage's
  generator: ``(V_w^2 * G * t_w + (C_wl + C_bl) * V_w^2) / eta_w``. The cell term uses G at that
  pulse (the ledger's ``*_pulse_siemens`` is sum(G) over pulses); the line term charges the
  selected word line (``tile.cols`` cells long) and bit line (``tile.rows`` cells long), each cell
  pitch adding ``wire_cap_f_per_m * cell_pitch_m``, to V_w once per pulse (C V^2 drawn, half
  dissipated while charging, half when the line is released); ``eta_w`` the generator's
  efficiency (energy drawn = energy delivered / eta_w). The line term prices the pulse count.
  Presets with a fixed per-pulse energy (``write_pulse_fixed_j``) price the pulse count and
  ignore siemens: the fixed energy replaces the cell term, and line charging and generator loss
  are added on top of it unless ``write_fixed_includes_periphery`` says the number already
  covers them. `pulse_breakdown` lists the terms.
* cell read (inside an MVM, per cell per array cycle): ``V_r^2 * G_mid * t_r`` with
  G_mid = (g_min + g_max) / 2 of the run's device (`HardwareConfig.device`), the mean
  conductance of a cell whose level is uniform over the range. Every driven row is assumed at the read voltage (an upper bound for bit-serial inputs
  whose bit is 0).
* verify read: one cell read + charging the selected word and bit line to V_r
  (``(C_wl + C_bl) * V_r^2``; reads need no pump, V_r < V_dd) + one ADC (sense) conversion.
* SRAM bit (``sram_bits``: optimizer moments, residual accumulators): ``sram_bit_j`` per bit
  read or written.
* gradient MAC: int8 mul + int32 add (its operands are the periphery's 8-bit DAC codes of input
  and error); optimizer op: mean of fp32 add and mul (update rules are
  mul/add pairs, SGD's ``w -= lr * g`` exactly one of each; Adam's sqrt/divide are
  under-priced); digital op: fp32 add (bias adds, ReLU compares, loss arithmetic); partial-sum
  add: int32 add (ADC outputs are fixed-point).
* RRAM memory-mode bits (replay under the ``time`` mapping), derived from the cell energies: a
  written bit is one write pulse of this preset at G_mid; a read bit is one cell read at G_mid
  plus a 1-bit sense, priced as the ADC energy scaled to 1 bit by Walden's figure of merit
  (energy per conversion step constant: E(b) = E(8) * 2^(b-8)).

`tuning_cost_scaled(tech, k)` divides the tuning-related prices (write pulses and verify reads,
in every phase) by k: the paper's "what if tuning cost fell k times" sweep. It leaves latency and
the ``static`` category alone (a cheaper pulse is not a shorter one).

Time and static power (`rlime.cost.latency`): each phase's latency comes from its counts
(ADC-bound MVMs, pulses and verify reads one cell at a time per array, digital ops at 1 GHz; the
module documents what is parallel), and the category ``static`` is static power x latency:
Energy = dynamic (the categories above) + static.

Normalisation of technology and timing. Every number is used as published: none is scaled to a
common node or to a common clock, and the combination rules are these. Energies are per
operation, so mixing nodes mixes per-operation costs (a 45 nm fp32 add beside a 32 nm ADC
conversion). Times add within a phase (nothing overlaps across kinds), so each time enters only
through its own kind: the 100 ns ISAAC cycle sets the MVM (ADC) time, the 10 ns read pulse sets the
cell-read energy and the verify read's time, the 50 ns write pulse the pulse energy and time,
and they are never converted into one another (an MVM cell read is priced at 10 ns of current
though the ISAAC cycle around it is 100 ns: the cycle is ADC-bound, the cell is read for t_r).

=========================  ==========  =================================================  ====================
number                     node        timing basis                                       source
=========================  ==========  =================================================  ====================
write pulse 1.6 V          device      50 ns pulse (energy V^2 G t and pulse time)        field comment
read 0.5 V                 device      10 ns pulse (cell-read energy, verify-read time)   DNN+NeuroSim V1.3
wire cap, cell pitch       32 nm       none (C V^2 per pulse)                             NeuroSim
write pump efficiency      32 nm Vdd   none                                               Dickson / NeuroSim
ADC 1.67 pJ                32 nm       1.2 GS/s (energy = 2 mW / rate)                    ISAAC / Kull 2013
ADC time 0.78 ns           32 nm       100 ns cycle / 128 columns (ISAAC's 1.28 GS/s)     ISAAC
DAC 0.39 pJ, S+A 0.021 pJ  32 nm       100 ns cycle (DAC), 8 x 1.2 GS/s (S+A)             ISAAC Table 6
S&H static 1.25 uW/array   32 nm       power, over latency                                ISAAC Table 6
eDRAM buffer, NoC          32 nm       per access / flit                                  ISAAC (CACTI)
SRAM access 0.156 pJ/bit   45 nm       per access                                         Horowitz 2014
SRAM leakage 9.5 pW/bit    32 nm LSTP  power, over latency (HP: 9.6 nW/bit, pessimistic)  NeuroSim V2.1
fp32 / int arithmetic      45 nm       per op; digital time 1 ns/op (1 GHz)               Horowitz / Accelergy
DRAM 20 pJ/bit             off-chip    per bit                                            Horowitz 2014
=========================  ==========  =================================================  ====================
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from rlime.common.errors import lookup, require
from rlime.cost.latency import latency_tables, static_energy, static_power_w
from rlime.hw.config import DeviceConfig, HardwareConfig, TileConfig, preset as hardware_preset
from rlime.hw.counts import ALL_KINDS, LedgerSnapshot, Phases, check_tables

PJ = 1e-12  # joules per picojoule

_MVM_KINDS = ("dac_conversions", "adc_conversions", "cell_reads", "shift_adds", "mvm_macs")
_TUNING_KINDS = ("set_pulses", "reset_pulses", "set_pulse_siemens", "reset_pulse_siemens",
                 "verify_reads")
_KIND_CATEGORY = {
    **{k: "forward" for k in _MVM_KINDS},  # "backward" in a phase of role backward (_category)
    **{k: "tuning" for k in _TUNING_KINDS},
    "partial_sum_adds": "digital",
    "digital_ops": "digital",
    "gradient_macs": "gradient",
    "optimizer_ops": "gradient",
    "buffer_bits": "data_movement",
    "dram_bits": "data_movement",
    "noc_bit_hops": "data_movement",
    "rram_memory_write_bits": "data_movement",
    "rram_memory_read_bits": "data_movement",
    "sram_bits": "data_movement",
}


@dataclass(frozen=True)
class TechnologyPreset:
    """Per-operation energies (joules) of a technology pricing cells of `device`.

    The conductances come from `device` (the run's `HardwareConfig.device`), nothing else repeats
    them. Defaults are the `default` preset; every number carries its source.
    """

    name: str = "default"
    device: DeviceConfig = field(default_factory=DeviceConfig)
    # write pulse 1.6 V, 50 ns; energy V^2 * G * t per pulse (same table; NeuroSim's
    # write-energy formula)
    write_voltage_v: float = 1.6
    write_pulse_s: float = 50e-9
    # None: V^2 G t from the ledger's summed conductance; a number: joules per pulse, whatever G
    # (replaces the cell term; see write_fixed_includes_periphery)
    write_pulse_fixed_j: float | None = None
    # whether write_pulse_fixed_j already covers line charging and the write generator's loss
    # (then the pulse costs exactly that number)
    write_fixed_includes_periphery: bool = False
    # --- lines: the selected word line and bit line of the tile are charged at every pulse and
    # verify read. Tile geometry: HardwareConfig.tile (128 x 128, ISAAC/NeuroSim), set from the
    # preset's hardware by _preset.
    tile_rows: int = 128
    tile_cols: int = 128
    # wire capacitance 0.2 fF/um (NeuroSim, DNN_NeuroSim_V2.1 SubArray.cpp: capRow/capCol =
    # length x 0.2e-15/1e-6)
    wire_cap_f_per_m: float = 0.2e-9
    # cell pitch 4 F with F = 40 nm: 1T1R cell 4 x 4 F (NeuroSim Param.cpp
    # heightInFeatureSize1T1R = widthInFeatureSize1T1R = 4) at the 32 nm node, whose wire width
    # NeuroSim takes as 40 nm (Param.cpp featuresize = 40e-9 for technode 32; ISAAC's 32 nm)
    # -> 160 nm per cell, 0.032 fF of wire per cell. The access transistors' gate/drain caps that
    # NeuroSim adds on 1T1R lines are left out (wire only: a lower bound).
    cell_pitch_m: float = 160e-9
    # --- write-voltage generator: V_w = 1.6 V is above V_dd = 0.9 V (NeuroSim Technology.cpp,
    # 32 nm PTM HP/LP), so it comes from a charge pump. An ideal N-stage Dickson pump draws
    # (N + 1) x its output current from V_dd (Tanzawa & Tanaka, "A Dynamic Analysis of the
    # Dickson Charge Pump Circuit", JSSC 1997); one stage suffices for 1.6 V < 2 x 0.9 V, so its
    # efficiency is at most 1.6 / (2 x 0.9) = 0.889 (an upper bound: no parasitic or switching
    # losses, no regulator).
    write_supply_efficiency: float = 1.6 / (2 * 0.9)
    # read 0.5 V, 10 ns (DNN+NeuroSim V1.3, Param.cpp: readVoltage, readPulseWidth)
    read_voltage_v: float = 0.5
    read_pulse_s: float = 10e-9
    # --- periphery (ISAAC, Shafiee et al. ISCA 2016, Table 6, 32 nm)
    # ADC: 8-bit, 2 mW at 1.2 GS/s (Kull et al. ISSCC 2013) -> 2e-3 / 1.2e9 = 1.67 pJ/conversion
    adc_j: float = 1.67 * PJ
    # DAC: 1-bit, 8 x 128 DACs per IMA take 4 mW; one array cycle is 100 ns ->
    # 4e-3 / 1024 * 100e-9 = 0.39 pJ per row per cycle
    dac_j: float = 0.39 * PJ
    # shift-and-add: 4 units per IMA take 0.2 mW at the ADC rate 8 x 1.2 GS/s ->
    # 0.2e-3 / 9.6e9 = 0.021 pJ per op
    shift_add_j: float = 0.021 * PJ
    # on-chip eDRAM buffer: 20.45 pJ per 256-bit access (ISAAC's 64 KB eDRAM, CACTI) ->
    # 0.08 pJ/bit
    buffer_bit_j: float = 0.08 * PJ
    # periphery SRAM for optimizer state and residuals: 10 pJ per 64-bit read of an 8 KB SRAM
    # (Horowitz ISSCC 2014, 45 nm, the node of the arithmetic below) -> 0.156 pJ/bit
    sram_bit_j: float = 10.0 / 64 * PJ
    # on-chip network: router 42 mW shared by 4 tiles, 20.74 pJ per 256-bit flit ->
    # 0.08 pJ/bit/hop
    noc_bit_hop_j: float = 0.08 * PJ
    # --- off-chip memory: DRAM 20 pJ/bit (Horowitz, "Computing's energy problem", ISSCC 2014:
    # 1.3-2.6 nJ per 64-bit DRAM access = 20-40 pJ/bit; the low end)
    dram_bit_j: float = 20.0 * PJ
    # --- digital arithmetic, 45 nm (Horowitz ISSCC 2014): fp32 add 0.9 pJ, fp32 mul 3.7 pJ,
    # int32 add 0.1 pJ
    fp32_add_j: float = 0.9 * PJ
    fp32_mul_j: float = 3.7 * PJ
    int32_add_j: float = 0.1 * PJ
    # 8-bit multiply 0.2 pJ (Horowitz ISSCC 2014, 45 nm): the weight-gradient outer products
    # multiply the periphery's 8-bit DAC codes of the input and of the error (rlime.hw.layers)
    int8_mul_j: float = 0.2 * PJ
    # --- tuning-cost sweep: write pulses and verify reads are divided by this
    tuning_divisor: float = 1.0
    # --- timing (rlime.cost.latency; the normalisation table in the module docstring)
    # ISAAC array cycle 100 ns, in which one crossbar's ADC (8 bits, 1.28 GS/s) converts all 128
    # of its columns (Shafiee et al., ISCA 2016, Table 6 and its pipeline): 128 conversions a
    # cycle, 0.78 ns of array time each
    array_cycle_s: float = 100e-9
    adc_conversions_per_cycle: float = 128
    # digital units: one operation per 1 ns cycle (1 GHz, the global cycle of the
    # Accelergy/hwcomponents ISAAC component library, isaac.py)
    digital_op_s: float = 1e-9
    # arrays busy at once (MVMs, pulses, verify reads); 1: one at a time, latency an upper bound
    parallel_arrays: int = 1
    # --- static power over the latency (category ``static``)
    # periphery static power per busy array: ISAAC's sample-and-hold, 8 x 128 per IMA of 8
    # crossbars taking 10 uW (Table 6) -> 1.25 uW per array, charged whole as static (its bias is
    # on while the array computes; an upper bound on its static share). ADC, DAC and
    # shift-and-add: no static share, as in the Accelergy/hwcomponents ISAAC tables (isaac.py:
    # leak_power = 0 for IsaacADC, IsaacDAC, IsaacShiftAdd; Table 6's powers are activity power,
    # priced per conversion above)
    periphery_static_w: float = 10e-6 / (8 * 128) * 128
    # SRAM leakage per bit: DNN_NeuroSim_V2.1 SubArray.cpp models an SRAM cell's leakage as two
    # inverters, 2 x Vdd x (W_n I_off,n + W_p I_off,p) / 2, with W_n = 2.08 F, W_p = 1.23 F
    # (Param.cpp widthSRAMCellNMOS/PMOS), F = 32 nm, and at 32 nm LSTP, 300 K (NeuroSim's default
    # roadmap, Param.cpp deviceroadmap = 2) Vdd = 0.9 V, I_off = 100.1 nA/mm for n and p
    # (Technology.cpp: currentOffNmos/Pmos[0] = 100.10e-6 A/m) -> 9.5 pW per bit
    sram_leak_w_per_bit: float = 0.9 * (2.08 * 32e-9 * 100.10e-6 + 1.23 * 32e-9 * 100.10e-6)
    # SRAM held per array (not in the ledger; rlime.cost.latency): the residual accumulators,
    # one 32-bit word a cell (rlime.hw.optim)
    sram_bits_per_cell: float = 32

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("name", "device") or (f.name == "write_pulse_fixed_j" and value is None):
                continue
            if f.name == "write_fixed_includes_periphery":
                require(isinstance(value, bool), f"energy preset {self.name!r}: {f.name}", value,
                        "it must be True or False")
                continue
            require(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
                    f"energy preset {self.name!r}: {f.name}", value,
                    "it must be a finite number >= 0")
        require(self.tuning_divisor > 0, f"energy preset {self.name!r}: tuning_divisor",
                self.tuning_divisor, "it must be > 0")
        require(0 < self.write_supply_efficiency <= 1,
                f"energy preset {self.name!r}: write_supply_efficiency",
                self.write_supply_efficiency, "it must be in (0, 1]")
        require(self.adc_conversions_per_cycle > 0,
                f"energy preset {self.name!r}: adc_conversions_per_cycle",
                self.adc_conversions_per_cycle, "it must be > 0")
        for name in ("tile_rows", "tile_cols", "parallel_arrays"):
            require(getattr(self, name) >= 1 and float(getattr(self, name)).is_integer(),
                    f"energy preset {self.name!r}: {name}", getattr(self, name),
                    "it must be a whole number >= 1")

    # ---- derived timing and static power (rlime.cost.latency) ------------------------------

    @property
    def conversion_s(self) -> float:
        """Array time of one ADC conversion: the array cycle over the conversions it holds."""
        return self.array_cycle_s / self.adc_conversions_per_cycle

    @property
    def sram_bits_per_array(self) -> float:
        """Periphery SRAM bits one array holds (the residual accumulators of its cells)."""
        return self.sram_bits_per_cell * self.tile_rows * self.tile_cols

    # ---- derived per-operation energies (joules) -------------------------------------------

    @property
    def g_mid_siemens(self) -> float:
        return 0.5 * (self.device.g_min_siemens + self.device.g_max_siemens)

    @property
    def cell_read_j(self) -> float:
        """V_r^2 * G_mid * t_r: one cell read inside an MVM."""
        return self.read_voltage_v**2 * self.g_mid_siemens * self.read_pulse_s

    @property
    def cell_line_cap_f(self) -> float:
        """Wire capacitance one cell pitch adds to a line (farads)."""
        return self.wire_cap_f_per_m * self.cell_pitch_m

    @property
    def word_line_cap_f(self) -> float:
        """A word line spans the tile's columns."""
        return self.tile_cols * self.cell_line_cap_f

    @property
    def bit_line_cap_f(self) -> float:
        """A bit line spans the tile's rows."""
        return self.tile_rows * self.cell_line_cap_f

    def _lines_j(self, volts: float) -> tuple[float, float]:
        """C V^2 drawn to charge the selected (word line, bit line) to `volts`."""
        return self.word_line_cap_f * volts**2, self.bit_line_cap_f * volts**2

    @property
    def _fixed_is_total(self) -> bool:
        return self.write_pulse_fixed_j is not None and self.write_fixed_includes_periphery

    @property
    def write_j_per_siemens(self) -> float:
        """V_w^2 * t_w / eta_w: multiplies the ledger's summed pulse conductance (0 with a fixed
        price)."""
        if self.write_pulse_fixed_j is not None:
            return 0.0
        return self.write_voltage_v**2 * self.write_pulse_s / self.write_supply_efficiency

    @property
    def write_pulse_j(self) -> float:
        """Price of the pulse count itself: (fixed cell energy, if any, + line charging) / eta_w,
        or the fixed energy alone when it includes the periphery. The cell's V^2 G t is priced
        through the siemens kinds."""
        if self._fixed_is_total:
            return self.write_pulse_fixed_j
        delivered = sum(self._lines_j(self.write_voltage_v)) + (self.write_pulse_fixed_j or 0.0)
        return delivered / self.write_supply_efficiency

    @property
    def write_pulse_mid_j(self) -> float:
        """One whole write pulse at G_mid (memory-mode bits; the closing note)."""
        return self.write_pulse_j + self.write_j_per_siemens * self.g_mid_siemens

    @property
    def verify_read_j(self) -> float:
        """One verify read: a cell read, the selected lines charged to V_r, one ADC (sense)
        conversion."""
        return self.cell_read_j + sum(self._lines_j(self.read_voltage_v)) + self.adc_j

    @property
    def gradient_mac_j(self) -> float:
        """One weight-gradient MAC on 8-bit periphery codes: int8 multiply + int32 accumulate."""
        return self.int8_mul_j + self.int32_add_j

    @property
    def optimizer_op_j(self) -> float:
        return 0.5 * (self.fp32_mul_j + self.fp32_add_j)

    @property
    def digital_op_j(self) -> float:
        return self.fp32_add_j

    @property
    def sense_bit_j(self) -> float:
        """A 1-bit sense: the 8-bit ADC scaled by Walden's FoM, E(1) = E(8) / 2^7."""
        return self.adc_j / 2**7

    @property
    def rram_memory_read_bit_j(self) -> float:
        """A memory-mode bit read: one cell read plus a 1-bit sense."""
        return self.cell_read_j + self.sense_bit_j

    def kind_prices(self) -> dict[str, float]:
        """Joules per unit of every ledger kind (phase-independent)."""
        tune = 1.0 / self.tuning_divisor
        prices = {
            "mvm_macs": 0.0,  # logical workload for the baselines, not an RRAM operation
            "dac_conversions": self.dac_j,
            "adc_conversions": self.adc_j,
            "cell_reads": self.cell_read_j,
            "shift_adds": self.shift_add_j,
            "partial_sum_adds": self.int32_add_j,
            "set_pulses": self.write_pulse_j * tune,
            "reset_pulses": self.write_pulse_j * tune,
            "verify_reads": self.verify_read_j * tune,
            "gradient_macs": self.gradient_mac_j,
            "optimizer_ops": self.optimizer_op_j,
            "digital_ops": self.digital_op_j,
            "buffer_bits": self.buffer_bit_j,
            "dram_bits": self.dram_bit_j,
            "noc_bit_hops": self.noc_bit_hop_j,
            "rram_memory_write_bits": self.write_pulse_mid_j,
            "rram_memory_read_bits": self.rram_memory_read_bit_j,
            "sram_bits": self.sram_bit_j,
            "set_pulse_siemens": self.write_j_per_siemens * tune,
            "reset_pulse_siemens": self.write_j_per_siemens * tune,
        }
        return prices

    def table(self) -> dict[str, float]:
        """Every per-operation energy in pJ (for reports and summary.json)."""
        out = {(f"{kind}_pj_per_siemens" if kind.endswith("_siemens") else f"{kind}_pj"): value / PJ
               for kind, value in self.kind_prices().items()}
        out["write_pulse_at_g_mid_pj"] = self.write_pulse_mid_j / self.tuning_divisor / PJ
        return out


def pulse_breakdown(tech: TechnologyPreset) -> dict[str, float]:
    """Joules per write pulse by term (cell at G_mid), and per verify read by term.

    Keys: ``pulse_cell``, ``pulse_word_line``, ``pulse_bit_line`` (energy delivered),
    ``pulse_driver_loss`` (drawn - delivered), ``pulse_total``; ``verify_cell``,
    ``verify_lines``, ``verify_sense``, ``verify_total``. A fixed per-pulse energy that includes
    the periphery is reported whole as ``pulse_cell`` with zero line and driver terms. The
    tuning divisor applies to every term, as in `kind_prices`.
    """
    tune = 1.0 / tech.tuning_divisor
    if tech._fixed_is_total:
        cell, wl, bl = tech.write_pulse_fixed_j, 0.0, 0.0
    else:
        cell = (tech.write_pulse_fixed_j if tech.write_pulse_fixed_j is not None else
                tech.write_voltage_v**2 * tech.g_mid_siemens * tech.write_pulse_s)
        wl, bl = tech._lines_j(tech.write_voltage_v)
    delivered = cell + wl + bl
    loss = 0.0 if tech._fixed_is_total else delivered * (1 / tech.write_supply_efficiency - 1)
    read_lines = sum(tech._lines_j(tech.read_voltage_v))
    out = {"pulse_cell": cell, "pulse_word_line": wl, "pulse_bit_line": bl,
           "pulse_driver_loss": loss, "pulse_total": delivered + loss,
           "verify_cell": tech.cell_read_j, "verify_lines": read_lines,
           "verify_sense": tech.adc_j, "verify_total": tech.verify_read_j}
    return {k: v * tune for k, v in out.items()}


@dataclass(frozen=True)
class Preset:
    """A named technology: the hardware simulated and the energies that price its operations."""

    hardware: HardwareConfig
    energy: TechnologyPreset


def _preset(name: str, **energy: float) -> Preset:
    """Hardware preset `name` and its prices (defaults unless given) for that hardware's cells."""
    hardware = hardware_preset(name)
    return Preset(hardware, TechnologyPreset(name=name, device=hardware.device,
                                             tile_rows=hardware.tile.rows,
                                             tile_cols=hardware.tile.cols, **energy))


# The energy half of each preset; the hardware half and its sources are in rlime.hw.config.
PRESETS = {
    "default": _preset("default"),
    "optimistic": _preset(
        "optimistic",
        # 0.1 pJ per write transition: the sub-pJ switching energy reported for scaled HfOx
        # RRAM (Govoreanu et al., IEDM 2011, 10x10 nm^2 Hf/HfOx cells; ~0.1 pJ/bit in the RRAM
        # column of Yu & Chen, IEEE Solid-State Circuits Magazine 2016). It is a cell's energy:
        # it replaces V^2 G t, and the default line charging (NeuroSim wire cap) and pump
        # efficiency are added on top: (0.1 pJ + lines) / eta_w per pulse.
        write_pulse_fixed_j=0.1 * PJ,
        # HBM-class memory: HBM2 ~3.9 pJ/bit (O'Connor et al., "Fine-Grained DRAM", MICRO 2017)
        dram_bit_j=3.9 * PJ,
        # 5-bit ADC: ISAAC's 8-bit SAR ADC scaled to 5 bits with Saberi et al.'s capacitive-DAC
        # SAR model (TCAS-I 2011), 0.99 pJ/conversion (Accelergy/hwcomponents ISAAC ADC table)
        adc_j=0.99 * PJ),
    "pessimistic": _preset(
        "pessimistic",
        # 10 pJ per write pulse, whatever the conductance (docs/design.md, pessimistic preset; ~8x the
        # V^2 G t of this cell at Gmax, 1.28 pJ, to cover write drivers and line charging):
        # the whole pulse, so line charging and pump loss are not added again. Verify reads
        # still add the default line charging at V_r to their cell read and 20 pJ ADC.
        write_pulse_fixed_j=10.0 * PJ,
        write_fixed_includes_periphery=True,
        # SRAM leakage at NeuroSim's 32 nm HP roadmap instead of LSTP (DNN_NeuroSim_V2.1
        # Technology.cpp: I_off,n = 100.30e-3 A/m, I_off,p = 100.10e-3 A/m at 300 K, Vdd 0.9 V;
        # same two-inverter cell as the default) -> 9.6 nW per bit
        sram_leak_w_per_bit=0.9 * (2.08 * 32e-9 * 100.30e-3 + 1.23 * 32e-9 * 100.10e-3),
        # ADC by MNSIM's convention (MNSIM-2.0 Hardware_Model/ADC.py): energy = power x latency,
        # latency = (bits + 2) / sample rate; its ISAAC ADC (2 mW, 1 GS/s, 8 bits) ->
        # 2e-3 x 10e-9 = 20 pJ/conversion
        adc_j=20.0 * PJ),
    # The ideal hardware only removes non-idealities; energy is still counted at default prices.
    "ideal": _preset("ideal"),
}


def preset(name: str) -> Preset:
    """The named preset; ConfigError lists the allowed names."""
    return lookup(PRESETS, name, "preset")


def energy_preset(name: str, device: DeviceConfig | None = None,
                  tile: TileConfig | None = None,
                  sram_bits_per_cell: float | None = None) -> TechnologyPreset:
    """The named preset's prices, for cells of `device` on tiles of `tile` holding
    `sram_bits_per_cell` bits of periphery SRAM (`rlime.hw.optim.sram_bits_per_cell`)
    (default: the preset's own hardware and assumption)."""
    tech = preset(name).energy
    if device is not None:
        tech = dataclasses.replace(tech, device=device)
    if tile is not None:
        tech = dataclasses.replace(tech, tile_rows=tile.rows, tile_cols=tile.cols)
    if sram_bits_per_cell is not None:
        tech = dataclasses.replace(tech, sram_bits_per_cell=sram_bits_per_cell)
    return tech


def tuning_cost_scaled(tech: TechnologyPreset, k: float) -> TechnologyPreset:
    """`tech` with write-pulse and verify-read energies divided by k (k > 0)."""
    if not (isinstance(k, (int, float)) and math.isfinite(k) and k > 0):
        raise ValueError(f"tuning-cost divisor k = {k!r} must be a finite number > 0")
    return dataclasses.replace(tech, name=f"{tech.name}/tuning-{k:g}x-cheaper",
                               tuning_divisor=tech.tuning_divisor * k)


# ---- pricing ---------------------------------------------------------------------------------


def categories(phases: Phases) -> tuple[str, ...]:
    """The energy categories of a phase vocabulary: the hardware's own, with one category per
    phase of role `copy` or `storage` (DQN: `target_sync`, `replay`) after `tuning`, and
    `static` (static power over every phase's latency, `rlime.cost.latency`) last."""
    apart = phases.with_role("copy", "storage")
    return ("forward", "backward", "gradient", "tuning", *apart, "data_movement", "digital",
            "static")


def _category(phases: Phases, phase: str, kind: str) -> str:
    if phases.role(phase) in ("copy", "storage"):
        return phase
    try:
        category = _KIND_CATEGORY[kind]
    except KeyError:
        raise ValueError(f"ledger kind {kind!r} has no energy category; add it to "
                         f"rlime.cost.energy._KIND_CATEGORY and TechnologyPreset.kind_prices") from None
    if category == "forward" and phases.role(phase) == "backward":
        return "backward"
    return category


@functools.lru_cache(maxsize=None)
def _assignment(phases: Phases) -> np.ndarray:
    """(len(phases) * len(ALL_KINDS), len(categories(phases))) one-hot category assignment."""
    names = categories(phases)
    a = np.zeros((len(phases) * len(ALL_KINDS), len(names)))
    for p, phase in enumerate(phases.names):
        for k, kind in enumerate(ALL_KINDS):
            a[p * len(ALL_KINDS) + k, names.index(_category(phases, phase, kind))] = 1.0
    return a


@functools.lru_cache(maxsize=64)
def price_row(tech: TechnologyPreset) -> np.ndarray:
    """(len(ALL_KINDS),) joules per unit of each kind, the same in every phase; read-only."""
    prices = tech.kind_prices()
    missing = [k for k in ALL_KINDS if k not in prices]
    if missing:
        raise ValueError(f"ledger kind(s) {missing} have no price in TechnologyPreset."
                         f"kind_prices(); every ledger kind must be priced (0 if deliberate)")
    row = np.array([prices[k] for k in ALL_KINDS])
    row.setflags(write=False)
    return row


def price_tables(tables: np.ndarray, tech: TechnologyPreset, phases: Phases) -> np.ndarray:
    """Joules by category for a stack of ledger tables of one phase axis:
    (..., len(phases), len(ALL_KINDS)) -> (..., len(categories(phases)))."""
    tables = np.asarray(tables, dtype=np.float64)
    check_tables(tables, phases)
    e = tables * price_row(tech)
    out = e.reshape(*e.shape[:-2], -1) @ _assignment(phases)
    # the static category: static power x the latency of every phase (no ledger entry maps to it)
    out[..., -1] = static_power_w(tech) * latency_tables(tables, tech, phases).sum(axis=-1)
    return out


def price(snapshot: LedgerSnapshot, tech: TechnologyPreset) -> dict[str, float]:
    """Joules per category (all of `categories(snapshot.phases)`); their sum is `total(...)`:
    the dynamic energy of the ledger's operations plus `static`."""
    values = price_tables(snapshot.table, tech, snapshot.phases)
    return {c: float(v) for c, v in zip(categories(snapshot.phases), values)}


def total(snapshot: LedgerSnapshot, tech: TechnologyPreset) -> float:
    """Total joules of a snapshot (the sum of `price`'s categories)."""
    return float(price_tables(snapshot.table, tech, snapshot.phases).sum())


def price_by_kind(snapshot: LedgerSnapshot, tech: TechnologyPreset) -> dict[str, dict[str, float]]:
    """{phase: {kind: joules}} with zero entries left out (where did the energy go?). Each
    phase's static energy (static power x its latency) is under the key ``static``."""
    e = snapshot.table * price_row(tech)
    static = static_energy(snapshot, tech)
    out: dict[str, dict[str, float]] = {}
    for p, phase in enumerate(snapshot.phases.names):
        row = {kind: float(e[p, k]) for k, kind in enumerate(ALL_KINDS) if e[p, k]}
        if static[phase]:
            row["static"] = static[phase]
        if row:
            out[phase] = row
    return out
