"""Typed hardware configuration (device, tile, periphery, tuning).

Every dataclass validates itself on construction and raises `ConfigError` naming the field, the
value given and what is allowed. Hardware presets: `default`, `optimistic`, `pessimistic`,
`ideal` (sources next to the numbers); `rlime.cost.energy.PRESETS` pairs each with its energy
prices, and runs use that bundle.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from rlime.common.errors import ConfigError, lookup, require
from rlime.common.settings import build, check_types
from rlime.hw import measured

RESPONSE_MODELS = ("linear", "soft-bounds", "nonlinear", "measured")
TUNING_SCHEMES = ("open-loop", "write-verify", "gradual")
ADC_RANGES = ("calibrated", "fixed")
READ_NOISE_MODELS = ("additive", "proportional")


@dataclass(frozen=True)
class DeviceConfig:
    """One RRAM cell type.

    Conductances in siemens; noise sigmas are fractions of the nominal range (g_max_siemens - g_min_siemens);
    `levels` programmable levels span that range, so one nominal pulse moves a cell by
    1 / (levels - 1) of it. `read_noise_model` "proportional" makes a read's sigma
    read_noise_sigma x G (NeuroSim's read, I = V G (1 + N(0, sigmaReadNoise)), Cell.cpp
    IdealDevice::Read) instead of read_noise_sigma x range. `relaxation_sigma`: the spread a
    cell's conductance takes right after it was programmed (post-programming relaxation, seen
    after write-verify on RRAM arrays, e.g. Wan et al. Nature 2022, Extended Data Fig. 3); the
    verify reads happen before it, so it is what makes write-verify imperfect. The nonlinearity labels are NeuroSim's (signed; mapped to its
    parameter A by `rlime.hw.device.neurosim_param_a`, |label| <= 9 as its table).

    `response` "measured" reads the device's pulse-response data from the CSV file `table`
    (`rlime.hw.measured`): its curves and cycle-to-cycle spread replace nonlinearity_up,
    nonlinearity_down, down_up_ratio and c2c_sigma (unused then), and g_min_siemens,
    g_max_siemens and levels are set to the table's; `table` is stored as an absolute path and
    `table_sha256` as the file's hash (filled in when empty; a different recorded hash is an
    error, so a recorded run cannot silently change device).
    """

    # Ron = 100 kOhm, Roff = 1 MOhm, 128 levels, C2C 3.7 %, NL 0.04 / -0.63: Wu et al. VLSI 2018
    # TaOx/HfOx device as tabulated in the MLP+NeuroSim V3.0 manual, Table II.
    g_min_siemens: float = 1e-6         # Gmin = 1 / Roff
    g_max_siemens: float = 1e-5         # Gmax = 1 / Ron
    levels: int = 128                   # programmable levels over [Gmin, Gmax]
    response: str = "nonlinear"         # linear, soft-bounds, nonlinear or measured (table)
    nonlinearity_up: float = 0.04       # SET (LTP) NeuroSim nonlinearity label, 0 = linear
    nonlinearity_down: float = -0.63    # RESET (LTD) label; < 0 saturates towards Gmin
    down_up_ratio: float = 1.0          # mean RESET step / mean SET step (up/down asymmetry)
    d2d_step_sigma: float = 0.0         # relative spread of the step size across cells
    d2d_bound_sigma: float = 0.0        # lognormal sigma of each cell's Gmin and Gmax (relative)
    c2c_sigma: float = 0.037            # per pulse: n pulses spread by c2c_sigma * sqrt(n)
    read_noise_sigma: float = 0.0       # per read: fraction of range, or of G (proportional)
    read_noise_model: str = "additive"  # additive (sigma x range) or proportional (sigma x G)
    relaxation_sigma: float = 0.0       # once after each programming event, fraction of range
    stuck_at_min_fraction: float = 0.0  # fraction of cells stuck at Gmin from the start
    stuck_at_max_fraction: float = 0.0  # fraction of cells stuck at Gmax from the start
    endurance_pulses: float = 1e9       # Lanza et al. 2019 (requirement); math.inf = no wear-out
    table: str = ""                     # measured: CSV of the device's pulse response
    table_sha256: str = ""              # measured: the table's sha256 (recorded by rlime)

    def __post_init__(self) -> None:
        check_types(self, "device")
        if self.response == "measured":
            self._take_table()
        else:
            for name in ("table", "table_sha256"):
                require(not getattr(self, name), f"device.{name}", getattr(self, name),
                        f'only device.response = "measured" reads a table (response is '
                        f'{self.response!r}); leave it empty')
        require(self.g_min_siemens > 0, "device.g_min_siemens", self.g_min_siemens,
                "it must be a conductance > 0 siemens")
        require(self.g_max_siemens > self.g_min_siemens, "device.g_max_siemens", self.g_max_siemens,
                f"it must exceed g_min_siemens = {self.g_min_siemens} siemens")
        require(self.levels >= 2, "device.levels", self.levels, "it must be an integer >= 2")
        require(self.response in RESPONSE_MODELS, "device.response", self.response,
                f"choose one of {', '.join(RESPONSE_MODELS)}")
        for name in ("nonlinearity_up", "nonlinearity_down"):
            require(abs(getattr(self, name)) <= 9, f"device.{name}", getattr(self, name),
                    "it must be a NeuroSim nonlinearity label in [-9, 9] (0 = linear)")
        require(self.down_up_ratio > 0, "device.down_up_ratio", self.down_up_ratio, "it must be > 0")
        require(self.read_noise_model in READ_NOISE_MODELS, "device.read_noise_model",
                self.read_noise_model, f"choose one of {', '.join(READ_NOISE_MODELS)}")
        for name in ("d2d_step_sigma", "d2d_bound_sigma", "c2c_sigma", "read_noise_sigma",
                     "relaxation_sigma"):
            value = getattr(self, name)
            require(math.isfinite(value) and value >= 0, f"device.{name}", value,
                    "it must be a finite number >= 0")
        require(self.d2d_bound_sigma <= 1, "device.d2d_bound_sigma", self.d2d_bound_sigma,
                "it must be <= 1 (a lognormal sigma)")
        require(self.d2d_step_sigma < 1, "device.d2d_step_sigma", self.d2d_step_sigma,
                "it must be < 1 (a relative spread)")
        for name in ("stuck_at_min_fraction", "stuck_at_max_fraction"):
            require(0 <= getattr(self, name) <= 1, f"device.{name}", getattr(self, name),
                    "it must be a fraction in [0, 1]")
        require(self.stuck_at_min_fraction + self.stuck_at_max_fraction <= 1,
                "device.stuck_at_max_fraction", self.stuck_at_max_fraction,
                "stuck_at_min_fraction + stuck_at_max_fraction must be <= 1")
        require(self.endurance_pulses >= 1, "device.endurance_pulses", self.endurance_pulses,
                "it must be >= 1 pulse (or inf)")

    def _take_table(self) -> None:
        """Set the table's path (absolute), hash, Gmin, Gmax and levels (frozen fields, so
        through object.__setattr__, as a dataclass derives fields)."""
        require(bool(self.table), "device.table", self.table,
                'device.response = "measured" needs the path of the device\'s CSV table '
                '(e.g. --set device.table=rlime/hw/data/default_preset.csv)')
        table = measured.load(self.table, self.table_sha256)
        derived = {"table": str(Path(self.table).resolve()), "table_sha256": table.sha256,
                   "g_min_siemens": table.g_min_siemens, "g_max_siemens": table.g_max_siemens,
                   "levels": table.levels}
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @property
    def range_siemens(self) -> float:
        return self.g_max_siemens - self.g_min_siemens


@dataclass(frozen=True)
class TileConfig:
    """Crossbar tile size (cells) and how weights are scaled onto conductances.

    A weight matrix of `in` rows x `out` columns is split into ceil(in/rows) x ceil(out/cols)
    tiles; G+ and G- sit in twin arrays sharing drivers and a differential ADC per column.
    `weight_headroom`: the full conductance range represents +-headroom * max|W0| of the
    initial weights, leaving room for weights to grow during training.
    """

    rows: int = 128   # ISAAC; NeuroSim
    cols: int = 128
    weight_headroom: float = 2.0  # the range represents +-headroom * max|W0|
    # wire resistance of one cell-to-cell segment of a word or bit line, ohms; 0 = no IR drop.
    # aihwkit's IOParameters.ir_drop_g_ratio default is 1 / (0.35 ohm * 5 uS): 0.35 ohm a segment
    wire_resistance_ohm: float = 0.0

    def __post_init__(self) -> None:
        check_types(self, "tile")
        for name in ("rows", "cols"):
            require(getattr(self, name) >= 1, f"tile.{name}", getattr(self, name),
                    "it must be an integer >= 1 (cells)")
        require(self.weight_headroom >= 1, "tile.weight_headroom", self.weight_headroom,
                "it must be >= 1")
        require(math.isfinite(self.wire_resistance_ohm) and self.wire_resistance_ohm >= 0,
                "tile.wire_resistance_ohm", self.wire_resistance_ohm,
                "it must be a finite resistance >= 0 ohms (0 = no IR drop)")


@dataclass(frozen=True)
class ConverterConfig:
    """Periphery of one MVM direction (forward, or backward through the transposed array).

    `input_bits`: signed input precision (per-vector abs-max scaling), None = unquantised.
    `dac_bits`: bits driven per array cycle; an n-bit input takes ceil(n / dac_bits) cycles.
    `adc_bits`: output precision, None = an ideal converter (no rounding, no range).
    `adc_range`: "calibrated" -- each tile's ADC range follows a running peak of its partial
    sums (x `adc_headroom`, decaying by `adc_decay` per conversion), as periodic reference
    calibration would set it; "fixed" -- +-min(adc_bound, rows used), in units of
    (max|input| x full-scale weight). A fixed range clips large outputs such as DQN's Q-values.
    `adc_noise`: output noise sigma as a fraction of the ADC range.
    """

    input_bits: int | None = 8  # signed input precision, none = unquantised
    dac_bits: int = 1          # ISAAC: 1-bit DAC
    adc_bits: int | None = 8   # ISAAC: 8-bit ADC
    adc_range: str = "calibrated"  # calibrated (running peak) or fixed
    adc_headroom: float = 1.25  # calibrated range = running peak x this
    adc_decay: float = 0.999    # per-conversion decay of the running peak
    adc_bound: float = 12.0    # IBM aihwkit's default out_bound
    adc_noise: float = 0.0     # output noise sigma, fraction of the ADC range

    def __post_init__(self) -> None:
        check_types(self, "periphery")
        require(self.input_bits is None or 2 <= self.input_bits <= 32, "periphery.input_bits",
                self.input_bits, "it must be an integer in [2, 32] or None")
        require(self.dac_bits >= 1, "periphery.dac_bits", self.dac_bits,
                "it must be an integer >= 1")
        require(self.adc_bits is None or 1 <= self.adc_bits <= 32, "periphery.adc_bits",
                self.adc_bits, "it must be an integer in [1, 32] or None")
        require(self.adc_range in ADC_RANGES, "periphery.adc_range", self.adc_range,
                f"choose one of {', '.join(ADC_RANGES)}")
        require(self.adc_headroom >= 1, "periphery.adc_headroom", self.adc_headroom,
                "it must be >= 1")
        require(0 < self.adc_decay <= 1, "periphery.adc_decay", self.adc_decay,
                "it must be in (0, 1]")
        require(self.adc_bound > 0, "periphery.adc_bound", self.adc_bound,
                "it must be > 0 (or inf)")
        require(math.isfinite(self.adc_noise) and self.adc_noise >= 0, "periphery.adc_noise",
                self.adc_noise, "it must be a finite number >= 0")

    def cycles(self) -> int:
        """Array cycles per input vector (bit-serial DAC)."""
        bits = self.input_bits if self.input_bits is not None else 32
        return -(-bits // self.dac_bits)


# Each verified scheme's own tolerance, in levels: what its finest pulse reaches at a moderate
# pulse count on the default device (cycle-to-cycle noise 3.7 % of range = 4.7 levels per full
# pulse), from `python experiments/tuning_tolerance.py` (events of -4..4 levels, carried over):
# * write-verify, full pulses only: +-1 level is hit with p ~ 0.17 per pulse, so +-1 costs 10.3
#   pulses per event and 1 % of cells still end far off under the 100-pulse cap (rms 1.9
#   levels); +-2 levels gives rms 1.4 levels, 99 % within 2, at 4.0 pulses per event.
# * gradual, fine pulses of 0.25 x the step and its noise (1.2 levels): +-1 level gives rms 0.8
#   levels, 99 % within 1, at 7.2 pulses per event and 0.54 x write-verify's V^2 G t energy.
# The finer window is what makes the default device learn: on CartPole with write-verify the
# tuning error (rms 1.5 levels, trigger 2.5 levels) was the size of a training round's update,
# and 4 of 8 seeds reached 475 within 100k steps; gradual at +-1 level, 7 of 8
# (experiments/cartpole_learning.toml; README "Learning on the default device").
SCHEME_TOLERANCE_LEVELS = {"write-verify": 2.0, "gradual": 1.0}


@dataclass(frozen=True)
class TuningConfig:
    """How a desired weight change becomes programming pulses.

    `scheme`: open-loop, write-verify or gradual (TIME's gradually-write, the default).
    `tolerance_levels`: verified schemes stop within this many levels of the target; None
    (the default) takes the scheme's own, `SCHEME_TOLERANCE_LEVELS` (see `tolerance`).
    `max_pulses`: cap per cell per update (verify schemes).
    `coarse_window_levels`: `gradual` verifies full pulses until within this many levels, then
    finishes with fine pulses of `fine_step_fraction` x the step (and x the cycle-to-cycle
    sigma, and x the V^2 G t energy: shorter pulses, ISPP-like) to the tolerance.
    `residual`: keep the sub-level remainder of each update in a digital accumulator.
    """

    scheme: str = "gradual"        # open-loop, write-verify or gradual
    tolerance_levels: float | None = None  # None: the scheme's own (SCHEME_TOLERANCE_LEVELS)
    max_pulses: int = 100          # cap per cell per update (verify schemes)
    coarse_window_levels: float = 4.0  # gradual: full pulses until within this many levels
    fine_step_fraction: float = 0.25   # gradual: fine pulse step / full pulse step
    residual: bool = True          # keep sub-level remainders digitally

    def __post_init__(self) -> None:
        check_types(self, "tuning")
        require(self.scheme in TUNING_SCHEMES, "tuning.scheme", self.scheme,
                f"choose one of {', '.join(TUNING_SCHEMES)}")
        require(self.tolerance_levels is None or self.tolerance_levels > 0,
                "tuning.tolerance_levels", self.tolerance_levels,
                "it must be > 0 levels, or none for the scheme's own")
        require(self.max_pulses >= 1, "tuning.max_pulses", self.max_pulses,
                "it must be an integer >= 1")
        require(self.coarse_window_levels > 0, "tuning.coarse_window_levels",
                self.coarse_window_levels, "it must be > 0 levels (below the tolerance: none)")
        require(0 < self.fine_step_fraction <= 1, "tuning.fine_step_fraction",
                self.fine_step_fraction, "it must be in (0, 1]")

    @property
    def tolerance(self) -> float:
        """The verify tolerance in levels: `tolerance_levels`, or the scheme's own (open-loop
        verifies nothing: 0)."""
        if self.tolerance_levels is not None:
            return self.tolerance_levels
        return SCHEME_TOLERANCE_LEVELS.get(self.scheme, 0.0)


@dataclass(frozen=True)
class HardwareConfig:
    """Everything the crossbar simulator needs; `preset` records where it came from."""

    preset: str = "default"
    device: DeviceConfig = field(default_factory=DeviceConfig)
    tile: TileConfig = field(default_factory=TileConfig)
    forward: ConverterConfig = field(default_factory=ConverterConfig)
    backward: ConverterConfig = field(default_factory=ConverterConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HardwareConfig":
        """Build from a nested dict (e.g. a config.toml table); unknown keys are errors."""
        unknown = set(data) - set(SECTIONS) - {"preset"}
        if unknown:
            raise ConfigError(f"unknown hardware section(s) {sorted(unknown)}; allowed: preset, "
                              f"{', '.join(SECTIONS)}")
        return cls(preset=data.get("preset", "custom"),
                   **{name: build(kind, name, data.get(name, {})) for name, kind in SECTIONS.items()})

    def with_overrides(self, overrides: Mapping[str, Any]) -> "HardwareConfig":
        """Apply dotted overrides such as {"device.c2c_sigma": 0.01, "tuning.scheme": "gradual"}."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if section not in SECTIONS:
                raise ConfigError(f"unknown setting {dotted!r}; allowed sections are run, agent, "
                                  f"{', '.join(SECTIONS)} (e.g. device.c2c_sigma=0.01)")
            if key not in data[section]:
                raise ConfigError(f"unknown setting {dotted!r}; allowed in [{section}]: "
                                  f"{', '.join(sorted(data[section]))}")
            data[section][key] = value
        if "device.table" in overrides and "device.table_sha256" not in overrides:
            data["device"]["table_sha256"] = ""  # a table given anew is hashed anew
        return HardwareConfig.from_dict(data)


# the [hardware] sections of a run's configuration, as `--set SECTION.KEY=VALUE` names them
SECTIONS = {"device": DeviceConfig, "tile": TileConfig, "forward": ConverterConfig,
            "backward": ConverterConfig, "tuning": TuningConfig}


def _ideal() -> HardwareConfig:
    # Equivalence bridge to float PyTorch: 2**24 levels (below float32 resolution of the
    # weights), linear exact pulses, no noise or faults, unquantised converters. Energy is still
    # counted.
    return HardwareConfig(
        preset="ideal",
        device=DeviceConfig(levels=2**24 + 1, response="linear", nonlinearity_up=0.0,
                            nonlinearity_down=0.0, c2c_sigma=0.0, endurance_pulses=math.inf),
        forward=ConverterConfig(input_bits=None, adc_bits=None, adc_bound=math.inf),
        backward=ConverterConfig(input_bits=None, adc_bits=None, adc_bound=math.inf),
        tuning=TuningConfig(scheme="open-loop", residual=False),
    )


PRESETS = {
    "default": HardwareConfig,
    # optimistic: 5-bit ADC (energy-optimal ISAAC-style sensing), endurance 1e12 (best reported,
    # Lanza et al. 2019).
    "optimistic": lambda: HardwareConfig(
        preset="optimistic", device=DeviceConfig(endurance_pulses=1e12),
        forward=ConverterConfig(adc_bits=5), backward=ConverterConfig(adc_bits=5)),
    # pessimistic: 40 levels and 5 % cycle-to-cycle sigma (NeuroSim-tabulated PCMO/AlOx-class
    # devices), read noise 1 % of range (assumption, stated as such).
    "pessimistic": lambda: HardwareConfig(
        preset="pessimistic", device=DeviceConfig(levels=40, c2c_sigma=0.05,
                                                  read_noise_sigma=0.01)),
    "ideal": _ideal,
}


def preset(name: str) -> HardwareConfig:
    """The named hardware preset; ConfigError lists the allowed names."""
    return lookup(PRESETS, name, "hardware preset")()
