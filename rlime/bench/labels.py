"""How a run is labelled and named in a suite and its leaderboard (no torch, no RL code)."""

from __future__ import annotations

import re

NOT_APPLICABLE = "-"


def run_labels(backend: str, preset: str, mapping: str, scheme: str) -> tuple[str, str, str]:
    """(preset, mapping, scheme) labels of a run: the float backend has no hardware fields."""
    if backend == "float":
        return NOT_APPLICABLE, ("shared" if mapping == "shared" else NOT_APPLICABLE), NOT_APPLICABLE
    return preset, mapping, scheme


def run_name(env_name: str, backend: str, preset: str, mapping: str, scheme: str, seed: int) -> str:
    """Deterministic run-directory name of a configuration and seed (labels as run_labels)."""
    env = re.sub(r"[^A-Za-z0-9._-]+", "_", env_name)
    if backend == "float":
        parts = [env, "float"] + ([mapping] if mapping != NOT_APPLICABLE else [])
    else:
        parts = [env, backend, preset, mapping, scheme]
    return "-".join(parts + [f"s{seed}"])
