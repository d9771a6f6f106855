"""The one configuration error type, the one validation helper and the one registry lookup.

Every typed configuration (hardware, energy, agent, run, suite) validates at its boundary and
raises `ConfigError` with a message that names the key, the value given and what is allowed.
"""

from __future__ import annotations

from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is not allowed; the message says which and what is allowed."""


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise ConfigError "`key` = value is not allowed: `allowed`" unless `ok`."""
    if not ok:
        raise ConfigError(f"{key} = {value!r} is not allowed: {allowed}")


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """registry[name]; ConfigError naming `what` and listing the allowed names otherwise."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown {what} {name!r}; choose one of "
                          f"{', '.join(registry)}") from None
