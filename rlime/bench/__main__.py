"""`python -m rlime.bench SUITE`: entry point; the implementation is `rlime.bench.runner`."""

from rlime.bench.runner import main
from rlime.common.entry import run_entry

run_entry(main)
