"""Drop-in torch layers whose weights live on RRAM crossbars, and the converter from float nets.

`RRAMLinear` / `RRAMConv2d` hold their conductance state as buffers (so `state_dict` carries
every cell: conductance, bounds, step scale, stuck flag, pulse count) and expose the realised
weights as the `weight` parameter: after every programming step `weight` is recomputed from
the conductances, w = scale * (u+ - u-), never kept as a hidden float copy. Autograd runs the
forward MVM on the arrays, the input gradient through the transposed arrays, and hands the
weight gradient (digital outer products) to the optimizer; `rlime.optim.TunedOptimizer`
then programs the change by tuning.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from rlime.hw.chip import Chip
from rlime.hw.crossbar import ConvTiling, LinearTiling, MVMCounts, Periphery, pixel_values
from rlime.hw.device import CellSet, fresh_cells
from rlime.hw.moves import select_moves


class CrossbarLayer(nn.Module):
    """Conductance state and programming of one weight tensor (subclasses add the MVMs)."""

    def _init_cells(self, chip: Chip, weight: torch.Tensor) -> None:
        self.chip = chip
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
        self.trigger_levels = 0.5 + (cfg.tuning.tolerance_levels if verified else 0.0)
        # calibrated ADC ranges per tile, forward (row tiles) and backward (column tiles)
        self.register_buffer("adc_range_forward", torch.zeros(self.tiling.row_tiles,
                                                              device=chip.device))
        self.register_buffer("adc_range_backward", torch.zeros(self.tiling.col_tiles,
                                                               device=chip.device))
        self.weight = nn.Parameter(self.realised())
        self._tile_key: tuple | None = None
        self._scale_key: tuple | None = None

    @property
    def cells(self) -> CellSet:
        return CellSet(self.cell_u, self.cell_u_min, self.cell_u_max, self.cell_step_scale,
                       self.cell_stuck, self.cell_pulses)

    def realised(self) -> torch.Tensor:
        """The weights the conductances encode, shape of `weight`."""
        n = self.cell_u.numel() // 2
        return (self.weight_scale * (self.cell_u[:n] - self.cell_u[n:])).view(self._weight_shape)

    def plan(self, desired: torch.Tensor, current: torch.Tensor) -> "Plan":
        """Which cells to program, to what, for a move from `current` to `desired` weights.

        Both flat (n,). Changes under `trigger_levels` program nothing (with the residual
        accumulator enabled they are kept there and add up): half a level, or for verified
        tuning its tolerance plus half a level, so that a weight the verify loop left within
        tolerance is not tuned again for that error alone. A programmed weight targets the
        nearest level k as a canonical pair: G+ at level max(k, 0), G- at level max(-k, 0);
        a cell already within half a level of its target gets no tuning at all.
        """
        level = self.weight_scale / self.max_level
        delta, sel = select_moves(desired, current, self.residual, self.trigger_levels * level)
        want = current.index_select(0, sel) + delta.index_select(0, sel)
        k = torch.round(want / level).clamp_(-self.max_level, self.max_level)
        index = torch.cat([sel, sel + current.numel()])
        target = torch.cat([k.clamp(min=0), (-k).clamp(min=0)]) / self.max_level
        now = self.cell_u.index_select(0, index)
        tune = ((target - now).abs() * self.max_level >= 0.5).nonzero().squeeze(1)
        return Plan(sel, want, delta, index, target, tune)

    def settle(self, plan: "Plan", known: torch.Tensor, current: torch.Tensor) -> None:
        """After tuning: the residual keeps what the controller knows is still missing, and
        `current` (flat realised weights, updated in place) becomes `weight`.

        `known` (per planned cell, normalised conductance) is what the controller believes the
        cells hold: the last verify read, or the target where it fired open-loop or did not
        tune the cell.
        """
        if self.residual.numel():
            # what the range cannot hold is dropped, not kept (no windup at the bounds)
            m = plan.sel.numel()
            known_weight = self.weight_scale * (known[:m] - known[m:])
            reachable = torch.minimum(torch.maximum(plan.want, -self.weight_scale), self.weight_scale)
            plan.delta.index_copy_(0, plan.sel, reachable - known_weight)
            self.residual = plan.delta
        n, u = current.numel(), self.cell_u
        current.index_copy_(0, plan.sel, self.weight_scale * (u.index_select(0, plan.sel)
                                                              - u.index_select(0, plan.sel + n)))
        self.weight.data = current.view(self._weight_shape)

    def _full_scale(self) -> float:
        """`weight_scale` as a Python float for the periphery's scalar arithmetic, read from its
        device again only when the buffer changes (a checkpoint load)."""
        key = (self.weight_scale.data_ptr(), self.weight_scale._version)
        if key != self._scale_key:
            self._scale_value, self._scale_key = float(self.weight_scale), key
        return self._scale_value

    def _tiles(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (weight.data_ptr(), weight._version)
        if key != self._tile_key:
            self._tile_cache = self.tiling.tiles(weight.detach())
            self._tile_key = key
        return self._tile_cache

    def _mvm(self, x: torch.Tensor) -> torch.Tensor:
        """The forward MVM of x; through autograd only when a gradient can be wanted (acting
        and target evaluation skip its bookkeeping)."""
        if torch.is_grad_enabled():
            return _CrossbarMVM.apply(x, self.weight, self)
        return self._forward_mvm(x, self.weight)[0]

    def _charge(self, counts: MVMCounts, batch: int, phase: str | None) -> None:
        self.chip.ledger.add_row(counts.row * batch, phase)


@dataclass
class Plan:
    """A layer's programming job: weights `sel` (flat) move towards `want`; their cells
    `index` (G+ cells, then G- cells) towards `target` (normalised conductance), of which the
    cells at positions `tune` need pulses. `delta` is the full change, residual included."""

    sel: torch.Tensor
    want: torch.Tensor
    delta: torch.Tensor
    index: torch.Tensor
    target: torch.Tensor
    tune: torch.Tensor


def program(chip: Chip, jobs: list[tuple[CrossbarLayer, torch.Tensor, torch.Tensor]]) -> None:
    """Program several layers in one tuning pass; charged to the ledger's current phase.

    `jobs`: (layer, desired flat weights, current flat weights). `current` must be the layer's
    realised weights; it is updated in place to the new realised weights and becomes the
    layer's `weight`.
    """
    plans = [layer.plan(desired, current) for layer, desired, current in jobs]
    seen = chip.tuner.program_jobs([(layer.cells, plan.index.index_select(0, plan.tune),
                                     plan.target.index_select(0, plan.tune))
                                    for (layer, _, _), plan in zip(jobs, plans)])
    for (layer, _, current), plan, last_read in zip(jobs, plans, seen):
        layer.settle(plan, plan.target.index_copy(0, plan.tune, last_read), current)


class _CrossbarMVM(torch.autograd.Function):
    """y = W x on the arrays; backward: transposed arrays for dx, digital outer product for dW."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, layer: "CrossbarLayer"):
        y, x_codes, x_unit = layer._forward_mvm(x, weight)
        ctx.layer = layer
        ctx.save_for_backward(x_codes, x_unit, weight)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # The error enters the backward periphery once: its DAC codes drive the transposed
        # arrays and are the operands of the digital weight-gradient outer product.
        x_codes, x_unit, weight = ctx.saved_tensors
        layer = ctx.layer
        per = layer.chip.backward_periphery
        g_codes, g_unit = (grad, None) if per.exact else per.dac(grad)
        grad_x = (_scaled(layer._backward_mvm(g_codes, weight, x_codes.shape), g_unit)
                  if ctx.needs_input_grad[0] else None)
        grad_w = None
        if ctx.needs_input_grad[1]:
            # sum_b (g_b u_b)(x_b v_b)^T: the per-sample units scale the error operand
            grad_w = layer._weight_grad(x_codes, _scaled(_scaled(g_codes, g_unit), x_unit))
        return grad_x, grad_w, None


def _scaled(t: torch.Tensor, unit: torch.Tensor | None) -> torch.Tensor:
    """t (B, ...) times a per-sample DAC unit (B, 1, ...); t itself when exact (unit None)."""
    return t if unit is None else t * unit


class RRAMLinear(CrossbarLayer):
    """nn.Linear on crossbars; the bias is added in digital periphery."""

    def __init__(self, linear: nn.Linear, chip: Chip) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self._weight_shape = linear.weight.shape
        tile = chip.cfg.tile
        self.tiling = LinearTiling(self.in_features, self.out_features, tile.rows, tile.cols,
                                   chip.device)
        self._counts = self.tiling.counts(chip.cfg.forward, chip.cfg.backward)
        self._init_cells(chip, linear.weight)
        self.bias = (nn.Parameter(linear.bias.detach().clone().to(chip.device))
                     if linear.bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = self._mvm(x.reshape(-1, self.in_features))
        y = y.view(*lead, self.out_features)
        if self.bias is not None:
            self.chip.ledger.add("digital_ops", y.numel())
            y = y + self.bias
        return y

    def _forward_mvm(self, x: torch.Tensor, weight: torch.Tensor):
        self._charge(self._counts[0], x.shape[0], None)
        per = self.chip.forward_periphery
        if per.exact:
            x = pixel_values(x)
            return F.linear(x, weight), x, None
        codes, unit = per.dac(x)
        partials = self.tiling.forward_partials(codes, weight)  # (T_r, B, out)
        y = self._convert(per, codes, partials, self.tiling.rows, self.tiling.rows_used,
                          self.adc_range_forward)
        return y * unit, codes, unit

    def _backward_mvm(self, g: torch.Tensor, weight: torch.Tensor, x_shape: torch.Size):
        """The transposed MVM of g (DAC codes, or the error itself when exact)."""
        self._charge(self._counts[1], g.shape[0], "backward")
        per = self.chip.backward_periphery
        if per.exact:
            return g @ weight
        partials = self.tiling.backward_partials(g, weight)  # (T_c, B, in)
        return self._convert(per, g, partials, self.tiling.cols, self.tiling.cols_used,
                             self.adc_range_backward)

    def _convert(self, per: Periphery, codes: torch.Tensor, partials: torch.Tensor, lines: int,
                 used: torch.Tensor, ranges: torch.Tensor) -> torch.Tensor:
        """Read noise, ADC and digital sum of the partial sums (T, B, n) that DAC codes (B, m)
        drove -> (B, n) in code units."""
        return per.convert(partials, tile_dim=0, scale=self._full_scale(), lines=used,
                           ranges=ranges, drive_norms=lambda: self.tiling.input_norms(
                               codes, partials.shape[0], lines))

    def _weight_grad(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        self.chip.ledger.add("gradient_macs", g.shape[0] * self.weight.numel(), "backward")
        return g.t() @ x


class RRAMConv2d(CrossbarLayer):
    """nn.Conv2d (groups 1, dilation 1) on crossbars, channel-aligned row tiles."""

    def __init__(self, conv: nn.Conv2d, chip: Chip) -> None:
        super().__init__()
        if conv.groups != 1 or conv.dilation != (1, 1) or isinstance(conv.padding, str) \
                or conv.padding_mode != "zeros":
            raise ValueError(f"RRAMConv2d supports groups=1, dilation=1, numeric zero padding; "
                             f"got groups={conv.groups}, dilation={conv.dilation}, "
                             f"padding={conv.padding!r}, padding_mode={conv.padding_mode!r}")
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding
        self._weight_shape = conv.weight.shape
        tile = chip.cfg.tile
        self.tiling = ConvTiling(conv.in_channels, conv.out_channels, conv.kernel_size,
                                 conv.stride, conv.padding, tile.rows, tile.cols, chip.device)
        self._counts_by_positions: dict[int, tuple[MVMCounts, MVMCounts]] = {}
        self._init_cells(chip, conv.weight)
        self.bias = (nn.Parameter(conv.bias.detach().clone().to(chip.device))
                     if conv.bias is not None else None)

    def _counts(self, positions: int) -> tuple[MVMCounts, MVMCounts]:
        if positions not in self._counts_by_positions:
            cfg = self.chip.cfg
            self._counts_by_positions[positions] = self.tiling.counts_for(
                positions, cfg.forward, cfg.backward)
        return self._counts_by_positions[positions]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._mvm(x)
        if self.bias is not None:
            self.chip.ledger.add("digital_ops", y.numel())
            y = y + self.bias.view(1, -1, 1, 1)
        return y

    def _forward_mvm(self, x: torch.Tensor, weight: torch.Tensor):
        per = self.chip.forward_periphery
        tiling = self.tiling
        if per.exact:
            x = pixel_values(x)
            y = F.conv2d(x, weight, None, self.stride, self.padding)
            self._charge(self._counts(y.shape[2] * y.shape[3])[0], x.shape[0], None)
            return y, x, None
        codes, unit = per.dac(x, torch.channels_last)
        partials = tiling.partials(codes, self._tiles(weight)[0])  # (B, H', W', T, out)
        self._charge(self._counts(partials.shape[1] * partials.shape[2])[0], x.shape[0], None)
        y = per.convert(partials, tile_dim=3, scale=self._full_scale(), lines=tiling.rows_used,
                        ranges=self.adc_range_forward,
                        drive_norms=lambda: tiling.input_norms(codes))
        return y.permute(0, 3, 1, 2) * unit, codes, unit

    def _backward_mvm(self, g: torch.Tensor, weight: torch.Tensor, x_shape: torch.Size):
        """The transposed MVM of g (DAC codes, or the error itself when exact)."""
        self._charge(self._counts(g.shape[2] * g.shape[3])[1], g.shape[0], "backward")
        per = self.chip.backward_periphery
        if per.exact:
            return torch.nn.grad.conv2d_input(x_shape, weight, g, self.stride, self.padding)
        tiling = self.tiling
        partials = tiling.transposed_partials(g, self._tiles(weight)[1], x_shape)
        g_x = per.convert(partials, tile_dim=3, scale=self._full_scale(), lines=tiling.cols_used,
                          ranges=self.adc_range_backward,
                          drive_norms=lambda: tiling.error_norms(g, x_shape))
        return g_x.permute(0, 3, 1, 2)

    def _weight_grad(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        positions = g.shape[2] * g.shape[3]
        self.chip.ledger.add("gradient_macs", g.shape[0] * positions * self.weight.numel(),
                             "backward")
        return torch.nn.grad.conv2d_weight(x, self.weight.shape, g, self.stride, self.padding)


class PixelInput(nn.Module):
    """8-bit frames (uint8) entering a network -> float x / 255. On the chip (`to_rram`) the
    frames pass through unchanged and drive the next crossbar layer's DACs as 8-bit codes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_values(x)


class _PixelCodes(nn.Module):
    """PixelInput on the chip: uint8 frames stay codes (see `Periphery.dac`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class PeripheryReLU(nn.Module):
    """ReLU computed in digital periphery: one digital op per element, charged."""

    def __init__(self, chip: Chip) -> None:
        super().__init__()
        self.chip = chip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.chip.ledger.add("digital_ops", x.numel())
        return F.relu(x)


def to_rram(module: nn.Module, chip: Chip) -> nn.Module:
    """A copy of `module` with every nn.Linear / nn.Conv2d replaced by its RRAM twin.

    The initial weights are programmed through the chip's tuning scheme (phase `program`,
    counted). ReLUs become `PeripheryReLU`s (charged); other modules (flatten, input scaling)
    are kept as they are, moved to the chip's device.
    """
    layers: list[CrossbarLayer] = []
    weights: list[torch.Tensor] = []

    def convert(m: nn.Module) -> nn.Module:
        if isinstance(m, nn.Linear):
            layer: CrossbarLayer = RRAMLinear(m, chip)
        elif isinstance(m, nn.Conv2d):
            layer = RRAMConv2d(m, chip)
        elif isinstance(m, nn.ReLU):
            return PeripheryReLU(chip)
        elif isinstance(m, PixelInput):
            return _PixelCodes()
        else:
            for name, child in m.named_children():
                setattr(m, name, convert(child))
            return m
        layers.append(layer)
        weights.append(m.weight.detach().to(chip.device).reshape(-1).clone())
        return layer

    converted = convert(copy.deepcopy(module)).to(chip.device)
    with chip.ledger.in_phase("program"):
        program(chip, [(layer, w, layer.weight.detach().reshape(-1).clone())
                       for layer, w in zip(layers, weights)])
    for layer in layers:  # the initial weights are random: what was programmed is the start
        layer.residual.zero_()
    return converted


def crossbar_layers(module: nn.Module) -> list[CrossbarLayer]:
    return [m for m in module.modules() if isinstance(m, CrossbarLayer)]


def copy_to_new_arrays(module: nn.Module, chip: Chip) -> nn.Module:
    """A copy of an RRAM `module` placed on fresh arrays of the same chip (new cells with their
    own device-to-device spread and faults, no residual), its weights programmed through tuning
    to the module's realised weights (charged to the ledger's current phase)."""
    twin = copy.deepcopy(module)
    layers = crossbar_layers(twin)
    for layer in layers:
        cells = fresh_cells(layer.cell_u.numel() // 2, chip.cfg.device, chip.generator, chip.device)
        for name, value in vars(cells).items():
            setattr(layer, f"cell_{name}", value)
        layer.residual = layer.residual.new_zeros(0)
        layer.weight.data = layer.realised()
    sync_weights(chip, crossbar_layers(module), layers)
    return twin


def sync_weights(chip: Chip, sources: list[CrossbarLayer], targets: list[CrossbarLayer]) -> None:
    """Program `targets` towards the realised weights of `sources` (layer by layer, same shapes);
    only target cells more than half a level away get pulses."""
    program(chip, [(dst, src.weight.detach().reshape(-1), dst.weight.detach().reshape(-1).clone())
                   for src, dst in zip(sources, targets)])
