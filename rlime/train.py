"""`python -m rlime.train`: entry point; the implementation is `rlime.harness.cli`."""

from rlime.common.entry import run_entry
from rlime.harness.cli import main

if __name__ == "__main__":
    run_entry(main)
