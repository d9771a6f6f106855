"""`python -m rlime.train`: entry point; the implementation is `rlime.harness.train`."""

import sys

from rlime.harness.train import main

if __name__ == "__main__":
    sys.exit(main())
