"""Tuning schemes: turning target conductances into programming pulses and verify reads.

The controller acts only on what the hardware knows: each cell's calibrated bounds and its
*belief* (`CellSet.belief`: the last verify read, or where its own model says the last
open-loop burst put the cell). It never sees the true conductance except through a charged read.

* ``open-loop``: the pulse count a cell with nominal step needs from its belief to the target
  (on its calibrated bounds) is fired in one burst; no read. The belief moves to where the model
  predicts the burst lands, so the cell's own variability accumulates unseen, as in NeuroSim's
  RealDevice::Write (a state-blind pulse count).
* ``write-verify``: read (charged), then pulse by pulse towards the target, reading back after
  each pulse, until a read is accepted or the cell has used its nominal count + `max_pulses`.
  A read is accepted within `tolerance_levels` only once no further pulse is expected to bring
  the cell closer (`rlime.hw.verify_loop.accepts`: the controller aims at the target, so the
  final error is centred on it rather than parked at the edge of the window it came from).
* ``gradual`` (TIME's gradually-write, as an ISPP-like coarse-to-fine scheme: the write step is
  shrunk near the target): read, verify full pulses until within `coarse_window_levels`, then
  verify fine pulses -- `fine_step_fraction` f of the step and of the cycle-to-cycle sigma --
  to `tolerance_levels`, aiming as write-verify does (the coarse stage stops at its window). A fine pulse is modelled as a pulse of f x the width: its V^2 G t
  energy (the conductance sums) is charged at f, its count (fixed driver and wire energy, wear)
  in full.

After every programming event the cells that took pulses relax (`PulseModel.relax`, after
the last verify read). Every pulse (SET/RESET, with the conductance it saw) and every verify read is charged to the
ledger's current phase. The verify loop touches only cells that still need pulses: on CPU each
cell runs its loop to the end in compiled code (`rlime.hw.verify_loop`); elsewhere it runs as
batched tensor rounds over a shrinking set.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from rlime.hw.config import TuningConfig
from rlime.hw.device import PULSE_COUNTER, CellSet, PulseCounts, PulseModel
from rlime.hw.ledger import Ledger
from rlime.hw.verify_loop import verify_on_cpu

_OPEN_LOOP_LIMIT = 2.0**25  # pulses; above any level count a preset allows


class Tuner:
    """Programs cells (a whole set, or those at given positions) to target normalised
    conductances under one tuning scheme."""

    compiled = True  # on CPU, run the verify loop compiled per cell (rlime.hw.verify_loop)
    # Most cells one programming pass holds (`tune_jobs`). It bounds the simulator's working
    # memory (about 250 bytes per cell in a gradual pass) when a whole network is programmed
    # (initial weights, a target sync of an Atari CNN: 1.6 M cells); smaller jobs never split.
    batch_cells = 2**18

    def __init__(self, cfg: TuningConfig, model: PulseModel, generator: torch.Generator,
                 ledger: Ledger) -> None:
        self.cfg = cfg
        self.model = model
        self.generator = generator
        self.ledger = ledger
        self.levels_per_unit = model.cfg.levels - 1

    def tune(self, cells: CellSet, target: torch.Tensor, index: torch.Tensor | None = None,
             read_taken: bool = False) -> torch.Tensor:
        """Move the cells of `cells` at `index` (all when None) in place towards `target` (one
        normalised conductance per programmed cell). `read_taken`: the read a verified scheme
        starts from was already taken (and charged) by the caller.

        Returns the controller's belief of each programmed cell afterwards (also written to
        `cells.belief`).
        """
        if index is not None and self.cfg.scheme != "write-verify":
            part = cells.take(index)  # open-loop and gradual work on gathered cells
            seen = self.tune(part, target, read_taken=read_taken)
            cells.put(index, part)
            return seen
        if target.numel() == 0:
            return target
        model, lo, hi = self.model, cells.u_min, cells.u_max
        pulses = (lambda: cells.pulses) if index is None else (
            lambda: cells.pulses.index_select(0, index))
        relaxing = model.cfg.relaxation_sigma > 0  # which cells took pulses: only then needed
        before = pulses().clone() if relaxing else None
        if self.cfg.scheme != "open-loop":
            seen = self._verified(cells, target, index, read_taken)
        else:
            n, up = model.nominal_pulses(cells.belief, target, _OPEN_LOOP_LIMIT, lo, hi)
            self._charge(model.apply(cells, n, up, self.generator))
            cells.belief.copy_(model.predict(cells.belief, n, up, lo, hi))
            seen = cells.belief
        if relaxing:
            moved = (pulses() != before).nonzero().squeeze(1)
            model.relax(cells, moved if index is None else index.index_select(0, moved),
                        self.generator)
        return seen

    def tune_jobs(self, jobs: list[tuple[CellSet, torch.Tensor, torch.Tensor]],
                  read_taken: bool = False) -> list[torch.Tensor]:
        """Several arrays at once: jobs of (cells, index, target) as for `tune`; returns the
        beliefs of the programmed cells per job.

        The jobs' cells are programmed in passes of at most `batch_cells` cells, in job order
        (a large job is split across passes, small ones share one). On CPU write-verify tunes
        each job's part of a pass by itself: only the cells its first read finds outside
        tolerance are gathered, once. Otherwise a pass's cells are gathered into one set and
        tuned together (one loop of tensor rounds for all arrays).
        """
        seen: list[list[torch.Tensor]] = [[] for _ in jobs]
        for batch in _passes([index.numel() for _, index, _ in jobs], self.batch_cells):
            parts = [(jobs[j][0], jobs[j][1][a:b], jobs[j][2][a:b]) for j, a, b in batch]
            for (j, _, _), beliefs in zip(batch, self._tune_pass(parts, read_taken)):
                seen[j].append(beliefs)
        return [(s[0] if len(s) == 1 else torch.cat(s)) if s else target[:0]
                for s, (_, _, target) in zip(seen, jobs)]

    def _tune_pass(self, parts: list[tuple[CellSet, torch.Tensor, torch.Tensor]],
                   read_taken: bool) -> list[torch.Tensor]:
        """One programming pass over parts (cells, index, target); beliefs per part."""
        if self.cfg.scheme == "write-verify" and all(self._compiled_on(c) for c, _, _ in parts):
            return [self.tune(cells, target, index, read_taken) for cells, index, target in parts]
        taken = [cells.take(index) for cells, index, _ in parts]
        merged = CellSet.cat(taken)
        sizes = [len(p) for p in taken]
        seen = self.tune(merged, torch.cat([target for _, _, target in parts]),
                         read_taken=read_taken)
        for (cells, index, _), part in zip(parts, merged.split(sizes)):
            cells.put(index, part)
        return list(torch.split(seen, sizes))

    def _compiled_on(self, cells: CellSet) -> bool:
        return self.compiled and cells.u.device.type == "cpu"

    def _stages(self) -> list[tuple[float, float, bool]]:
        """(step fraction, window in u, aim) of each verify stage of the scheme; the last stage
        aims at the target (`accepts`), a coarse stage stops at its window."""
        per_level = 1.0 / self.levels_per_unit
        tol = self.cfg.tolerance * per_level
        if self.cfg.scheme == "write-verify":
            return [(1.0, tol, True)]
        coarse = max(self.cfg.coarse_window_levels, self.cfg.tolerance) * per_level
        return [(1.0, coarse, False), (self.cfg.fine_step_fraction, tol, True)]

    def _accepted(self, goal: torch.Tensor, seen: torch.Tensor, coefficients: tuple,
                  step_scale: torch.Tensor | float, scale: float, tol: float, aim: bool,
                  lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """`accepts` of each read `seen` (tensor form): `coefficients` are the cells' own
        single-pulse coefficients of `scale` x the step (at `seen`), divided here by
        `step_scale` to give the controller's expected step; [lo, hi] the cells' bounds."""
        error = goal - seen
        inside = error.abs() <= tol
        if not aim:
            return inside
        c0_up, c1_up, c0_down, c1_down = coefficients
        up = error > 0
        step = torch.where(up, c0_up + c1_up * seen, c0_down + c1_down * seen) / step_scale
        additive, relative = self.model.noise_sigmas(scale, up, seen, lo, hi)
        sigma = additive + relative * step.abs()
        return inside & (error * error <= (error - step) ** 2 + sigma * sigma)

    def _verified(self, cells: CellSet, target: torch.Tensor, index: torch.Tensor | None,
                  read_taken: bool) -> torch.Tensor:
        """Write-verify or gradual of the cells at `index` (all when None): one charged read,
        then each stage's verify loop over the cells still outside its window."""
        model, generator = self.model, self.generator
        pick = (lambda t: t) if index is None else (lambda t: t.index_select(0, index))
        seen = model.read(pick(cells.u), generator).clone()  # the read every verify starts with
        reads: list = [0 if read_taken else target.numel()]
        n_nominal, _ = model.nominal_pulses(seen, target, _OPEN_LOOP_LIMIT, pick(cells.u_min),
                                            pick(cells.u_max))
        budget = n_nominal + self.cfg.max_pulses
        g_min, half_range = model.cfg.g_min_siemens, 0.5 * model.cfg.range_siemens
        lo, hi = pick(cells.u_min), pick(cells.u_max)
        for scale, window, aim in self._stages():
            nominal = model.pulse_coefficients(lo, hi, at=seen)
            settled = self._accepted(target, seen, tuple(c * scale for c in nominal), 1.0, scale,
                                     window, aim, lo, hi)
            pending = (~settled & (budget > 0)).nonzero().squeeze(1)
            if not pending.numel():
                continue
            goal, now, left = (t.index_select(0, pending) for t in (target, seen, budget))
            at = pending if index is None else index.index_select(0, pending)  # into `cells`
            work = cells.take(at)
            before = work.pulses.clone()
            loop = self._compiled if self._compiled_on(cells) else self._rounds
            set_n, pulses, set_sum, all_sum = loop(work, goal, now, left, window, scale, aim)
            cells.put(at, work)
            seen.index_copy_(0, pending, now)
            budget.index_copy_(0, pending, left - (work.pulses - before).to(left.dtype))
            reads.append(pulses)  # one verify read after every pulse
            # a pulse of `scale` x the width: V^2 G t charged at `scale` (module docstring)
            self._charge(PulseCounts(
                set_n, pulses - set_n, scale * (set_n * g_min + half_range * set_sum),
                scale * ((pulses - set_n) * g_min + half_range * (all_sum - set_sum))))
        self._add("verify_reads", sum(reads))
        if index is None:
            cells.belief.copy_(seen)
        else:
            cells.belief.index_copy_(0, index, seen)
        return seen

    def _compiled(self, work: CellSet, goal: torch.Tensor, seen: torch.Tensor,
                  budget: torch.Tensor, tol: float, scale: float, aim: bool) -> tuple:
        """Every cell's loop run to the end in compiled code (CPU), pulses of `scale` x the
        full step."""
        model = self.model
        return verify_on_cpu(self.generator, work.u, seen, goal, budget, work.u_min, work.u_max,
                             model.law, scale, model.relative_sigma, work.step_scale,
                             work.stuck, work.pulses, model.read_sigmas(), tol, aim,
                             model.cfg.endurance_pulses)

    def _rounds(self, work: CellSet, goal: torch.Tensor, seen: torch.Tensor,
                budget: torch.Tensor, tol: float, scale: float, aim: bool) -> tuple:
        """The loop as batched tensor rounds, one pulse (of `scale` x the full step) and one
        read per active cell per round (any device). `work` and `seen` are updated in place;
        returns (SET pulses, pulses, sum of u + u' over SET pulses, over all pulses). A
        measured law's coefficients depend on the state: they are taken afresh at each pulse
        and each read."""
        model, generator = self.model, self.generator
        index = torch.arange(len(work), device=work.u.device)  # positions in `work`
        # `work` itself; its stuck flags and beliefs are copied because the write-back puts them
        # into it
        part = dataclasses.replace(work, stuck=work.stuck.clone(), belief=work.belief.clone())
        u, lo, hi = part.u, part.u_min, part.u_max

        def own(at: torch.Tensor) -> tuple[torch.Tensor, ...]:  # the cells' coefficients at u = at
            return tuple(c * scale for c in model.pulse_coefficients(lo, hi, part.step_scale, at))

        c0_up, c1_up, c0_down, c1_down = own(u)
        now = seen.clone()
        taken = torch.zeros_like(u)    # pulses each cell has taken in this call
        written = torch.zeros_like(u)  # ... of which already added to its wear counter
        active = torch.ones_like(u, dtype=torch.bool)
        n_active, rounds_left = index.numel(), self._rounds_until_wear(part)
        stuck = part.stuck if bool(part.stuck.any()) else None
        sums: list[torch.Tensor] = []  # per round: [SET pulses, sum of (u + u') over SET, over all]
        pulses = 0
        while n_active > 0:
            # Finished cells stay in the set, frozen, until half of it has finished; then the
            # set is compacted (one gather) -- cheaper than compacting every round.
            full = n_active == index.numel()
            up = goal > now
            if model.state_dependent:
                c0_up, c1_up, c0_down, c1_down = own(u)
            u_new = model.step_once(u, torch.where(up, c0_up, c0_down),
                                    torch.where(up, c1_up, c1_down), lo, hi, stuck, generator,
                                    model.noise_sigmas(scale, up, u, lo, hi))
            act_f = active.to(u.dtype)
            if not full:
                u_new = torch.where(active, u_new, u)
                up = up & active
            up_f = up.to(u.dtype)
            both = u + u_new
            sums.append(torch.stack([up_f, up_f * both, act_f * both]).sum(1))
            pulses += n_active
            taken += act_f
            u = u_new
            now = model.read(u, generator) if full else torch.where(active, model.read(u, generator), now)
            coefficients = own(now) if model.state_dependent else (c0_up, c1_up, c0_down, c1_down)
            active &= ~self._accepted(goal, now, coefficients, part.step_scale, scale, tol,
                                      aim, lo, hi) & (budget > taken)
            n_active = int(active.sum())
            rounds_left -= 1
            if n_active > index.numel() // 2 and rounds_left > 0:
                continue
            # write back: state, last reads and wear (every cell that left took its pulses)
            part = CellSet(u, lo, hi, part.step_scale, part.stuck, part.pulses, part.belief)
            model.wear(part, (taken - written).to(PULSE_COUNTER))
            written = taken.clone()
            work.put(index, part)
            seen.index_copy_(0, index, now)
            kept = active.nonzero().squeeze(1)
            index = index.index_select(0, kept)
            (u, lo, hi, goal, now, budget, taken, written, c0_up, c1_up, c0_down,
             c1_down) = torch.stack([u, lo, hi, goal, now, budget, taken, written,
                                     c0_up, c1_up, c0_down, c1_down]).index_select(1, kept).unbind(0)
            part = CellSet(u, lo, hi, part.step_scale.index_select(0, kept),
                           part.stuck.index_select(0, kept), part.pulses.index_select(0, kept),
                           part.belief.index_select(0, kept))
            active = torch.ones_like(u, dtype=torch.bool)
            stuck = part.stuck if bool(part.stuck.any()) else None
            rounds_left = self._rounds_until_wear(part)
        set_n, set_sum, all_sum = (torch.stack(sums).sum(0).to(torch.float64) if sums
                                   else torch.zeros(3, dtype=torch.float64))
        return set_n, pulses, set_sum, all_sum

    def _rounds_until_wear(self, work: CellSet) -> float:
        """Pulses until the first healthy cell of `work` reaches its endurance (inf if never)."""
        endurance = self.model.cfg.endurance_pulses
        if not math.isfinite(endurance) or len(work) == 0:
            return math.inf
        most = int(work.pulses.masked_fill(work.stuck, -1).max())  # -1: all stuck already
        return math.inf if most < 0 else max(1, math.ceil(endurance - most))

    def _charge(self, counts: PulseCounts) -> None:
        self._add("set_pulses", counts.set_pulses)
        self._add("reset_pulses", counts.reset_pulses)
        self._add("set_pulse_siemens", counts.set_siemens)
        self._add("reset_pulse_siemens", counts.reset_siemens)

    def _add(self, kind: str, value: torch.Tensor | float) -> None:
        """Charge a count or conductance sum: tensors stay on their device, numbers (from the
        compiled loop) go straight to the host table."""
        if isinstance(value, torch.Tensor):
            self.ledger.add_tensor(kind, value)
        else:
            self.ledger.add(kind, value)


def _passes(sizes: list[int], limit: int) -> list[list[tuple[int, int, int]]]:
    """Jobs of `sizes` cells cut into passes of at most `limit` cells, in order: each pass a
    list of (job, start, stop) slices."""
    passes: list[list[tuple[int, int, int]]] = [[]]
    room = limit
    for job, n in enumerate(sizes):
        start = 0
        while start < n:
            if room == 0:
                passes.append([])
                room = limit
            stop = min(n, start + room)
            passes[-1].append((job, start, stop))
            room -= stop - start
            start = stop
    return passes if passes[0] else []
