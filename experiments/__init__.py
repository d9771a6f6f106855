"""Bundled experiment data, shipped as package data: per-env hyperparameters
(`hyperparams.toml`), per-dataset defaults of supervised learning (`sl_defaults.toml`) and
benchmark suites (`<name>.toml`, run with `python -m rlime.bench NAME`).
The scripts beside them (`throughput.py`, `tuning_tolerance.py`) are run from a checkout."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

HYPERPARAMS = "hyperparams.toml"
SL_DEFAULTS = "sl_defaults.toml"
DEFAULTS_FILES = (HYPERPARAMS, SL_DEFAULTS)  # the data files that are not suites


def bundled(name: str) -> Traversable:
    """The bundled data file `name` (e.g. "hyperparams.toml", "smoke.toml")."""
    return files(__name__) / name


def suite_names() -> list[str]:
    """Names of the bundled suites (file stems), sorted."""
    return sorted(p.name[:-5] for p in files(__name__).iterdir()
                  if p.name.endswith(".toml") and p.name not in DEFAULTS_FILES)
