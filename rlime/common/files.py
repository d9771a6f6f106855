"""Safe file I/O shared by every layer: atomic writes (fsynced), JSONL records, strict JSON,
and the TOML reader (`tomllib`, or `tomli` before Python 3.11)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from pathlib import Path
from typing import IO, Any, Iterator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["tomllib", "atomic_writer", "atomic_write", "read_jsonl", "numbered_jsonl", "JsonlError", "json_safe"]


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that replaces `path` only when the block ends without error.

    The data goes to `path.tmp`, is flushed and fsynced, renamed over `path`, and the directory
    is fsynced, so a crash leaves either the old file or the new one, never a torn one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Replace `path` with `data` (str is written as UTF-8) atomically; see `atomic_writer`."""
    with atomic_writer(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


class JsonlError(ValueError):
    """A JSONL file has a line that is not a JSON object; the message names file and line."""


def numbered_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, JSON object) for each record of a JSONL file (none if it does not exist).

    Blank lines are skipped, and so is a last line without its newline that does not parse:
    an append cut short by a kill. Any other bad line raises `JsonlError` naming file and line."""
    path = Path(path)
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"it is a JSON {type(record).__name__}, not an object")
        except ValueError as err:
            if number == len(lines):  # no newline after it: a torn final append
                break
            msg = err.msg if isinstance(err, json.JSONDecodeError) else str(err)
            raise JsonlError(f"{path}, line {number}, is not a JSON object ({msg}); the file "
                             f"is damaged: fix or delete that line") from None
        yield number, record


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file ([] if it does not exist); see `numbered_jsonl`."""
    return [record for _, record in numbered_jsonl(path)]


def json_safe(value: Any) -> Any:
    """`value` with infinities and NaN replaced by None, for strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
