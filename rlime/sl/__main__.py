"""`python -m rlime.sl`: entry point; the implementation is `rlime.sl.cli`."""

from rlime.common.entry import run_entry
from rlime.sl.cli import main

if __name__ == "__main__":
    run_entry(main)
