"""`python -m rlime.report`: entry point; the implementation is `rlime.harness.report`."""

import sys

from rlime.harness.report import main

if __name__ == "__main__":
    sys.exit(main())
