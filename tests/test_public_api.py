"""The public API: the README's "Your own network on the crossbar" example runs verbatim, and
every name in `rlime.__all__` resolves."""

from __future__ import annotations

import re
from pathlib import Path

import rlime

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    text = README.read_text()
    section = text.split("## Your own network on the crossbar", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section holds exactly one python example"
    return blocks[0]


def test_readme_example_trains_and_reports_pulses_and_joules(capsys):
    scope: dict = {}
    exec(compile(_readme_example(), str(README), "exec"), scope)
    out = capsys.readouterr().out
    losses = [float(v) for v in re.findall(r"loss (\d+\.\d+)", out)]
    assert len(losses) == 5 and losses[-1] < losses[0]       # it learns
    training, joules = scope["training"], scope["joules"]
    assert training.writes > 0                                 # updates were tuned in as pulses
    assert f"{training.writes:,} programming pulses" in out
    assert joules["tuning"] > 0 and joules["backward"] > 0   # pulses and transposed MVMs priced
    assert set(joules) == {"forward", "backward", "gradient", "tuning", "data_movement", "digital",
                          "static"}
    assert training.phases == rlime.TRAINING_PHASES


def test_every_public_name_resolves():
    for name in rlime.__all__:
        assert getattr(rlime, name) is not None, name
    assert rlime.Chip.__module__ == "rlime.hw.chip"
