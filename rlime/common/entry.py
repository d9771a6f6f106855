"""Running a command-line entry point: its exit code, and a closed output pipe (`... | head`)
ending the command quietly instead of with a traceback."""

from __future__ import annotations

import os
import sys
from typing import Callable


def run_entry(main: Callable[[], object]) -> None:
    """Run `main()`; exit with its result when that is an int (else 0), or 1 on a broken pipe."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python's documented recipe: point stdout at devnull so the final flush cannot fail
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
