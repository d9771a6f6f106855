"""`python -m rlime.train`: entry point; the implementation is `rlime.harness.cli`."""

import sys

from rlime.harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
