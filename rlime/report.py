"""`python -m rlime.report`: entry point; the implementation is `rlime.harness.report`."""

from rlime.harness.report import main

if __name__ == "__main__":
    main()
