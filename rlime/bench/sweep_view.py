"""A leaderboard table's one-factor-at-a-time sweep: per factor, its curve and the figure.

A sweep suite (`rlime.bench.sweep`) runs a baseline and variants that each change one factor.
Here the table's rows are put back on the factors' axes: for every base configuration and
factor a `Curve` of (value, row) points -- the baseline at its own value on that axis, then the
variants of that factor. Numeric axes are in ascending order; others (tuning schemes) keep the
baseline first, then the variants as the suite lists them. `sweep_figure` draws one column per
factor and three rows: the score's IQM over seeds with its 95 % bootstrap interval (seeds as
dots), writes per episode and energy per episode (J; seed means, min-max bars), with the
default marked on each axis and every float row as a reference line. No torch.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from rlime.bench.labels import format_value

if TYPE_CHECKING:
    from rlime.bench.leaderboard import RunResult, Table

__all__ = ["Curve", "sweep_curves", "sweep_figure"]

#: (row and summary.json key, axis label) of the figure's cost rows
COST_PANELS = (("writes_per_episode", "writes per episode\n(programming pulses)"),
               ("energy_j_per_episode", "energy per episode"))
LOG_SPAN = 10.0     # a cost panel is drawn on a log axis when its values span this factor
LOG_X_SPAN = 8.0    # a positive numeric axis spanning this factor is drawn base-2 log (levels)


@dataclass(frozen=True)
class Curve:
    """One base configuration's points on one factor's axis (the baseline's included)."""

    base: str                   # the configuration label of the baseline
    factor: str
    default: Any                # the baseline's value on this axis
    points: tuple[tuple[Any, dict[str, Any], tuple["RunResult", ...]], ...]  # (value, row, runs)


def is_numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def sweep_curves(table: "Table") -> list[Curve]:
    """The table's curves, factor by factor as the suite lists them; [] outside sweeps."""
    rows = {r["config"]: r for r in table.rows}
    bases: dict[str, list[tuple["RunResult", ...]]] = {}
    for runs in table.runs.values():
        if runs[0].axes:
            bases.setdefault(runs[0].base, []).append(tuple(runs))
    factors = list(dict.fromkeys(f for groups in bases.values() for f in groups[0][0].axes))
    curves = []
    for factor in factors:
        for base, groups in bases.items():
            if factor not in groups[0][0].axes:
                continue
            # the baseline's value: on every run but this factor's variants (the baseline's own)
            default = next((g[0].axes[factor] for g in groups if g[0].factor != factor), None)
            points = [(default, rows[g[0].config], g) for g in groups if not g[0].factor]
            variants = [(g[0].axes[factor], rows[g[0].config], g) for g in groups
                        if g[0].factor == factor]
            if is_numeric([v for v, _, _ in points + variants]):
                points = sorted(points + variants, key=lambda p: p[0])
            else:
                points += variants
            curves.append(Curve(base, factor, default, tuple(points)))
    return curves


def sweep_figure(plt, table: "Table", colors: dict[str, Any]):
    """The sweep figure of a table (None outside sweeps): columns = factors, rows = score IQM,
    writes per episode, energy per episode; float rows as horizontal reference lines."""
    from matplotlib.ticker import EngFormatter

    curves = sweep_curves(table)
    if not curves:
        return None
    factors = list(dict.fromkeys(c.factor for c in curves))
    references = [r for r in table.rows if r["backend"] == "float" and r["iqm"] is not None]
    fig, grid = plt.subplots(3, len(factors), figsize=(0.8 + 3.2 * len(factors), 8.6),
                             squeeze=False, constrained_layout=True)
    for col, factor in enumerate(factors):
        mine = [c for c in curves if c.factor == factor]
        values = list(dict.fromkeys(v for c in mine for v, _, _ in c.points))
        numeric = is_numeric(values)
        for curve in mine:
            color = colors.get(curve.base, "C0")
            xs = [v if numeric else values.index(v) for v, _, _ in curve.points]
            _score_panel(grid[0][col], curve, xs, color)
            for ax, (key, _) in zip(grid[1:, col], COST_PANELS):
                _cost_panel(ax, curve, xs, key, color)
            if curve.default is not None:
                default = curve.default if numeric else values.index(curve.default)
                for ax in grid[:, col]:
                    ax.axvline(default, color=color, ls=":", lw=1)
        for ref in references:
            ax = grid[0][col]
            ax.axhline(ref["iqm"], color=colors.get(ref["config"], "0.3"), ls="--", lw=1.2,
                       label=f"{ref['config']} reference: IQM, 95 % CI band")
            ax.axhspan(ref["iqm_ci_low"], ref["iqm_ci_high"],
                       color=colors.get(ref["config"], "0.3"), alpha=0.1)
        defaults = ", ".join(format_value(c.default) for c in mine)
        grid[0][col].set_title(f"{factor}\n(default {defaults}: dotted, bold)", fontsize=9)
        for ax in grid[:, col]:
            _x_axis(ax, values, numeric, [c.default for c in mine])
            ax.grid(True, alpha=0.3)
        grid[-1][col].yaxis.set_major_formatter(EngFormatter(unit="J"))
    grid[0][0].set_ylabel("score: IQM over seeds\n(last 100 training returns)")
    for ax, (_, label) in zip(grid[1:, 0], COST_PANELS):
        ax.set_ylabel(label)
    grid[0][0].legend(fontsize=7, loc="best")
    n = max(len(runs) for c in curves for _, _, runs in c.points)
    width = int(13 * fig.get_figwidth())  # characters a title line holds at 10 pt
    fig.suptitle("\n".join(textwrap.fill(part, width) for part in (
        f"{table.key}: one factor at a time from the default (seeds per point: up to {n})",
        "score bars: 95 % bootstrap CI of the IQM, dots: seeds; costs: seed mean, bars "
        "min-max")), fontsize=10)
    return fig


def _score_panel(ax, curve: Curve, xs: list[float], color) -> None:
    scored = [(x, row) for x, (_, row, _) in zip(xs, curve.points) if row["iqm"] is not None]
    if not scored:
        return
    x, rows = zip(*scored)
    y = [r["iqm"] for r in rows]
    err = [[r["iqm"] - r["iqm_ci_low"] for r in rows], [r["iqm_ci_high"] - r["iqm"] for r in rows]]
    ax.errorbar(x, y, yerr=err, fmt="o-", ms=5, capsize=3, color=color, label=curve.base)
    for xi, r in scored:
        seeds = [s for s in r["final_scores"] if s is not None]
        ax.plot([xi] * len(seeds), seeds, ".", color=color, alpha=0.4, ms=4)


def _cost_panel(ax, curve: Curve, xs: list[float], key: str, color) -> None:
    points = []
    for x, (_, row, runs) in zip(xs, curve.points):
        per_seed = [r.summary.get(key) for r in runs if r.summary.get(key) is not None]
        if row[key] is not None and per_seed:
            points.append((x, row[key], min(per_seed), max(per_seed)))
    if not points:
        return
    x, y, low, high = zip(*points)
    ax.errorbar(x, y, yerr=[[a - b for a, b in zip(y, low)], [b - a for a, b in zip(y, high)]],
                fmt="o-", ms=5, capsize=3, color=color)
    if min(low) > 0 and max(high) / min(low) >= LOG_SPAN:
        ax.set_yscale("log")


def _x_axis(ax, values: list[Any], numeric: bool, defaults: list[Any]) -> None:
    """Ticks at the points' values (base-2 log for a wide positive range), or categories; the
    defaults' in bold."""
    if numeric and min(values) > 0 and max(values) / min(values) >= LOG_X_SPAN:
        ax.set_xscale("log", base=2)
    positions = values if numeric else range(len(values))
    ax.set_xticks(list(positions), [format_value(v) for v in values], rotation=30, ha="right",
                  fontsize=8)
    for value, label in zip(values, ax.get_xticklabels()):
        if value in defaults:
            label.set_fontweight("bold")
    ax.minorticks_off()
