"""A suite's one-factor-at-a-time sweep: the ``[sweep]`` table -> variants of each baseline run.

Each key of ``[sweep]`` is a *factor* and its list the factor's *points*; a point is a variant
of a suite run that changes that one factor and nothing else::

    [sweep]
    "device.levels" = [16, 32, 64]                # a setting factor: the setting's values
    "tuning.scheme" = ["open-loop", "gradual"]
    adc_bits = [                                  # a named factor: each point a table of
        { "forward.adc_bits" = 6, "backward.adc_bits" = 6 },     # settings changed together,
        { "forward.adc_bits" = 10, "backward.adc_bits" = 10 }]   # placed on its axis by
    nonlinearity = [                                             # `value` (default: the one
        { value = 0, "device.nonlinearity_up" = 0.0, "device.nonlinearity_down" = 0.0 },
        { value = 2, "device.nonlinearity_up" = 0.08, "device.nonlinearity_down" = -1.26 }]

A point's *value* is its place on the factor's axis (a number or a string): a setting factor's
value itself; for a table, its ``value`` key, else the one value all its settings share. Every
point of a named factor sets the same settings.

The *baseline* (no factor changed) is the suite run itself; it runs once and belongs to every
factor's curve. A point whose resolved configuration equals the baseline's (a value equal to the
default) is no variant: it is folded into the baseline, whose value on that axis it gives.
Otherwise the baseline's value on a factor's axis is the baseline's own value of the factor's
settings when they agree (128 for ``device.levels``; 8 for ``adc_bits`` above), else
``"default"``. `Sweep.expand` does this for one baseline; the suite (`rlime.bench.suite`) resolves
the configurations, names the runs and reports refused values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from rlime.bench.labels import variant_label
from rlime.common.errors import ConfigError
from rlime.harness.run_config import RunConfig, describe

__all__ = ["Point", "Factor", "Sweep", "parse_sweep"]

VALUE_KEY = "value"
DEFAULT_VALUE = "default"   # the baseline's place on an axis whose settings it sets differently
SETTINGS_EXAMPLE = '"device.levels" = [16, 32, 64]'
TABLE_EXAMPLE = 'adc_bits = [{ "forward.adc_bits" = 6, "backward.adc_bits" = 6 }, ...]'


@dataclass(frozen=True)
class Point:
    """One variant: the factor it changes, its value on that factor's axis, and its settings."""

    factor: str
    value: Any
    settings: tuple[tuple[str, Any], ...]

    @property
    def label(self) -> str:
        return variant_label(self.factor, self.value)


@dataclass(frozen=True)
class Factor:
    name: str
    keys: tuple[str, ...]      # the settings its points set
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Sweep:
    factors: tuple[Factor, ...] = ()

    def expand(self, baseline: RunConfig, resolve_point: Callable[[Point], RunConfig]
               ) -> tuple[dict[str, Any], list[tuple[Point, RunConfig]]]:
        """(the baseline's value on each factor's axis, the points that differ from it with
        their configurations) for one baseline; `resolve_point` gives a point's configuration."""
        values = {key: value for key, value, _ in describe(baseline)}
        axes: dict[str, Any] = {}
        variants: list[tuple[Point, RunConfig]] = []
        for factor in self.factors:
            resolved = [(point, resolve_point(point)) for point in factor.points]
            own = {_plain(values[key]) for key in factor.keys}
            axes[factor.name] = own.pop() if len(own) == 1 else DEFAULT_VALUE
            for point, config in resolved:
                if config == baseline:
                    axes[factor.name] = point.value
                else:
                    variants.append((point, config))
        return axes, variants


def _plain(value: Any) -> Any:
    """A configuration's value as a suite writes it (tuples as lists), hashable."""
    return tuple(value) if isinstance(value, list) else value


def parse_sweep(table: Mapping[str, Any], owned: Mapping[str, str]) -> Sweep:
    """Validate a ``[sweep]`` table; ConfigError "sweep.<factor>: problem; allowed: ...".

    `owned`: settings a sweep may not vary, each with the place that sets it."""
    return Sweep(tuple(_factor(name, points, owned) for name, points in table.items()))


def _fail(factor: str, problem: str, allowed: str) -> ConfigError:
    key = factor if re.fullmatch(r"[A-Za-z0-9_-]+", factor) else f'"{factor}"'
    return ConfigError(f"sweep.{key}: {problem}; allowed: {allowed}")


def _is_setting(key: str) -> bool:
    section, dot, name = key.partition(".")
    return bool(dot and section and name)


def _check_setting(factor: str, key: str, owned: Mapping[str, str]) -> None:
    if key in owned:
        raise _fail(factor, f"{key} is set by {owned[key]}, not by a sweep",
                    f"put it in {owned[key]}")


def _factor(name: str, points: Any, owned: Mapping[str, str]) -> Factor:
    setting = _is_setting(name)
    if not setting and not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise _fail(name, "not a setting (section.key) or a factor name",
                    f"a setting, {SETTINGS_EXAMPLE}, or a name of letters, digits, '_' and '-' "
                    f"whose points are tables of settings, {TABLE_EXAMPLE}")
    allowed = (f"a non-empty list of distinct values of {name}, e.g. {SETTINGS_EXAMPLE}" if setting
               else f"a non-empty list of tables of settings, {TABLE_EXAMPLE}")
    if not isinstance(points, list) or not points:
        raise _fail(name, f"{points!r} is not a non-empty list", allowed)
    if setting:
        _check_setting(name, name, owned)
        for value in points:
            if isinstance(value, dict):
                raise _fail(name, f"{value!r} is a table; a setting's points are its values",
                            f"{allowed} (tables of settings belong to a named factor, "
                            f"{TABLE_EXAMPLE})")
        parsed = [Point(name, value, ((name, value),)) for value in points]
    else:
        parsed = [_table_point(name, value, owned, allowed) for value in points]
    keys = tuple(key for key, _ in parsed[0].settings)
    for point in parsed:
        if {key for key, _ in point.settings} != set(keys):
            raise _fail(name, f"the points set different settings ({', '.join(keys)} and "
                        f"{', '.join(k for k, _ in point.settings)})",
                        "points that all set the same settings")
    for i, point in enumerate(parsed):
        for other in parsed[:i]:
            if dict(other.settings) == dict(point.settings) or other.label == point.label:
                raise _fail(name, f"{point.value!r} is given twice", allowed)
    return Factor(name, keys, tuple(parsed))


def _table_point(factor: str, table: Any, owned: Mapping[str, str], allowed: str) -> Point:
    if not isinstance(table, dict):
        raise _fail(factor, f"{table!r} is not a table (a named factor's points are tables of "
                    f"settings)", allowed)
    settings = {k: v for k, v in table.items() if k != VALUE_KEY}
    if not settings:
        raise _fail(factor, f"{table!r} sets no setting", allowed)
    for key in settings:
        if not _is_setting(key):
            raise _fail(factor, f"{key!r} in {table!r} is not of the form section.key",
                        f"{VALUE_KEY} and settings \"section.key\" = value in each point")
        _check_setting(factor, key, owned)
    if VALUE_KEY in table:
        value = table[VALUE_KEY]
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _fail(factor, f"{VALUE_KEY} = {value!r} is not a number or a string",
                        f"{VALUE_KEY} = a number or a string: the point's place on the axis")
    else:
        shared = {_plain(v) for v in settings.values()}
        if len(shared) != 1:
            raise _fail(factor, f"{table!r} has no {VALUE_KEY} and its settings differ",
                        f"{VALUE_KEY} = a number or a string in the table: the point's place "
                        f"on the factor's axis")
        value = next(iter(settings.values()))
    return Point(factor, value, tuple(settings.items()))
