"""Measured devices: a cell described by its own pulse-response data (`device.response = "measured"`).

A device researcher measures, per direction, the conductance after each of N identical pulses
(a potentiation curve from low G, a depression curve from high G), often over several cycles.
`load` reads such a table, validates it and averages its cycles pulse by pulse; `piecewise`
turns it into the law `PulseModel` walks, per direction and on the nominal curve
p = (G - G_lo) / (G_hi - G_lo) (G_lo, G_hi: the lowest and highest mean conductance of the table):

* the mean step of one pulse as a function of the present conductance: at the k-th mean
  point G_k it is G_{k+1} - G_k, linear in G between the points and held at the end values
  beyond them (aihwkit's PiecewiseStepDevice and CrossSim's lookup-table devices interpolate
  a measured step likewise). Iterated from any point this law walks the averaged curve: n
  pulses move a cell from pulse position x to x + n, x interpolated linearly between the
  measured points (`Piecewise` x0, x1 and its inverse `point`);
* the cycle-to-cycle sigma of that step, interpolated the same way.

File format: CSV -- what instrument software and spreadsheets export, one reading per row,
diffable, and with a line number to name in every error (TOML would hold the data as arrays
inside tables, neither exportable nor pointable). `#` starts a comment line; blank lines are
skipped; the first other line is the header:

    direction,cycle,pulse,conductance_siemens,step_sigma_siemens
    potentiation,1,0,1.0e-06,3.33e-07
    potentiation,1,1,1.07e-06,3.33e-07
    ...
    depression,1,0,1.0e-05,3.33e-07

* ``direction``: ``potentiation`` (SET) or ``depression`` (RESET); both sections are required.
* ``cycle`` (optional column, default 1): an integer naming one sweep; the cycles of a direction
  must have the same pulses, and are averaged pulse by pulse.
* ``pulse``: pulses applied before the reading, 0, 1, ..., N (at least MIN_POINTS readings).
* ``conductance_siemens``: G in siemens, > 0 and <= MAX_SIEMENS (a larger value is almost
  surely microsiemens). The averaged curve must rise with every pulse (potentiation) or fall
  with every pulse (depression).
* ``step_sigma_siemens`` (optional column): the cycle-to-cycle standard deviation (siemens) of
  the conductance change of the next pulse from this reading; empty on a curve's last row.
  Cycles are combined as the root mean square. Without the column, the standard deviation of
  each pulse's step across the cycles is used (two cycles or more); with one cycle and no
  column the device has no cycle-to-cycle noise.

The device's Gmin and Gmax are the table's lowest and highest mean conductance; its levels are
the potentiation pulses + 1 (as Pmax = levels - 1 pulses sweep the nonlinear model's range).
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rlime.common.errors import ConfigError

DIRECTIONS = ("potentiation", "depression")
COLUMNS = ("direction", "cycle", "pulse", "conductance_siemens", "step_sigma_siemens")
REQUIRED = ("direction", "pulse", "conductance_siemens")
MIN_POINTS = 3      # readings per curve (pulse 0 and two pulses): a step that can vary with G
MAX_SIEMENS = 1e-2  # 100 ohm; RRAM cells stay well below 1e-3 S, microsiemens values far above
BUNDLED = Path(__file__).parent / "data" / "default_preset.csv"  # the default preset, tabulated


@dataclass(frozen=True)
class Curve:
    """One direction averaged over its cycles: `siemens[k]` the mean conductance after k pulses
    (k = 0..N), `step_sigma[k]` the std of the step of pulse k + 1 (siemens, k = 0..N-1)."""

    siemens: tuple[float, ...]
    step_sigma: tuple[float, ...]
    cycles: int


@dataclass(frozen=True)
class MeasuredTable:
    """A validated table file: its two averaged curves, its path and its sha256."""

    path: str
    sha256: str
    potentiation: Curve
    depression: Curve

    @property
    def curves(self) -> tuple[Curve, Curve]:
        return self.potentiation, self.depression

    @property
    def g_min_siemens(self) -> float:
        return min(min(c.siemens) for c in self.curves)

    @property
    def g_max_siemens(self) -> float:
        return max(max(c.siemens) for c in self.curves)

    @property
    def levels(self) -> int:
        return len(self.potentiation.siemens)


def load(path: str | Path, recorded_sha256: str = "") -> MeasuredTable:
    """The table at `path`, validated and averaged; ConfigError naming the file, the row and
    what is allowed if it is not a valid table, or if its sha256 differs from a recorded one."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as err:
        raise ConfigError(f"device.table = {str(path)!r} cannot be read ({err.strerror}); give "
                          f"the path of a measured-device CSV file") from None
    digest = hashlib.sha256(data).hexdigest()
    if recorded_sha256 and digest != recorded_sha256:
        raise ConfigError(f"device.table {file}: the file has changed since this configuration "
                          f"was recorded (sha256 {recorded_sha256[:16]}... recorded, "
                          f"{digest[:16]}... now); restore the file the run was made with, or "
                          f"start a new run with the new file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{file} is not a UTF-8 text file; a measured-device table is "
                          f"CSV (rlime.hw.measured)") from None
    potentiation, depression = parse(text, str(file))
    return MeasuredTable(str(file), digest, potentiation, depression)


def _fail(name: str, where: str, what: str) -> ConfigError:
    return ConfigError(f"{name}, {where}: {what}")


def _number(name: str, where: str, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _fail(name, where, f"{column} = {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _fail(name, where, f"{column} = {text!r} is not allowed: it must be finite")
    return value


def _integer(name: str, where: str, column: str, text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _fail(name, where, f"{column} = {text!r} is not allowed: it must be an integer "
                                 f">= {least}") from None
    if value < least:
        raise _fail(name, where, f"{column} = {value} is not allowed: it must be an integer "
                                 f">= {least}")
    return value


def _siemens(name: str, where: str, column: str, text: str, zero_ok: bool) -> float:
    value = _number(name, where, column, text)
    if value < 0 or (value == 0 and not zero_ok):
        raise _fail(name, where, f"{column} = {text} is not allowed: it must be "
                                 f"{'>= 0' if zero_ok else '> 0'} siemens")
    if value > MAX_SIEMENS:
        raise _fail(name, where, f"{column} = {text} is not allowed: values are siemens and "
                                 f"must be <= {MAX_SIEMENS:g} S; {text} looks like microsiemens "
                                 f"(write 1e-05 for 10 uS)")
    return value


def parse(text: str, name: str) -> tuple[Curve, Curve]:
    """(potentiation, depression) of a table's text; `name` (the file) is used in errors."""
    header: list[str] | None = None
    # (direction, cycle) -> {pulse: (G, step sigma or None, line)}
    readings: dict[tuple[str, int], dict[int, tuple[float, float | None, int]]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        row = [cell.strip() for cell in next(csv.reader([line]))]
        if header is None:
            header = _header(name, number, row)
            continue
        where = f"line {number}"
        if len(row) != len(header):
            raise _fail(name, where, f"{len(row)} values for the {len(header)} columns "
                                     f"{','.join(header)}")
        cells = dict(zip(header, row))
        direction = cells["direction"].lower()
        if direction not in DIRECTIONS:
            raise _fail(name, where, f"direction = {cells['direction']!r} is not allowed: "
                                     f"choose {' or '.join(DIRECTIONS)}")
        cycle = _integer(name, where, "cycle", cells.get("cycle", "1"), 1)
        pulse = _integer(name, where, "pulse", cells["pulse"], 0)
        g = _siemens(name, where, "conductance_siemens", cells["conductance_siemens"], False)
        sigma_text = cells.get("step_sigma_siemens", "")
        sigma = (_siemens(name, where, "step_sigma_siemens", sigma_text, True)
                 if sigma_text else None)
        curve = readings.setdefault((direction, cycle), {})
        if pulse in curve:
            raise _fail(name, where, f"{direction} cycle {cycle} has pulse {pulse} already "
                                     f"(line {curve[pulse][2]}); each pulse is read once a cycle")
        curve[pulse] = (g, sigma, number)
    if header is None:
        raise ConfigError(f"{name} holds no header and no readings; a measured-device table "
                          f"starts with the header {','.join(COLUMNS)}")
    curves = {d: _average(name, d, {c: r for (dd, c), r in readings.items() if dd == d},
                          "step_sigma_siemens" in header) for d in DIRECTIONS}
    return curves["potentiation"], curves["depression"]


def _header(name: str, number: int, row: list[str]) -> list[str]:
    where = f"line {number} (the header)"
    columns = [cell.lower() for cell in row]
    for column in columns:
        if column not in COLUMNS:
            raise _fail(name, where, f"column {column!r} is not allowed: the columns are "
                                     f"{', '.join(COLUMNS)}")
        if columns.count(column) > 1:
            raise _fail(name, where, f"column {column!r} is given twice")
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise _fail(name, where, f"the required column(s) {', '.join(missing)} are missing; "
                                 f"the header is {','.join(COLUMNS)} (cycle and "
                                 f"step_sigma_siemens optional)")
    return columns


def _average(name: str, direction: str, cycles: dict[int, dict], has_sigma: bool) -> Curve:
    """The curve of one direction: its cycles checked and averaged pulse by pulse."""
    if not cycles:
        raise ConfigError(f"{name}: the {direction} section is missing (no row has direction = "
                          f"{direction}); a table needs a {' and a '.join(DIRECTIONS)} curve")
    first = min(cycles)
    for cycle, curve in sorted(cycles.items()):
        where = f"{direction} cycle {cycle}"
        if len(curve) < MIN_POINTS:
            raise _fail(name, where, f"{len(curve)} reading(s) are too few: a curve needs at "
                                     f"least {MIN_POINTS} (pulse 0 and {MIN_POINTS - 1} pulses)")
        gaps = sorted(set(range(max(curve) + 1)) - set(curve))
        if gaps:
            raise _fail(name, where, f"pulse {gaps[0]} is missing; the pulses of a curve run "
                                     f"0, 1, ..., N")
        if len(curve) != len(cycles[first]):
            raise _fail(name, where, f"{len(curve)} readings, but {direction} cycle {first} "
                                     f"has {len(cycles[first])}; every cycle of a direction "
                                     f"needs the same pulses")
        if has_sigma:
            blank = [curve[k][2] for k in range(len(curve) - 1) if curve[k][1] is None]
            if blank:
                raise _fail(name, f"line {blank[0]}", "step_sigma_siemens is empty; give it on "
                                                      "every row but a curve's last")
    g = np.array([[curve[k][0] for k in sorted(curve)] for _, curve in sorted(cycles.items())])
    mean = g.mean(axis=0)
    sign = 1.0 if direction == "potentiation" else -1.0
    steps = np.diff(mean) * sign
    if np.any(steps <= 0):
        k = int(np.argmax(steps <= 0))
        averaged = f" (averaged over {len(cycles)} cycles)" if len(cycles) > 1 else ""
        raise _fail(name, f"{direction} pulse {k} -> {k + 1}",
                    f"the curve{averaged} goes from {mean[k]:.6g} S to {mean[k + 1]:.6g} S: a "
                    f"{direction} curve must {'rise' if sign > 0 else 'fall'} with every pulse "
                    f"(trim it where it saturates)")
    if has_sigma:
        given = np.array([[curve[k][1] for k in range(len(curve) - 1)]
                          for _, curve in sorted(cycles.items())])
        sigma = np.sqrt((given**2).mean(axis=0))
    elif len(cycles) > 1:
        sigma = np.diff(g, axis=1).std(axis=0, ddof=1)
    else:
        sigma = np.zeros(len(mean) - 1)
    return Curve(tuple(float(x) for x in mean), tuple(float(x) for x in sigma), len(cycles))


def format_table(potentiation: Curve, depression: Curve, comment: str = "") -> str:
    """A table file's text (one cycle, with step_sigma_siemens) holding the two curves;
    `comment` lines go first, each prefixed with '# '. Values are written to full precision."""
    lines = [f"# {line}" for line in comment.splitlines()]
    lines.append("direction,cycle,pulse,conductance_siemens,step_sigma_siemens")
    for direction, curve in zip(DIRECTIONS, (potentiation, depression)):
        for k, g in enumerate(curve.siemens):
            sigma = repr(curve.step_sigma[k]) if k < len(curve.step_sigma) else ""
            lines.append(f"{direction},1,{k},{g!r},{sigma}")
    return "\n".join(lines) + "\n"


def _linear(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """ys at x, linear between the points (xs ascending) and along the end segments beyond."""
    i = np.clip(np.searchsorted(xs, x), 1, len(xs) - 1)
    return ys[i - 1] + (x - xs[i - 1]) * (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1])


def _segments(edges: np.ndarray, values: np.ndarray, extend: bool) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with value = a[j] + b[j] x on segment j = searchsorted(edges, x, right) of the
    piecewise-linear function through (edges, values); segments 0 and len(edges), beyond the
    edges, hold the end values (or, `extend`, continue the end slopes)."""
    slope = np.diff(values) / np.diff(edges)
    outer = (slope[0], slope[-1]) if extend else (0.0, 0.0)
    b = np.concatenate([[outer[0]], slope, [outer[1]]])
    a = np.concatenate([[values[0] - outer[0] * edges[0]], values[:-1] - slope * edges[:-1],
                        [values[-1] - outer[1] * edges[-1]]])
    return a, b


class Piecewise(NamedTuple):
    """A table's law on the nominal curve p = (G - Gmin) / (Gmax - Gmin), as affine segments.

    Functions of p share one set of edges, the measured points of both curves: on segment
    j = searchsorted(edges, p, right) direction d (0 SET, 1 RESET) has the one-pulse step
    k0[d, j] + k1[d, j] p (fraction of the range), its cycle-to-cycle sigma
    sigma0[d, j] + sigma1[d, j] p, and the pulse position x0[d, j] + x1[d, j] p on its averaged
    curve; steps and sigmas are interpolated linearly between a curve's own points and held at
    its end values beyond them, positions continue along the curve's end segments. The inverse,
    p at position x, is `point[d]` = (edges 0..N, a, b): p = a[i] + b[i] x on segment
    i = searchsorted(0..N, x, right). numpy float64 arrays of shape (E,), (2, E + 1), ...
    """

    edges: np.ndarray
    k0: np.ndarray
    k1: np.ndarray
    sigma0: np.ndarray
    sigma1: np.ndarray
    x0: np.ndarray
    x1: np.ndarray
    point: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]


def piecewise(table: MeasuredTable) -> Piecewise:
    """The law `PulseModel` walks for a table (module docstring), as `Piecewise` segments."""
    g_min, span = table.g_min_siemens, table.g_max_siemens - table.g_min_siemens
    points = [(np.array(c.siemens) - g_min) / span for c in table.curves]
    edges = np.unique(np.concatenate(points))
    rows: dict[str, list[np.ndarray]] = {name: [] for name in Piecewise._fields[1:7]}
    inverse = []
    for p, curve in zip(points, table.curves):
        knots = np.argsort(p[:-1])  # the points a step is measured from, ascending
        at, sigma = p[:-1][knots], np.array(curve.step_sigma) / span
        ascending = np.argsort(p)
        for (a, b), value, extend in (
                (("k0", "k1"), np.interp(edges, at, np.diff(p)[knots]), False),
                (("sigma0", "sigma1"), np.interp(edges, at, sigma[knots]), False),
                (("x0", "x1"), _linear(edges, p[ascending], ascending * 1.0), True)):
            first, second = _segments(edges, value, extend)
            rows[a].append(first)
            rows[b].append(second)
        pulses = np.arange(len(p), dtype=np.float64)
        inverse.append((pulses, *_segments(pulses, p, True)))
    return Piecewise(edges, *(np.stack(rows[name]) for name in Piecewise._fields[1:7]),
                     tuple(inverse))
