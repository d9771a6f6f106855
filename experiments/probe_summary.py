"""Device probes of finished (or running) runs, averaged over step windows, side by side.

    python experiments/probe_summary.py RUN_DIR [RUN_DIR ...] [--window 0:20000 ...]
                                        [--match q/ --match layer2/]

Reads each run's ``probes.jsonl`` (`rlime.harness.train`: one line per probe, ``kind`` update
or sync, its statistics named ``layer<i>/<stat>`` and ``q/<stat>``; `rlime.hw.probe`) and
prints a Markdown table: a row per statistic, a column per run and window, each cell the mean
over the probes whose step lies in [start, end). `--match` keeps the statistics whose name
contains any of the given strings. This is how the README's and the notes' probe numbers
(fraction of cells at the bounds, update size in levels, Q-unit errors) are made.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path


def parse_window(text: str) -> tuple[int, float]:
    """'START:END' (END may be empty: to the end of the run) -> (start, end) in steps."""
    start, sep, end = text.partition(":")
    try:
        if not sep:
            raise ValueError
        window = (int(start or 0), float(end) if end else math.inf)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"window {text!r}: write START:END in environment steps, e.g. 0:20000 or 60000:")
    if window[1] <= window[0]:
        raise argparse.ArgumentTypeError(f"window {text!r}: END must be greater than START")
    return window


def read_probes(run_dir: Path) -> list[dict]:
    """The probe lines of one run."""
    path = run_dir / "probes.jsonl"
    if not path.is_file():
        raise SystemExit(f"probe_summary: {path} does not exist (probes are written by rram "
                         "runs with run.probe_every > 0)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def window_means(lines: list[dict], window: tuple[int, float]) -> dict[str, float]:
    """The mean of every statistic over the probes in `window`."""
    values: dict[str, list[float]] = {}
    for line in lines:
        if window[0] <= line["step"] < window[1]:
            for key, value in line.items():
                if key not in ("step", "kind") and value is not None:
                    values.setdefault(key, []).append(float(value))
    return {key: statistics.fmean(v) for key, v in values.items()}


def table(columns: dict[str, dict[str, float]], match: list[str]) -> str:
    """Markdown table: a row per statistic (sorted), a column per (run, window) label."""
    keys = sorted({k for means in columns.values() for k in means
                   if not match or any(m in k for m in match)})
    rows = ["| statistic | " + " | ".join(columns) + " |",
            "| --- |" + " --- |" * len(columns)]
    for key in keys:
        cells = [f"{means[key]:.4g}" if key in means else "-" for means in columns.values()]
        rows.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--window", action="append", type=parse_window,
                        help="START:END in environment steps (repeatable; default: whole run)")
    parser.add_argument("--match", action="append", default=[],
                        help="keep statistics whose name contains this (repeatable)")
    args = parser.parse_args(argv)
    windows = args.window or [(0, math.inf)]
    columns = {}
    for run in args.runs:
        lines = read_probes(run)
        for window in windows:
            end = "end" if math.isinf(window[1]) else f"{window[1]:.0f}"
            columns[f"{run.name} {window[0]}-{end}"] = window_means(lines, window)
    print(table(columns, args.match))


if __name__ == "__main__":
    main()
