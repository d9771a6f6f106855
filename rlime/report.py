"""`python -m rlime.report`: entry point; the implementation is `rlime.harness.report`."""

from rlime.common.entry import run_entry
from rlime.harness.report import main

if __name__ == "__main__":
    run_entry(main)
