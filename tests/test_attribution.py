"""Ledger attribution: setup + finished episodes + eval + abandoned + in progress is the ledger
total exactly, and a checkpointed attribution continues exactly."""

from __future__ import annotations

import numpy as np
import pytest

from rlime.drl.phases import DQN_PHASES
from rlime.harness.attribution import Attribution
from rlime.hw.ledger import LedgerSnapshot

NUM_ENVS = 4  # shares are integer counts / 4: exact in float64, so sums compare exactly


class FakeLedger:
    """A ledger whose table grows by random integer counts."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.table = LedgerSnapshot.zeros(DQN_PHASES).table

    def work(self) -> None:
        self.table = self.table + self.rng.integers(0, 1000, size=self.table.shape)

    def snapshot(self) -> LedgerSnapshot:
        return LedgerSnapshot(self.table.copy(), DQN_PHASES)


def _play(attribution: Attribution, ledger: FakeLedger, rounds: int, rng) -> list[LedgerSnapshot]:
    """Random work, episode ends, evaluations and restarts; the finished episodes' shares."""
    finished = []
    for _ in range(rounds):
        ledger.work()
        event = rng.integers(4)
        if event == 0:
            attribution.attribute()
            finished += [attribution.finish_episode(env)
                         for env in np.flatnonzero(rng.random(NUM_ENVS) < 0.5)]
        elif event == 1:
            attribution.attribute()
            ledger.work()
            attribution.book_eval()
        elif event == 2:
            attribution.abandon_running()
    ledger.work()  # left unattributed: in progress
    return finished


def _sum(snapshots: list[LedgerSnapshot]) -> np.ndarray:
    return sum((s.table for s in snapshots), LedgerSnapshot.zeros(DQN_PHASES).table)


def test_the_split_adds_up_to_the_ledger_total_exactly():
    ledger = FakeLedger(0)
    ledger.work()  # setup: programming before training
    attribution = Attribution(ledger.snapshot, NUM_ENVS)
    finished = _play(attribution, ledger, 200, np.random.default_rng(1))
    split = attribution.split()
    assert finished and split.eval.table.any() and split.abandoned.table.any()
    assert split.in_progress.table.any() and split.setup.table.any()
    assert np.array_equal(split.total.table, ledger.table)
    parts = (split.setup.table + _sum(finished) + split.eval.table + split.abandoned.table
             + split.in_progress.table)
    assert np.array_equal(parts, split.total.table)
    assert np.array_equal(split.training.table,
                          _sum(finished) + split.abandoned.table + split.in_progress.table)
    assert set(split.as_dict()) == {"total", "setup", "eval", "abandoned", "in_progress"}


def test_a_restored_attribution_continues_exactly():
    ledger = FakeLedger(0)
    ledger.work()
    straight = Attribution(ledger.snapshot, NUM_ENVS)
    _play(straight, ledger, 50, np.random.default_rng(1))
    straight.attribute()  # a checkpoint is taken at an attribution point
    state = straight.state_dict()
    copy = FakeLedger(0)
    copy.table, copy.rng.bit_generator.state = ledger.table.copy(), ledger.rng.bit_generator.state
    restored = Attribution(copy.snapshot, NUM_ENVS)
    restored.load_state_dict(state)
    a = _play(straight, ledger, 50, np.random.default_rng(2))
    b = _play(restored, copy, 50, np.random.default_rng(2))
    assert [s.table.tolist() for s in a] == [s.table.tolist() for s in b]
    sa, sb = straight.split(), restored.split()
    for part in ("total", "setup", "eval", "abandoned", "in_progress"):
        assert np.array_equal(getattr(sa, part).table, getattr(sb, part).table), part


def test_state_dict_is_a_copy_and_a_wrong_env_count_is_refused():
    ledger = FakeLedger(0)
    attribution = Attribution(ledger.snapshot, NUM_ENVS)
    state = attribution.state_dict()
    ledger.work()
    attribution.attribute()
    assert not state["env_tables"].any()  # later attribution does not reach a saved state
    with pytest.raises(ValueError, match="expected 2"):
        Attribution(ledger.snapshot, 2).load_state_dict(state)
