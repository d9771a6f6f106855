"""rlime.perf: the step benchmark's workloads, its split into parts, and its input checks."""

from __future__ import annotations

import pytest
import torch

from rlime.harness import perf


def test_split_times_every_part_of_both_backends(capsys):
    assert perf.main(["--workloads", "tiny", "--split", "--repeats", "1"]) is None
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith("MLP 4-8-8-2")]
    assert [row[-5] for row in rows] == list(perf.PARTS)  # part, float, float CL, rram, ratio
    assert all(float(row[-4]) > 0 and float(row[-2]) > 0 for row in rows)


def test_the_ratio_is_against_the_faster_float_layout():
    _, make, x, _ = perf.WORKLOADS["tiny"]
    result = perf.measure(make, x(), 5, 1, "default", "write-verify", torch.device("cpu"),
                          perf.PARTS)
    assert tuple(result) == perf.PARTS
    for r in result.values():
        assert r["ratio"] == r["rram"] / min(v for k, v in r.items() if k.startswith("float"))


def test_parts_do_what_they_say():
    """forward: no gradient; forward+backward: gradients, weights unchanged; step: updated."""
    net = perf.tiny_mlp()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(3, 4)
    before = [p.detach().clone() for p in net.parameters()]
    perf._step_fn(net, opt, x, "forward")()
    assert all(p.grad is None for p in net.parameters())
    perf._step_fn(net, opt, x, "forward+backward")()
    assert all(p.grad is not None for p in net.parameters())
    assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before))
    perf._step_fn(net, opt, x, "step")()
    assert any(not torch.equal(p, b) for p, b in zip(net.parameters(), before))


@pytest.mark.parametrize("argv", [["--workloads", "lstm"], ["--workloads", ","],
                                  ["--repeats", "0"]])
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        perf.main(argv)
    assert exit_info.value.code == 2
    assert argv[0] in capsys.readouterr().err  # the message names the argument
