"""Wall-clock time per phase of a training step (env, acting, replay, forward/backward, tuning,
...), for the throughput report. On CUDA the device is synchronised at phase edges only when
asked (`synchronize=True`), since that costs speed."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from typing import Iterator

import torch


class PhaseTimer:
    def __init__(self, device: torch.device | str = "cpu", synchronize: bool = False) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._sync = synchronize and torch.device(device).type == "cuda"
        self._open: str | None = None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as `name`; a block inside another phase is not counted twice."""
        if self._open is not None:
            yield
            return
        if self._sync:
            torch.cuda.synchronize()
        self._open, start = name, time.perf_counter()
        try:
            yield
        finally:
            if self._sync:
                torch.cuda.synchronize()
            self.seconds[name] += time.perf_counter() - start
            self._open = None

    def shares(self) -> dict[str, float]:
        """Fraction of the timed total per phase."""
        total = sum(self.seconds.values()) or 1.0
        return {k: v / total for k, v in sorted(self.seconds.items(), key=lambda kv: -kv[1])}
