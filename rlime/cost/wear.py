"""Wear: how fast training writes cells, and how long the most-written cell lasts.

`wear_report(pulse_counts, episodes, endurance)` takes the per-cell pulse counters (one tensor or
array of any shape, or a list of them, e.g. `rlime.hw.device.CellSet.pulses` of every array:
each is reduced in place, never concatenated or copied) after `episodes` episodes and
projects, at the rate seen so far, how many episodes the most-written cell survives before it
reaches its endurance (Lanza et al. 2019: 1e9 pulses required, 1e12 best reported).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

Counters = torch.Tensor | np.ndarray  # pulses per cell, any shape


def wear_report(pulse_counts: Counters | Sequence[Counters], episodes: int,
                endurance: float, unit: str = "episode") -> dict[str, float | int]:
    """Per-cell write statistics and endurance projection.

    Returns ``cells``; ``max_pulses`` and ``mean_pulses`` per cell so far; ``max_pulses_per_
    episode`` and ``mean_pulses_per_episode`` (per cell); ``episodes_to_endurance``: episodes
    from a fresh array until the most-written cell reaches `endurance` at its rate so far
    (endurance / max_pulses_per_episode; inf if no cell was written); and
    ``episodes_remaining``: the same counted from now ((endurance - max_pulses) /
    max_pulses_per_episode, 0 if already reached). `unit` names what `episodes` counts in the
    keys ("epoch" for supervised training: ``epochs_to_endurance``, ...).
    """
    parts = ([pulse_counts] if isinstance(pulse_counts, (torch.Tensor, np.ndarray))
             else list(pulse_counts))
    tallies = [_tally(torch.as_tensor(part)) for part in parts]
    cells = sum(n for n, _, _ in tallies)
    if cells == 0:
        raise ValueError("wear_report needs at least one cell's pulse counter")
    if not (isinstance(episodes, (int, np.integer)) and episodes >= 1):
        raise ValueError(f"episodes = {episodes!r} must be an integer >= 1")
    if not (endurance > 0):
        raise ValueError(f"endurance = {endurance!r} must be > 0 pulses (inf allowed)")
    max_pulses = max(most for n, most, _ in tallies if n)
    mean_pulses = sum(total for _, _, total in tallies) / cells
    max_rate = max_pulses / episodes
    if max_rate == 0:
        lifetime = remaining = math.inf
    else:
        lifetime = endurance / max_rate
        remaining = max(endurance - max_pulses, 0.0) / max_rate
    return {
        "cells": cells,
        f"{unit}s": int(episodes),
        "endurance": float(endurance),
        "max_pulses": max_pulses,
        "mean_pulses": mean_pulses,
        f"max_pulses_per_{unit}": max_rate,
        f"mean_pulses_per_{unit}": mean_pulses / episodes,
        f"{unit}s_to_endurance": lifetime,
        f"{unit}s_remaining": remaining,
    }


def _tally(counts: torch.Tensor) -> tuple[int, float, float]:
    """(cells, most pulses, total pulses) of one counter tensor; integer counters are summed
    exactly."""
    if counts.numel() == 0:
        return 0, 0.0, 0.0
    if (counts.is_floating_point() and not bool(torch.isfinite(counts).all())) \
            or float(counts.min()) < 0:
        raise ValueError("pulse counters must be finite and >= 0")
    total = counts.sum(dtype=torch.float64 if counts.is_floating_point() else torch.int64)
    return counts.numel(), float(counts.max()), float(total)
