"""How a run is labelled and named in a suite and its leaderboard (no torch, no RL code)."""

from __future__ import annotations

import re
from typing import Any

from rlime.common.settings import toml_value

NOT_APPLICABLE = "-"


def run_labels(backend: str, preset: str, mapping: str, scheme: str) -> tuple[str, str, str]:
    """(preset, mapping, scheme) labels of a run: the float backend has no hardware fields."""
    if backend == "float":
        return NOT_APPLICABLE, ("shared" if mapping == "shared" else NOT_APPLICABLE), NOT_APPLICABLE
    return preset, mapping, scheme


def format_value(value: Any) -> str:
    """A setting's or sweep point's value as labels show it: strings bare, the rest as TOML."""
    return value if isinstance(value, str) else toml_value(value)


def variant_label(factor: str, value: Any) -> str:
    """The label of a sweep variant, e.g. "device.levels=16" ("" for no factor: a baseline)."""
    return f"{factor}={format_value(value)}" if factor else ""


def run_name(env_name: str, backend: str, preset: str, mapping: str, scheme: str, seed: int,
             variant: str = "") -> str:
    """Deterministic run-directory name of a configuration and seed (labels as run_labels;
    `variant` as variant_label, before the seed: ``...-write-verify-device.levels=16-s1``)."""
    env = re.sub(r"[^A-Za-z0-9._-]+", "_", env_name)
    if backend == "float":
        parts = [env, "float"] + ([mapping] if mapping != NOT_APPLICABLE else [])
    else:
        parts = [env, backend, preset, mapping, scheme]
    if variant:
        parts.append(re.sub(r"[^A-Za-z0-9._=-]+", "_", variant).strip("_"))
    return "-".join(parts + [f"s{seed}"])
