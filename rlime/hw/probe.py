"""The experimenter's view of learning on the arrays: why an update did or did not land.

These are measurements a *simulation* can take and a chip cannot: they read the true
conductances and the update rule's float result, are never charged to the ledger, and nothing
the controller does depends on them (it sees only its beliefs and charged reads,
`rlime.hw.tuning`). They answer the questions of a failing RRAM run:

* are the weights at the ends of their range?  `at_upper_bound`: the fraction of cells within
  half a level of their own (calibrated) maximum conductance u_max: their weight cannot grow
  further in that direction;
* are the updates below a level, and lost?  `update_levels`: the mean |desired change| the
  rule asked of a weight, in conductance levels (weight_scale / (levels - 1) each);
  `moved_fraction`: the fraction of weights whose realised value changed this step (were
  programmed: their pending change reached the trigger);
* does what the cells did follow what was asked?  `realised_corr`: the Pearson correlation,
  over the layer's weights, of the realised change (new realised weight - old) with the
  desired change (the rule's weight - old); `realised_gain`: the least-squares slope of realised
  on desired (1: the update landed at its size; 0: lost; the residual carries what is missing to
  later steps, so a single step's gain can sit below 1 while the run's does not);
* does the target network hold what was synced?  `sync_gap_levels`: the RMS difference,
  in levels, between the target's and the Q network's realised weights right after a sync;
* how far is the network the arrays compute from the one the update rule holds?
  `desired_parameters`: each crossbar weight plus its residual (the change accumulated but not
  yet programmed), for the agent's Q-unit probes (agents.dqn).

All are dimensionless scalars per crossbar layer, named `layer<i>` in the network's order.
"""

from __future__ import annotations

import torch

from rlime.hw.array import CrossbarArray
from rlime.hw.layers import CrossbarLayer


def level_of(array: CrossbarArray) -> torch.Tensor:
    """One conductance level of `array` in weight units (0-d tensor)."""
    return array.weight_scale / array.max_level


def at_upper_bound(array: CrossbarArray) -> float:
    """Fraction of the array's cells within half a level of their own maximum conductance."""
    near = array.cell_u >= array.cell_u_max - 0.5 / array.max_level
    return int(torch.count_nonzero(near)) / near.numel()


def update_stats(array: CrossbarArray, asked: torch.Tensor, moved: torch.Tensor
                 ) -> dict[str, float]:
    """Statistics of one update of `array`: the change the update rule `asked` of each weight
    and the change the tuning realised (`moved`), flat, weight units, same length. Both are
    scratch: they are overwritten (a 1.6 M-weight layer needs no copies of them)."""
    n, level = asked.numel(), level_of(array)
    stats = {"update_levels": float(torch.linalg.vector_norm(asked, 1) / n / level),
             "moved_fraction": int(torch.count_nonzero(moved)) / n,
             "at_upper_bound": at_upper_bound(array)}
    power = float(asked @ asked)
    stats["realised_gain"] = float(asked @ moved) / power if power > 0 else 0.0
    asked.sub_(asked.mean())
    moved.sub_(moved.mean())
    spread = float(torch.linalg.vector_norm(asked) * torch.linalg.vector_norm(moved))
    stats["realised_corr"] = float(asked @ moved) / spread if spread > 0 else 0.0
    return stats


def sync_gap_levels(source: CrossbarArray, target: CrossbarArray) -> float:
    """RMS difference of two arrays' realised weights, in levels of `source`."""
    gap = target.realised() - source.realised()
    return float(gap.pow(2).mean().sqrt() / level_of(source))


def desired_parameters(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`network`'s parameters by name, each crossbar weight replaced by the weight the update
    rule holds for it: realised + residual (the accumulated change not yet programmed). Layers
    without a residual (TIME's mode) keep their realised weights."""
    params = {name: p.detach() for name, p in network.named_parameters()}
    for name, module in network.named_modules():
        if isinstance(module, CrossbarLayer) and module.array.residual.numel():
            key = f"{name}.weight" if name else "weight"
            params[key] = params[key] + module.array.residual.view_as(params[key])
    return params
