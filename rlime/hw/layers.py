"""Drop-in torch layers whose weights live on RRAM crossbars, and the converter from float nets.

`RRAMLinear` / `RRAMConv2d` are thin modules over a `CrossbarArray` (`array`), which holds the
conductance state as buffers (so `state_dict` carries every cell: conductance, bounds, step
scale, stuck flag, pulse count, the controller's belief) and runs the MVMs. The layer exposes the realised weights as its
`weight` parameter: after every programming step `weight` is recomputed from the conductances,
w = scale * (u+ - u-), never kept as a hidden float copy. Autograd runs the forward MVM on the
arrays, the input gradient through the transposed arrays, and hands the weight gradient
(digital outer products) to the optimizer; `rlime.hw.optim.TunedOptimizer` then programs the
change by tuning.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from rlime.hw.array import CrossbarArray, program_arrays
from rlime.hw.chip import Chip
from rlime.hw.crossbar import ConvTiling, LinearTiling, Tiling, code_values
from rlime.hw.device import fresh_cells


def _array_state(name: str) -> property:
    """The array's buffer `name`, read and replaced through the layer."""
    return property(lambda layer: getattr(layer.array, name),
                    lambda layer, value: setattr(layer.array, name, value),
                    doc=f"`array.{name}`")


class CrossbarLayer(nn.Module):
    """A layer whose weight tensor lives on a `CrossbarArray` (`array`); the bias is digital.

    The array's cell buffers and weight scale can be read and replaced through the layer (the
    DRL mappings reset and count cells layer by layer).
    """

    cell_u = _array_state("cell_u")
    cell_u_min = _array_state("cell_u_min")
    cell_u_max = _array_state("cell_u_max")
    cell_step_scale = _array_state("cell_step_scale")
    cell_stuck = _array_state("cell_stuck")
    cell_pulses = _array_state("cell_pulses")
    cell_belief = _array_state("cell_belief")
    weight_scale = _array_state("weight_scale")

    def __init__(self, chip: Chip, weight: torch.Tensor, tiling: Tiling,
                 bias: torch.Tensor | None) -> None:
        super().__init__()
        self.chip = chip
        self.array = CrossbarArray(weight, tiling, chip)
        self.weight = nn.Parameter(self.array.realised())
        self.bias = nn.Parameter(bias.detach().clone().to(chip.device)) if bias is not None else None

    def realised(self) -> torch.Tensor:
        """The weights the array's conductances encode, shape of `weight`."""
        return self.array.realised()

    def _mvm(self, x: torch.Tensor) -> torch.Tensor:
        """The forward MVM of x; through autograd only when a gradient can be wanted (acting
        and target evaluation skip its bookkeeping)."""
        if torch.is_grad_enabled():
            return _CrossbarMVM.apply(x, self.weight, self.array)
        return self.array.mvm(x, self.weight)[0]

    def _add_bias(self, y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        self.chip.ledger.add("digital_ops", y.numel())
        return y + bias

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints from before the array was a submodule hold its buffers under the layer
        for name in self.array._buffers:
            if prefix + name in state_dict:
                state_dict[f"{prefix}array.{name}"] = state_dict.pop(prefix + name)
        # checkpoints from before the controller kept beliefs: it starts from one read of
        # every cell (uncharged, as loading a checkpoint is not hardware work)
        belief, u = f"{prefix}array.cell_belief", f"{prefix}array.cell_u"
        if belief not in state_dict and u in state_dict:
            state_dict[belief] = state_dict[u].clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class _CrossbarMVM(torch.autograd.Function):
    """y = W x on the arrays; backward: transposed arrays for dx, digital outer product for dW."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, array: CrossbarArray):
        y, x_codes, x_unit = array.mvm(x, weight)
        ctx.array = array
        ctx.save_for_backward(x_codes, x_unit, weight)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # The error enters the backward periphery once: its DAC codes drive the transposed
        # arrays and are the operands of the digital weight-gradient outer product.
        x_codes, x_unit, weight = ctx.saved_tensors
        array = ctx.array
        g_codes, g_unit = array.error_codes(grad)
        grad_x = (array.transposed_mvm(g_codes, g_unit, weight, x_codes.shape)
                  if ctx.needs_input_grad[0] else None)
        grad_w = None
        if ctx.needs_input_grad[1]:
            # sum_b (g_b u_b)(x_b v_b)^T: the per-sample units scale the error operand
            grad_w = array.weight_grad(x_codes, _scaled(_scaled(g_codes, g_unit), x_unit))
        return grad_x, grad_w, None


def _scaled(t: torch.Tensor, unit: torch.Tensor | None) -> torch.Tensor:
    """t (B, ...) times a per-sample DAC unit (B, 1, ...); t itself when exact (unit None)."""
    return t if unit is None else t * unit


class RRAMLinear(CrossbarLayer):
    """nn.Linear on crossbars."""

    def __init__(self, linear: nn.Linear, chip: Chip) -> None:
        tile = chip.cfg.tile
        tiling = LinearTiling(linear.in_features, linear.out_features, tile.rows, tile.cols,
                              chip.device)
        super().__init__(chip, linear.weight, tiling, linear.bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = self._mvm(x.reshape(-1, self.in_features)).view(*lead, self.out_features)
        return y if self.bias is None else self._add_bias(y, self.bias)


class RRAMConv2d(CrossbarLayer):
    """nn.Conv2d (groups 1, dilation 1) on crossbars, channel-aligned row tiles."""

    def __init__(self, conv: nn.Conv2d, chip: Chip) -> None:
        if conv.groups != 1 or conv.dilation != (1, 1) or isinstance(conv.padding, str) \
                or conv.padding_mode != "zeros":
            raise ValueError(f"RRAMConv2d supports groups=1, dilation=1, numeric zero padding; "
                             f"got groups={conv.groups}, dilation={conv.dilation}, "
                             f"padding={conv.padding!r}, padding_mode={conv.padding_mode!r}")
        tile = chip.cfg.tile
        tiling = ConvTiling(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                            conv.padding, tile.rows, tile.cols, chip.device)
        super().__init__(chip, conv.weight, tiling, conv.bias)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._mvm(x)
        return y if self.bias is None else self._add_bias(y, self.bias.view(1, -1, 1, 1))


class CodeInput(nn.Module):
    """Inputs that arrive as 8-bit codes (uint8, value = code / 255) -> float values. On the
    chip (`to_rram`) they pass unchanged and drive the next crossbar layer's DACs as codes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return code_values(x)


class _Codes(nn.Module):
    """CodeInput on the chip: uint8 inputs stay codes (see `Periphery.dac`)."""

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


class PeripheryPool(nn.Module):
    """Max or average pooling (nn.MaxPool2d / nn.AvgPool2d) computed in digital periphery: one
    digital op per window element of every output (compares or adds), charged."""

    def __init__(self, pool: nn.Module, chip: Chip) -> None:
        super().__init__()
        self.pool = pool
        self.chip = chip
        k = pool.kernel_size
        self.window = k * k if isinstance(k, int) else k[0] * k[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(x)
        self.chip.ledger.add("digital_ops", y.numel() * self.window)
        return y


def program_weights(chip: Chip, jobs: list[tuple[CrossbarLayer, torch.Tensor, torch.Tensor]],
                    read_taken: bool = False) -> None:
    """Program several layers' weights in one tuning pass (`program_arrays`, `read_taken` as
    there); charged to the ledger's current phase.

    `jobs`: (layer, desired flat weights, current flat weights). `current` must be the layer's
    realised weights; it is updated in place to the new realised weights and becomes the
    layer's `weight`.
    """
    program_arrays(chip, [(layer.array, desired, current) for layer, desired, current in jobs],
                   read_taken)
    for layer, _, current in jobs:
        layer.weight.data = current.view(layer.weight.shape)


def to_rram(module: nn.Module, chip: Chip) -> nn.Module:
    """A copy of `module` with every nn.Linear / nn.Conv2d replaced by its RRAM twin.

    The initial weights are programmed through the chip's tuning scheme (phase `program`,
    counted). ReLUs become `PeripheryReLU`s and max / average pooling `PeripheryPool`s
    (charged); other modules (flatten, input scaling) are kept as they are, moved to the chip's
    device.
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
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            return PeripheryPool(m, chip)
        elif isinstance(m, CodeInput):
            return _Codes()
        else:
            for name, child in m.named_children():
                setattr(m, name, convert(child))
            return m
        layers.append(layer)
        weights.append(m.weight.detach().to(chip.device).reshape(-1).clone())
        return layer

    converted = convert(copy.deepcopy(module)).to(chip.device)
    with chip.ledger.in_phase("program"):
        program_weights(chip, [(layer, w, layer.weight.detach().reshape(-1).clone())
                               for layer, w in zip(layers, weights)])
    for layer in layers:  # the initial weights are random: what was programmed is the start
        layer.array.residual.zero_()
    return converted


def crossbar_layers(module: nn.Module) -> list[CrossbarLayer]:
    return [m for m in module.modules() if isinstance(m, CrossbarLayer)]


def copy_to_new_arrays(module: nn.Module, chip: Chip) -> nn.Module:
    """A copy of an RRAM `module` placed on fresh arrays of the same chip (new cells with their
    own device-to-device spread and faults, no residual), its weights programmed through tuning
    to the module's realised weights (charged to the ledger's current phase)."""
    # what the twin replaces is not copied: cells, residual, the source's operand caches
    skip = {id(t): None for layer in crossbar_layers(module) for t in layer.array.own_state()}
    twin = copy.deepcopy(module, skip)
    layers = crossbar_layers(twin)
    for layer in layers:
        array = layer.array
        cells = fresh_cells(layer.weight.numel(), chip.cfg.device, chip.generator,
                            chip.device)
        for name, value in vars(cells).items():
            setattr(array, f"cell_{name}", value)
        array.residual = torch.zeros(0, device=chip.device)
        layer.weight.data = layer.realised()
    sync_weights(chip, crossbar_layers(module), layers)
    return twin


def sync_weights(chip: Chip, sources: list[CrossbarLayer], targets: list[CrossbarLayer],
                 read_taken: bool = False) -> None:
    """Program `targets` towards the realised weights of `sources` (layer by layer, same shapes);
    only target cells more than half a level away get pulses (`read_taken` as for
    `Tuner.tune`)."""
    program_weights(chip, [(dst, src.weight.detach().reshape(-1),
                            dst.weight.detach().reshape(-1).clone())
                           for src, dst in zip(sources, targets)], read_taken)
