"""DQN's phase vocabulary: the ledger's phase axis for a DQN run, each phase with its role.

A DQN training step acts (`act`: Q forward on the current observation), samples a minibatch
(`replay`), runs Q forward on it (`forward`) and the target network on the next states
(`target`), backpropagates (`backward`), updates and tunes the Q arrays (`update`), and every
`target_period` steps copies Q into the target network (`target_sync`). `program` is the
initial programming of both networks. The roles (`rlime.hw.counts.ROLES`) tell the cost layer
how to account for each phase: `target_sync` and `replay` get energy categories of their own,
and neither counts as arithmetic on a GPU or an ASIC.
"""

from __future__ import annotations

from rlime.hw.counts import Phases

DQN_PHASES = Phases((
    ("program", "program"),         # one-time programming of initial weights
    ("act", "inference"),           # Q forward passes that choose actions
    ("forward", "forward"),         # Q forward on the training minibatch
    ("target", "forward"),          # target-network forward on next states
    ("backward", "backward"),       # transposed MVMs and weight-gradient arithmetic
    ("update", "update"),           # update rule and tuning of the Q arrays
    ("target_sync", "copy"),        # copying Q into the target network
    ("replay", "storage"),          # storing and sampling transitions
))
