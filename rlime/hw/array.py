"""One weight tensor on a differential pair of crossbar arrays: cells, tiles and periphery.

`CrossbarArray` owns the state of a weight W (buffers: the G+ and G- cells, the weight full
scale, the residual accumulator, the calibrated ADC range of every tile) and its tile geometry
(a `Tiling`), and runs everything W takes part in through the chip's periphery: the forward
MVM, the transposed MVM, the weight-gradient outer products, and the programming moves towards
new weights (`plan_moves` / `settle`, several arrays in one tuning pass with `program_arrays`).
Each of them charges its counts to the chip's ledger. The same code runs linear and
convolutional weights; only the `Tiling` differs.

Weights are w = weight_scale * (u+ - u-), u the normalised conductance of a cell (see
`rlime.hw.device`); `weight_scale` is the weight of a full-range conductance difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from rlime.hw.chip import Chip
from rlime.hw.crossbar import MVMCounts, Periphery, Tiling, code_values
from rlime.hw.device import CellSet, fresh_cells
from rlime.hw.moves import plan_targets, select_moves, settle_moves


@dataclass
class Moves:
    """A programming job of one array: weights `sel` (flat) move towards `want`; of their
    cells, those at `index` (flat: G+ cells, then G- cells) need pulses towards `target`
    (normalised conductance). `delta` is the full change, residual included."""

    sel: torch.Tensor
    want: torch.Tensor
    delta: torch.Tensor
    index: torch.Tensor
    target: torch.Tensor


class CrossbarArray(nn.Module):
    """The cells, tiles and MVMs of one weight tensor (shape `shape`) on `chip`.

    `weight` arguments are the realised weights (`realised()`, shape `shape`) that autograd
    sees; MVM inputs and results are in the layer's layout (linear (B, n), conv (B, C, H, W)).
    """

    def __init__(self, weight: torch.Tensor, tiling: Tiling, chip: Chip) -> None:
        super().__init__()
        self.chip, self.tiling, self.shape = chip, tiling, weight.shape
        cfg = chip.cfg
        n = weight.numel()
        cells = fresh_cells(n, cfg.device, chip.generator, chip.device)
        for name, value in vars(cells).items():
            self.register_buffer(f"cell_{name}", value)
        wmax = float(weight.detach().abs().max())
        scale = cfg.tile.weight_headroom * (wmax if wmax > 0 else 1.0)
        self.register_buffer("weight_scale", torch.tensor(scale, device=chip.device))
        self.register_buffer("residual", torch.zeros(n if cfg.tuning.residual else 0,
                                                     device=chip.device))
        self.max_level = cfg.device.levels - 1
        verified = cfg.tuning.scheme != "open-loop"
        self.trigger_levels = 0.5 + (cfg.tuning.tolerance if verified else 0.0)
        # calibrated ADC ranges per tile, forward (row tiles) and transposed (column tiles)
        self.register_buffer("adc_range_forward", torch.zeros(tiling.row_tiles,
                                                              device=chip.device))
        self.register_buffer("adc_range_backward", torch.zeros(tiling.col_tiles,
                                                               device=chip.device))
        self._counts: dict[int, tuple[MVMCounts, MVMCounts]] = {}
        self._tile_source: torch.Tensor | None = None
        self._tile_cache: tuple[torch.Tensor, ...] | None = None
        self._scale_key: tuple | None = None

    @property
    def cells(self) -> CellSet:
        return CellSet(self.cell_u, self.cell_u_min, self.cell_u_max, self.cell_step_scale,
                       self.cell_stuck, self.cell_pulses, self.cell_belief)

    def own_state(self) -> list:
        """What belongs to these cells alone (a copy on new arrays replaces it): the cell
        buffers, the residual and the cached MVM operands."""
        return [*vars(self.cells).values(), self.residual, self._tile_source, self._tile_cache]

    def realised(self) -> torch.Tensor:
        """The weights the conductances encode, shape `shape`."""
        n = self.cell_u.numel() // 2
        return (self.weight_scale * (self.cell_u[:n] - self.cell_u[n:])).view(self.shape)

    # ------------------------------------------------------------------ MVMs

    def mvm(self, x: torch.Tensor, weight: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(y, codes, unit): y = W x for x (B, ...), and the DAC codes and per-sample units
        (B, 1, ...) it drove the rows with (x itself and None when the periphery is exact),
        which the weight gradient reuses."""
        tiling, per = self.tiling, self.chip.forward_periphery
        self._charge(0, x.shape, None)
        if per.exact:
            x = code_values(x)
            return tiling.exact(x, self._operands(weight)[0]), x, None
        codes, unit = per.dac(x, tiling.memory_format)
        partials = tiling.partials(codes, self._operands(weight)[1])
        y = self._convert(per, partials, tiling.rows_used, self.adc_range_forward,
                          lambda: self._read_variance(
                              per.drive_squares(codes), tiling.input_sums,
                              lambda s: tiling.partials(s, self._read_weights()[0])), unit)
        return tiling.to_layout(y), codes, unit

    def error_codes(self, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(codes, unit) of an error through the backward DAC (grad itself, None when exact)."""
        per = self.chip.backward_periphery
        return (grad, None) if per.exact else per.dac(grad)

    def transposed_mvm(self, g: torch.Tensor, unit: torch.Tensor | None, weight: torch.Tensor,
                       input_size: torch.Size) -> torch.Tensor:
        """W^T g for error codes g and their units (from `error_codes`: g itself and None when
        the backward periphery is exact), shaped like the forward input (`input_size`)."""
        tiling, per = self.tiling, self.chip.backward_periphery
        self._charge(1, input_size, "backward")
        if per.exact:
            return tiling.exact_transposed(g, self._operands(weight)[0], input_size)
        partials = tiling.transposed_partials(g, self._operands(weight)[2], input_size)
        y = self._convert(per, partials, tiling.cols_used, self.adc_range_backward,
                          lambda: self._read_variance(
                              per.drive_squares(g), lambda s: tiling.error_sums(s, input_size),
                              lambda s: tiling.transposed_partials(s, self._read_weights()[1],
                                                                   input_size)), unit)
        return tiling.to_layout(y)

    def weight_grad(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """dW (shape `shape`) from forward inputs x and errors g, both as values: digital
        outer products, charged as gradient MACs."""
        macs = x.shape[0] * self.tiling.vectors(x.shape) * math.prod(self.shape)
        self.chip.ledger.add("gradient_macs", macs, "backward")
        return self.tiling.weight_grad(x, g, self.shape)

    def _charge(self, direction: int, input_size: torch.Size, phase: str | None) -> None:
        """Charge one MVM (direction 0 forward, 1 transposed) of a batch of `input_size`."""
        vectors = self.tiling.vectors(input_size)
        counts = self._counts.get(vectors)
        if counts is None:
            cfg = self.chip.cfg
            counts = self._counts[vectors] = self.tiling.counts(vectors, cfg.forward,
                                                                cfg.backward)
        self.chip.ledger.add_row(counts[direction].row * input_size[0], phase)

    def _convert(self, per: Periphery, partials: torch.Tensor, lines: torch.Tensor,
                 ranges: torch.Tensor, read_variance: Callable[[], torch.Tensor],
                 unit: torch.Tensor | None) -> torch.Tensor:
        """Read noise, ADC and digital tile sum of partial sums (code units), scaled by the
        per-sample DAC `unit`."""
        return per.convert(partials, tile_dim=self.tiling.tile_dim, scale=self._full_scale(),
                           lines=lines, ranges=ranges, read_variance=read_variance, unit=unit)

    def _read_variance(self, squares: torch.Tensor, sums: Callable, products: Callable
                       ) -> torch.Tensor:
        """Read-noise variance of each partial sum in (read_sigma x scale)^2 from the drive
        `squares` (`Periphery.drive_squares`): additive, 2 x their sum over the lines (two cells
        per weight); proportional, their products with each weight's (g0 + u+)^2 + (g0 + u-)^2
        (`_read_weights`)."""
        if self.chip.cfg.device.read_noise_model == "additive":
            return sums(squares).mul_(2.0)
        return products(squares)

    def _read_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`tiling.tiles` of (g0 + u+)^2 + (g0 + u-)^2 per weight, g0 = g_min / range: each
        cell's read-noise variance in (read_sigma x range)^2 when it is proportional to G
        (NeuroSim Cell.cpp IdealDevice::Read, sigma x G)."""
        dev = self.chip.cfg.device
        g = self.cell_u + dev.g_min_siemens / dev.range_siemens
        n = g.numel() // 2
        return self.tiling.tiles((g[:n] ** 2 + g[n:] ** 2).view(self.shape))

    def _full_scale(self) -> float:
        """`weight_scale` as a Python float for the periphery's scalar arithmetic, read from its
        device again only when the buffer changes (a checkpoint load)."""
        key = (self.weight_scale.data_ptr(), self.weight_scale._version)
        if key != self._scale_key:
            self._scale_value, self._scale_key = float(self.weight_scale), key
        return self._scale_value

    def _operands(self, weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(weights as the arrays compute with them, `tiling.tiles` of those), laid out again
        only when the weights change. The weights they were made from are kept, so no new
        weights can take their address meanwhile."""
        source = self._tile_source
        if (source is None or weight.data_ptr() != source.data_ptr()
                or weight._version != self._tile_version):
            self._tile_source, self._tile_version = weight.detach(), weight._version
            effective = self._on_wires(self._tile_source)
            self._tile_cache = (effective, *self.tiling.tiles(effective))
        return self._tile_cache

    def _on_wires(self, weight: torch.Tensor) -> torch.Tensor:
        """`weight` as resistive word and bit lines let the arrays see it (`tile.
        wire_resistance_ohm`; `weight` itself when 0): each cell's G loses the fraction a of
        `Tiling.ir_drop`, from the present conductances of both cells of the pair."""
        r = self.chip.cfg.tile.wire_resistance_ohm
        if r == 0:
            return weight
        dev = self.chip.cfg.device
        g0 = dev.g_min_siemens / dev.range_siemens
        g = (self.cell_u + g0).view(2, *self.shape)              # G / range, G+ then G-
        loss = torch.stack([self.tiling.ir_drop(r * dev.range_siemens * half) * half
                            for half in g])                      # a G / range
        return weight - self.weight_scale * (loss[0] - loss[1])

    # ------------------------------------------------------------------ programming

    def plan_moves(self, desired: torch.Tensor, current: torch.Tensor) -> Moves:
        """Which cells to program, to what, for a move from `current` to `desired` weights.

        Both flat (n,). Changes under `trigger_levels` program nothing (with the residual
        accumulator enabled they are kept there and add up): half a level, or for verified
        tuning its tolerance plus half a level, so that a weight the verify loop left within
        tolerance is not tuned again for that error alone. A programmed weight targets the
        nearest level k as a canonical pair: G+ at level max(k, 0), G- at level max(-k, 0),
        each clamped into the cell's own calibrated range [u_min, u_max] -- a level outside it
        is one the cell cannot hold, and pulsing towards it would only spend the pulse cap on
        every update (the nominal level is kept wherever the cell can hold it, so the weight
        stays on the nominal grid). A cell the controller believes within half a level of its
        target gets no tuning at all: the plan sees beliefs, never the true conductances.
        """
        level = np.float32(self._full_scale()) / np.float32(self.max_level)  # float32, as torch
        delta, sel = select_moves(desired, current, self.residual,
                                  np.float32(self.trigger_levels) * level)
        want, index, target = plan_targets(sel, delta, current, level, self.max_level,
                                           self.cell_u_min, self.cell_u_max, self.cell_belief)
        return Moves(sel, want, delta, index, target)

    def settle(self, moves: Moves, current: torch.Tensor) -> None:
        """After tuning: the residual keeps what the controller believes is still missing (from
        the planned cells' beliefs; what the range cannot hold is dropped, no windup at the
        bounds), and `current` (flat realised weights) is updated in place to the new realised
        weights (`settle_moves`).
        """
        kept = moves.delta if self.residual.numel() else self.residual
        settle_moves(moves.sel, moves.want, self.weight_scale, self.cell_belief, self.cell_u,
                     kept, current)
        if self.residual.numel() and moves.delta is not self.residual:  # CPU: it is already
            self.residual = moves.delta


def program_arrays(chip: Chip, jobs: list[tuple[CrossbarArray, torch.Tensor, torch.Tensor]],
                   read_taken: bool = False) -> None:
    """Move several arrays towards new weights in one tuning pass (pulses and verify reads
    charged to the ledger's current phase; `read_taken`: as for `Tuner.tune`).

    `jobs`: (array, desired flat weights, current flat weights). `current` must be the array's
    realised weights; it is updated in place to the new realised weights.
    """
    moves = [array.plan_moves(desired, current) for array, desired, current in jobs]
    chip.tuner.tune_jobs([(array.cells, m.index, m.target)
                          for (array, _, _), m in zip(jobs, moves)], read_taken)
    for (array, _, current), m in zip(jobs, moves):
        array.settle(m, current)
