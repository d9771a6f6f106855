"""`python -m rlime.bench SUITE`: entry point; the implementation is `rlime.bench.runner`."""

import sys

from rlime.bench.runner import main

sys.exit(main())
