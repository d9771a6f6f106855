"""`python -m rlime.perf`: entry point; the implementation is `rlime.harness.perf`."""

from rlime.common.entry import run_entry
from rlime.harness.perf import main

if __name__ == "__main__":
    run_entry(main)
