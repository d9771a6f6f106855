"""Command-line entry points: exit codes, and a closed pipe (`| head`) ends them quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(body: str, read_one_line: bool = False) -> tuple[int, str]:
    code = f"from rlime.common.entry import run_entry\ndef main():\n{body}\nrun_entry(main)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if read_one_line:
        proc.stdout.readline()
        proc.stdout.close()  # as `| head -1` does
        err = proc.stderr.read()
    else:
        _, err = proc.communicate()
    return proc.wait(), err


@pytest.mark.parametrize("body, code", [("    return 2", 2), ("    return {'a': 1}", 0),
                                        ("    return None", 0)])
def test_exit_code_is_main_s_int_result_else_zero(body, code):
    assert _run(body)[0] == code


def test_a_closed_pipe_ends_the_command_without_a_traceback():
    # 10 MB of output: far more than a pipe buffers, so the writer meets the closed pipe
    rc, err = _run("    for _ in range(100_000):\n        print('x' * 100)", read_one_line=True)
    assert rc == 1 and "Traceback" not in err and "BrokenPipeError" not in err
