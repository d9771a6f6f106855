"""The DAC and ADC passes of `rlime.hw.crossbar.Periphery`, each fused into one compiled loop
for CPU.

In tensor ops the DAC is six passes (abs-max as two reductions, clamp, divide, round) and the
ADC about a dozen per MVM (per-tile peak, range update, divide, round, clamp, weighted tile
sum, per-sample scaling), each a dispatch and a fresh temporary: on the small MVMs of a DQN
step the dispatches cost more than the arithmetic. Here each is one numba loop over the data,
computing the same float32 operations in the same order as the tensor ops of `Periphery`
(`tests/test_converter_loops.py` checks them against each other): float32 division by the unit, round
half to even, the peak x headroom / full scale, the range decay. The one difference is the
digital sum over tiles, accumulated tile by tile without fused multiply-adds, where the tensor
path's matrix-vector product may round a last bit differently.

Elsewhere (CUDA) `Periphery` runs its tensor ops.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

_AMAX_FLOOR = np.float32(1e-12)  # the DAC's abs-max floor (an all-zero input keeps unit > 0)


@numba.njit(cache=True, nogil=True)
def _abs_max_bits(row):  # pragma: no cover - compiled
    """max |row| over a contiguous 1-d float32 array, as the bits of a float32 (`_as_float`).
    Compared as integers: with the sign bit cleared, a float32's bits order as its magnitude
    does (a NaN wins, as in torch's max), and an integer max vectorises where a float one,
    NaN-aware, does not."""
    bits = row.view(np.int32)
    peak = np.int32(0)
    for j in range(bits.shape[0]):
        a = bits[j] & np.int32(0x7FFFFFFF)
        peak = a if a > peak else peak
    return peak


@numba.njit(cache=True, nogil=True)
def _tile_peak_bits(grid):  # pragma: no cover - compiled
    """Per tile t of a grid (O, T, I), max |grid[:, t, :]| as float32 bits (`_abs_max_bits`).
    Several outer rows are first folded elementwise into one row of T x I maxima (a vectorised
    integer max), so short tiles (a convolution's I output channels) need no short reductions."""
    outer, tiles, inner = grid.shape
    peaks = np.empty(tiles, np.int32)
    if outer == 1:
        for t in range(tiles):
            peaks[t] = _abs_max_bits(grid[0, t])
        return peaks
    rows = grid.reshape(outer, tiles * inner).view(np.int32)
    fold = np.zeros(tiles * inner, np.int32)
    for o in range(outer):
        row = rows[o]
        for k in range(fold.shape[0]):
            a = row[k] & np.int32(0x7FFFFFFF)
            fold[k] = a if a > fold[k] else fold[k]
    for t in range(tiles):
        peak = np.int32(0)
        for i in range(t * inner, (t + 1) * inner):
            peak = fold[i] if fold[i] > peak else peak
        peaks[t] = peak
    return peaks


@numba.njit(cache=True, nogil=True)
def _as_float(bits):  # pragma: no cover - compiled
    return np.full(1, bits, np.int32).view(np.float32)[0]


# The arithmetic loops below keep IEEE semantics (no fast-math: no reciprocal for a division,
# no fused multiply-add), so they compute what the tensor ops compute.
@numba.njit(cache=True, nogil=True)
def _dac(rows, code_max, quantise, codes, unit):  # pragma: no cover - compiled
    """Per row b of `rows` (B, M): unit[b] = max(max_j |x|, floor) / code_max; codes = x / unit,
    rounded half to even when `quantise`."""
    for b in range(rows.shape[0]):
        u = max(_as_float(_abs_max_bits(rows[b])), _AMAX_FLOOR) / code_max
        unit[b] = u
        row, out = rows[b], codes[b]
        if quantise:
            for j in range(row.shape[0]):
                out[j] = np.rint(row[j] / u)
        else:
            for j in range(row.shape[0]):
                out[j] = row[j] / u


@numba.njit(cache=True, nogil=True)
def _adc(grid, ranges, fixed_full, peak_factor, decay, lsb_factor, half, sample_unit,
         out):  # pragma: no cover - compiled
    """ADC of a grid (O, T, I) of partial sums, summed over T into out (O, I).

    Per tile t, the range `full` in units of the full scale: `fixed_full[t]` when given (size
    T), else the calibrated one -- `ranges[t]` if > 0, else the tile's own peak |partial| x
    `peak_factor` -- and `ranges[t]` becomes max(ranges[t] x decay, that peak). LSB = full x
    `lsb_factor`; each partial is rounded to round(p / LSB) clamped into [-half, half - 1] and
    weighted by its LSB in the sum, tile by tile. With `sample_unit` (B,) given, each output is
    then scaled by its sample's unit (samples lead the flat order of out)."""
    outer, tiles, inner = grid.shape
    lsb = np.empty(tiles, np.float32)
    peaks = _tile_peak_bits(grid) if fixed_full.shape[0] == 0 else np.empty(0, np.int32)
    for t in range(tiles):
        if fixed_full.shape[0] > 0:
            lsb[t] = fixed_full[t] * lsb_factor
            continue
        peak = _as_float(peaks[t]) * peak_factor
        full = ranges[t] if ranges[t] > 0 else peak
        ranges[t] = max(ranges[t] * decay, peak)
        lsb[t] = full * lsb_factor
    lo, hi = np.float32(-half), np.float32(half - 1)
    for o in range(outer):
        total = out[o]
        for t in range(tiles):
            # a zero range: the tile has only seen zeros, which it converts to zero
            step, part, divisor = lsb[t], grid[o, t], lsb[t] if lsb[t] > 0 else np.float32(1.0)
            if t == 0:
                for i in range(inner):
                    total[i] = min(max(np.rint(part[i] / divisor), lo), hi) * step
            else:
                for i in range(inner):
                    total[i] = total[i] + min(max(np.rint(part[i] / divisor), lo), hi) * step
    if sample_unit.shape[0] > 0:
        flat = out.reshape(-1)
        per_sample = flat.shape[0] // sample_unit.shape[0]
        for b in range(sample_unit.shape[0]):
            u = sample_unit[b]
            for k in range(b * per_sample, (b + 1) * per_sample):
                flat[k] = flat[k] * u


_EMPTY = np.empty(0, np.float32)


def handles(t: torch.Tensor) -> bool:
    """Whether the compiled loops take `t`: float32 on the CPU."""
    return t.device.type == "cpu" and t.dtype == torch.float32


def dac(x: torch.Tensor, code_max: float, quantise: bool,
        memory_format: torch.memory_format) -> tuple[torch.Tensor, torch.Tensor]:
    """`Periphery.dac` of a float32 CPU x (B, ...): (codes laid out in `memory_format`, unit
    (B, 1, ...))."""
    x = x.detach()
    if memory_format == torch.preserve_format:
        memory_format = (torch.channels_last if x.dim() == 4 and not x.is_contiguous()
                         and x.is_contiguous(memory_format=torch.channels_last)
                         else torch.contiguous_format)
    x = x.contiguous(memory_format=memory_format)
    codes = torch.empty_like(x)
    unit = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1))
    _dac(_sample_rows(x), np.float32(code_max), quantise, _sample_rows(codes),
         unit.view(-1).numpy())
    return codes, unit


def adc(grid: torch.Tensor, ranges: torch.Tensor, fixed_full: torch.Tensor | None,
        peak_factor: float, decay: float, lsb_factor: float, half: int,
        sample_unit: torch.Tensor | None) -> torch.Tensor:
    """`Periphery.convert`'s ADC and tile sum of a contiguous float32 grid (O, T, I): (O, I).
    `ranges` (T,) is updated in place unless `fixed_full` (T,) gives the ranges."""
    shape = (grid.shape[0], grid.shape[2])
    out = grid.new_empty(shape)
    if grid.shape[1] == 1:  # one tile: a single run over the data (no short rows)
        grid, out = grid.view(1, 1, -1), out.view(1, -1)
    _adc(grid.detach().numpy(), ranges.numpy(),
         _EMPTY if fixed_full is None else fixed_full.numpy(), np.float32(peak_factor),
         np.float32(decay), np.float32(lsb_factor), half,
         _EMPTY if sample_unit is None else sample_unit.reshape(-1).numpy(), out.numpy())
    return out.view(shape)


def _sample_rows(t: torch.Tensor) -> np.ndarray:
    """t (B, ...), dense in its layout (contiguous or channels-last), as a (B, M) array over its
    memory (no copy)."""
    if t.dim() == 4 and not t.is_contiguous():
        t = t.permute(0, 2, 3, 1)
    return t.reshape(t.shape[0], -1).numpy()
