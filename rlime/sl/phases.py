"""The ledger's phase axis for supervised training, each phase with its role.

A training step reads a minibatch from memory (`data`: the dataset lives in off-chip DRAM, as
it does for a DaDianNao-class ASIC, whose eDRAM holds weights), runs the network forward on it
(`forward`: crossbar MVMs, activations, pooling, the loss), backpropagates through the
transposed arrays (`backward`) and updates and tunes the arrays (`update`). `program` is the
initial programming of the weights; `evaluate` the test-set passes after each epoch (forward
only), kept apart from the training workload the baselines compare.
"""

from __future__ import annotations

from rlime.hw.counts import Phases

SL_PHASES = Phases((
    ("program", "program"),     # one-time programming of initial weights
    ("forward", "forward"),     # forward MVMs on the training minibatch, and the loss
    ("backward", "backward"),   # transposed MVMs and weight-gradient arithmetic
    ("update", "update"),       # update rule and tuning of the arrays
    ("evaluate", "inference"),  # test-set forward passes (not training)
    ("data", "storage"),        # minibatches read from memory
))
