"""One training run: configuration pipeline, command line, training loop, ledger attribution,
episode log, summary.json, run directory, re-pricing report and the step benchmark."""
