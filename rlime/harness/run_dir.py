"""The run directory: the files a run leaves and how they are written safely.

    config.toml        resolved configuration (rlime.harness.run_config)
    episodes.jsonl     one JSON object per finished training episode
    evals.jsonl        one JSON object per evaluation round
    summary.json       totals, scores, baselines and ratios (rewritten at each checkpoint)
    events.out.tfevents.*   TensorBoard
    checkpoint.pt      latest checkpoint, from step 0 on (written to a temporary file, fsynced,
                       renamed)
    partial-N/         what a run that stopped before its first checkpoint had written
                       (set aside when --resume starts it over)
    .lock              held (flock) by the process using the directory

Appends are line-buffered; on resume the JSONL files are cut back to the records the
checkpoint knew, so no record is lost or duplicated.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterable

import torch

from rlime.common.files import JsonlError, atomic_write, atomic_writer, json_safe, read_jsonl


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked; the message says why and what to do."""


class RunDirectory:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_file = None

    @property
    def config_file(self) -> Path:
        return self.path / "config.toml"

    @property
    def checkpoint_file(self) -> Path:
        return self.path / "checkpoint.pt"

    def claim(self) -> None:
        """Create the directory and take its lock; refuse if another live process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise RunDirError(f"run directory {self.path} is in use by process {owner}; wait for "
                              f"it to finish or stop it, or choose another --run-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def release(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def append(self, name: str, records: Iterable[dict[str, Any]]) -> None:
        with open(self.path / name, "a") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        try:
            return read_jsonl(self.path / name)
        except JsonlError as err:
            raise RunDirError(str(err)) from None

    def truncate_jsonl(self, name: str, keep: int) -> None:
        """Keep the first `keep` records of a JSONL file (drop what a checkpoint did not see)."""
        file = self.path / name
        if not file.exists():
            return
        lines = file.read_text().splitlines(keepends=True)
        if len(lines) > keep:
            atomic_write(file, "".join(lines[:keep]))

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Strict JSON: infinities and NaN become null (e.g. 'never reaches endurance')."""
        text = json.dumps(json_safe(data), indent=2, allow_nan=False)
        atomic_write(self.path / name, text + "\n")

    def set_aside(self) -> Path:
        """Move every file but config.toml and .lock into a new folder `partial-N` (N = 1, 2, ...)
        and return it: the leftovers of a run that stopped before its first checkpoint."""
        number = 1
        while (self.path / f"partial-{number}").exists():
            number += 1
        folder = self.path / f"partial-{number}"
        folder.mkdir()
        for file in self.path.iterdir():
            if file.is_file() and file.name not in (self.config_file.name, ".lock"):
                file.rename(folder / file.name)
        return folder

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        with atomic_writer(self.checkpoint_file) as f:
            torch.save(state, f)

    def load_checkpoint(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        try:
            return torch.load(self.checkpoint_file, map_location=map_location, weights_only=False)
        except Exception as err:  # a truncated or foreign file
            raise RunDirError(f"{self.checkpoint_file} cannot be read ({type(err).__name__}: "
                              f"{err}); it is corrupted or not an rlime checkpoint") from None


