"""Tiled crossbar MVMs with their periphery, forward and transposed (backward).

A layer's weights W (out x in, for convolutions out x (C k k)) sit on tiles of at most
rows x cols cells: inputs drive rows, outputs are sensed on columns. Forward: each row tile
produces a partial sum per column that its ADC converts; partial sums are added digitally.
Backward (TIME's reuse): the error drives the same cells from the column side, each column
tile produces partial sums per row, converted by the same kind of ADC.

Periphery model (per direction, `ConverterConfig`): inputs are quantised by the DAC to
`input_bits` magnitude bits of their per-sample abs-max; each tile's partial sum gets read noise
(iid Gaussian on every cell of every bit-serial cycle's read, exactly summed in closed form, see
`Periphery.drive_squares`: additive, variance 2 sigma^2 scale^2 sum_i s_i for a differential
pair; proportional to G, sigma^2 scale^2 sum_i s_i ((g0 + u+_i)^2 + (g0 + u-_i)^2) -- NeuroSim
Cell.cpp IdealDevice::Read, I = V G (1 + N(0, sigma)) --, g0 = g_min / range), ADC noise, then
the ADC rounds it to `adc_bits` over its range: a calibrated per-tile range (running peak, see
`Periphery.convert`) or a fixed one, +-min(adc_bound, lines used) x full scale. All of this
happens in DAC code units (see `Periphery`), so every ADC range is per tile. The ledger counts
the bit-serial schedule (ceil(input_bits / dac_bits) cycles, each with one DAC drive per row and
one ADC conversion per column); the ADC rounding and its noise are applied once per tile
partial sum, to the shift-and-added result of the cycles (a simplification: per-cycle rounding
would add up to cycles x LSB^2 / 12 of quantisation variance in place of LSB^2 / 12).

Geometry and tile MVMs sit behind one interface, `Tiling`: `LinearTiling` (partial sums by
strided-view batched matmuls) and `ConvTiling`. Convolutions map channel-aligned: a row tile
holds floor(rows / (k k)) whole input channels (im2col rows of those channels), so a tile's
partial sums are a grouped convolution. `rlime.hw.array.CrossbarArray` runs both the same way.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from rlime.hw import converter_loops
from rlime.hw.config import ConverterConfig
from rlime.hw.counts import kinds_row


class Periphery:
    """DAC and ADC (plus read noise) of one MVM direction.

    Arrays are driven with DAC codes: an input x (B, ...) becomes codes c with x = c * unit up to
    the DAC's rounding, unit (B, 1, ...) per sample. Partial sums are formed and converted in
    code units, where the ADC range of a tile no longer depends on the sample, and the MVM
    result is scaled back by unit once, after the digital sum over tiles.

    On CPU the DAC pass and the ADC pass with its tile sum run as compiled loops
    (`rlime.hw.converter_loops`); elsewhere, or with `compiled` False, as tensor ops.
    """

    compiled = True  # on CPU, fuse the DAC and the ADC passes (rlime.hw.converter_loops)

    def __init__(self, cfg: ConverterConfig, read_sigma: float, generator: torch.Generator):
        self.cfg = cfg
        self.read_sigma = read_sigma
        self.generator = generator
        self.exact = (cfg.input_bits is None and cfg.adc_bits is None and cfg.adc_noise == 0
                      and read_sigma == 0)
        # the largest code magnitude: 2^bits - 1 levels of the abs-max, or 1 (unquantised x/amax)
        self.code_max = float(2**cfg.input_bits - 1) if cfg.input_bits is not None else 1.0

    def dac(self, x: torch.Tensor, memory_format: torch.memory_format = torch.preserve_format
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes, unit): x quantised per sample (dim 0) to `input_bits` magnitude bits of its
        abs-max (the sign sets the drive polarity); codes in [-code_max, code_max], unit =
        abs-max / code_max with x's rank, size 1 but in dim 0. The codes are laid out in
        `memory_format` (by default x's own layout).

        uint8 x are 8-bit codes already (value = code / 255, see `code_values`): with 8-bit
        inputs they drive the DACs as they are (unit 1/255), otherwise they are requantised
        from their values.
        """
        if x.dtype == torch.uint8:
            if self.cfg.input_bits == 8:
                codes = x.float()
                if memory_format != torch.preserve_format:
                    codes = codes.contiguous(memory_format=memory_format)
                unit = codes.new_full((x.shape[0],) + (1,) * (x.dim() - 1), 1.0 / 255.0)
                return codes, unit
            x = code_values(x)
        if self.compiled and converter_loops.handles(x):
            return converter_loops.dac(x, self.code_max, self.cfg.input_bits is not None,
                                       memory_format)
        amax = _abs_max(x.detach(), tuple(range(1, x.dim())), keepdim=True).clamp_min_(1e-12)
        unit = amax.div_(self.code_max)
        codes = torch.empty_like(x, memory_format=memory_format)
        torch.div(x, unit, out=codes)
        if self.cfg.input_bits is not None:
            codes.round_()
        return codes, unit

    def convert(self, partials: torch.Tensor, *, tile_dim: int, scale: float,
                lines: torch.Tensor, ranges: torch.Tensor,
                read_variance: Callable[[], torch.Tensor],
                unit: torch.Tensor | None = None) -> torch.Tensor:
        """ADC conversion of tile partial sums (code units), then their digital sum over tiles
        (`tile_dim` removed), times the per-sample DAC `unit` (B, 1, ...) when given (samples
        lead `partials`).

        `scale` is the weight full scale, `lines` (T,) the lines each tile uses. The range per
        tile, in units of code_max x scale (a full-scale input on a full-scale weight), is
        min(adc_bound, lines) when `adc_range` is "fixed"; when "calibrated" it is `ranges`
        (T,), a running peak of |partial sum| x adc_headroom kept by the layer and updated here
        in place (decaying by adc_decay per conversion); a tile's first conversion calibrates
        on itself. Then read noise, ADC noise and rounding to `adc_bits` over the range.
        `read_variance()` gives the read-noise variance of each partial sum in units of
        (read_sigma x scale)^2 (code^2 x range^2; broadcastable against `partials`); it is
        called only with read noise. `partials` must be a fresh contiguous tensor: it is
        overwritten.

        The running peak lags the weights: after an update that scales a tile's partial sums by
        k, a k > 1 clips the one conversion that sees it first (the range follows on the next),
        and a k < 1 keeps the old, coarser LSB until the peak has decayed, ln(k) / ln(adc_decay)
        conversions (693 for k = 1/2 at the default 0.999): up to log2(1/k) bits of resolution
        lost meanwhile, as a periodically, not continuously, recalibrated ADC would.
        """
        cfg = self.cfg
        if self.read_sigma > 0:  # iid noise on every cell read, summed exactly
            partials = partials + (self.read_sigma * scale) * read_variance().sqrt_() * self._randn(partials)
        out_shape = partials.shape[:tile_dim] + partials.shape[tile_dim + 1:]
        # (outer, T, inner): every per-tile operation below runs over contiguous rows
        grid = partials.view(math.prod(partials.shape[:tile_dim]), partials.shape[tile_dim], -1)
        fixed = lines.clamp(max=cfg.adc_bound) if cfg.adc_range == "fixed" else None
        full_scale = scale * self.code_max  # a full-scale input's partial on full-scale weights
        if (self.compiled and cfg.adc_bits is not None and cfg.adc_noise == 0
                and converter_loops.handles(grid)):
            half = 2 ** (cfg.adc_bits - 1)
            return converter_loops.adc(grid, ranges, fixed, cfg.adc_headroom / full_scale,
                                       cfg.adc_decay, full_scale / half, half,
                                       unit).view(out_shape)
        y = self._tensor_adc(grid, ranges, fixed, full_scale).view(out_shape)
        return y if unit is None else _per_sample(y, unit)

    def _tensor_adc(self, grid: torch.Tensor, ranges: torch.Tensor, fixed: torch.Tensor | None,
                    full_scale: float) -> torch.Tensor:
        """`convert` of a grid (outer, T, inner) in tensor ops, `full_scale` the partial sum of
        a full-scale input on full-scale weights: (outer, inner)."""
        cfg = self.cfg
        if fixed is not None:
            full = fixed
        else:
            peak = _tile_abs_max(grid.detach()).mul_(cfg.adc_headroom / full_scale)
            full = torch.where(ranges > 0, ranges, peak)
            torch.maximum(ranges.mul_(cfg.adc_decay), peak, out=ranges)
        if cfg.adc_noise > 0:
            grid = grid + _per_tile(full * (cfg.adc_noise * full_scale), grid) * self._randn(grid)
        if cfg.adc_bits is None:
            return _tile_sum(grid, grid.new_ones(grid.shape[1]))
        # integer ADC codes, weighted by their tile's LSB in the sum
        half = 2 ** (cfg.adc_bits - 1)
        lsb = full.mul_(full_scale / half)
        # a zero range: the tile has only seen zeros, which it converts to zero
        divisor = torch.where(lsb > 0, lsb, 1.0)
        codes = grid.div_(_per_tile(divisor, grid)).round_().clamp_(-half, half - 1)
        return _tile_sum(codes, lsb)

    def drive_squares(self, codes: torch.Tensor) -> torch.Tensor:
        """Per code, the read-noise weight of the cell it drives summed over the bit-serial
        cycles: an input of n bits drives k = dac_bits of them per cycle, digit d_c at place
        2^(k c), and each cycle's read draws fresh noise that the shift-and-add scales by the
        place, so the variance is sum_c (d_c 2^(k c))^2 x the cell's (not code^2, as one draw
        per partial sum would give: for a full-scale 8-bit code 255 it is 21845 against 65025).
        Unquantised inputs (input_bits None) have no digits: code^2."""
        if self.cfg.input_bits is None:
            return codes * codes
        base = float(2**self.cfg.dac_bits)
        rest, total, place = codes.abs(), torch.zeros_like(codes), 1.0
        for _ in range(self.cfg.cycles()):
            digit = torch.remainder(rest, base)
            total.add_((digit * place) ** 2)
            rest = torch.div(rest - digit, base)
            place *= base
        return total

    def _randn(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self.generator, device=like.device,
                           dtype=like.dtype)


def _per_sample(y: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """y (B, ...) with samples leading its memory, each sample scaled by its unit (B, 1, ...)."""
    return y.view(unit.shape[0], -1).mul_(unit.view(-1, 1)).view(y.shape)


def code_values(x: torch.Tensor) -> torch.Tensor:
    """uint8 8-bit codes as the values they stand for (x / 255); other inputs as they are."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def _abs_max(x: torch.Tensor, dims: tuple[int, ...], keepdim: bool = False) -> torch.Tensor:
    """max |x| over `dims` as two reductions: no |x| temporary, about twice as fast on CPU as
    abs().amax() (and several times faster than aminmax())."""
    return torch.maximum(x.amax(dim=dims, keepdim=keepdim),
                         x.amin(dim=dims, keepdim=keepdim).neg_())


def _tile_abs_max(grid: torch.Tensor) -> torch.Tensor:
    """(T,) max |x| per tile of a grid (outer, T, inner): first over outer, whose rows are
    contiguous (a vectorised column reduction), then over each tile's inner elements."""
    if grid.shape[0] == 1:
        return _abs_max(grid[0], (1,))
    return _abs_max(grid.reshape(grid.shape[0], -1), (0,)).view(grid.shape[1], -1).amax(1)


def _per_tile(values: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Per-tile values (T,) broadcastable against a grid (outer, T, inner). With several outer
    rows they are spelled out over inner: broadcasting along a middle dimension is several
    times slower on CPU than along the leading one."""
    tiles, inner = grid.shape[1:]
    if grid.shape[0] == 1:
        return values.view(1, tiles, 1)
    return values.repeat_interleave(inner).view(1, tiles, inner)


def _tiled_products(v: torch.Tensor, m: torch.Tensor, size: int) -> torch.Tensor:
    """(T, B, n): v (B, k) @ m (n, k)^T split into T = ceil(k / size) partial sums over
    consecutive chunks of `size` lines. Works on strided views of m (no copy of the weights):
    whole tiles in one batched matmul, a shorter last tile on its own, both written in place."""
    batch, k = v.shape
    full = k // size
    out = v.new_empty(-(-k // size), batch, m.shape[0])
    if full:
        tiles = m[:, : full * size].reshape(m.shape[0], full, size).permute(1, 2, 0)
        torch.bmm(v[:, : full * size].reshape(batch, full, size).transpose(0, 1), tiles,
                  out=out[:full])
    if k > full * size:
        torch.mm(v[:, full * size:], m[:, full * size:].t(), out=out[full])
    return out


def _tile_sum(grid: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(outer, inner): sum_t weights[t] * grid[:, t] over a grid (outer, T, inner), the digital
    shift-and-add of tile outputs.

    A single outer row goes through one matrix-vector product; otherwise the few tiles are added
    slice by slice, several times faster than a reduction over the short middle dimension.
    """
    if grid.shape[0] == 1:
        return (weights @ grid[0]).unsqueeze(0)
    tiles, lsbs = grid.unbind(1), weights.unbind(0)
    total = tiles[0] * lsbs[0]
    for tile, lsb in zip(tiles[1:], lsbs[1:]):
        total.addcmul_(tile, lsb)
    return total


def ir_drop_attenuation(rg: torch.Tensor, row_lines: int, col_lines: int,
                        rows: int) -> torch.Tensor:
    """First-order IR drop of resistive word and bit lines: the attenuation a (G_eff = G (1-a))
    of each cell of W (out x in, rg = r_wire x G per cell, dimensionless).

    Geometry: row tiles of `row_lines` input lines on `rows` physical rows, column tiles of
    `col_lines` output lines; word lines are driven from column 0's side, bit lines sensed past
    the last physical row (the periphery at one corner, as in aihwkit's IOParameters.ir_drop,
    whose first input is the farthest from the output). A wire segment of resistance r joins
    neighbouring cells and the last cell to the periphery. With every row driven, linearising
    in r G (first order; the circuit's exact solution is tested against it):

    * bit line of column j in a row tile: cell k's current crosses the segments from row
      max(p, k) to the sense amplifier, raising cell p's bit line by
      r sum_k V_k G_kj (rows - max(p, k)); summed over p, the output loses as if each G_kj
      were G_kj (1 - r sum_p G_pj (rows - max(p, k)));
    * word line of row i in a column tile: column l's current crosses segments 0..min(q, l),
      so cell q sees V_i (1 - r sum_l G_il (min(q, l) + 1)).

    The transposed MVM drives the bit lines from the same corner and senses the word lines
    there, which gives the same two sums, so both directions use one attenuation.
    """
    out, n_in = rg.shape
    row_tiles, n_in_padded = _split(n_in, row_lines)
    col_tiles, out_padded = _split(out, col_lines)
    g = _pad_dim(_pad_dim(rg, 1, n_in_padded), 0, out_padded)
    # bit lines: along the row lines p of each (column j, row tile)
    blocks = g.view(out_padded, row_tiles, row_lines)
    left = rows - torch.arange(row_lines, device=rg.device, dtype=rg.dtype)  # rows - p
    weighted = blocks * left
    bit = left * blocks.cumsum(-1) + (weighted.sum(-1, keepdim=True) - weighted.cumsum(-1))
    # word lines: along the columns q of each (column tile, input line i)
    blocks_t = g.view(col_tiles, col_lines, n_in_padded)
    pos = torch.arange(1, col_lines + 1, device=rg.device, dtype=rg.dtype).view(1, -1, 1)
    word = ((blocks_t * pos).cumsum(1)
            + pos * (blocks_t.sum(1, keepdim=True) - blocks_t.cumsum(1)))
    a = bit.view(out_padded, n_in_padded) + word.view(out_padded, n_in_padded)
    return a[:out, :n_in]


def _split(total: int, size: int) -> tuple[int, int]:
    """(tiles, padded length) for `total` lines on tiles of `size` lines."""
    tiles = -(-total // size)
    return tiles, tiles * size


@dataclass
class MVMCounts:
    """Per-sample operation counts of one MVM direction (multiply by the batch size)."""

    mvm_macs: int
    dac_conversions: int
    adc_conversions: int
    cell_reads: int
    partial_sum_adds: int
    buffer_bits: int

    def scaled(self, batch: int) -> dict[str, int]:
        counts = {f.name: getattr(self, f.name) * batch for f in dataclasses.fields(self)}
        counts["shift_adds"] = counts["adc_conversions"]
        return counts

    @functools.cached_property
    def row(self) -> np.ndarray:
        """Per-sample counts as a row over the ledger's kinds (for `Ledger.add_row`)."""
        return kinds_row(self.scaled(1))


def _mvm_counts(rows: int, cols: int, row_tiles: int, col_tiles: int, vectors: int,
                cfg: ConverterConfig) -> MVMCounts:
    """Counts for `vectors` input vectors of length `rows` on a rows x cols weight matrix.

    DAC: every row of every tile column is driven each cycle; ADC: every column of every row
    tile converts each cycle; both arrays of the differential pair are read.
    """
    cycles = cfg.cycles()
    bits = cfg.input_bits or 32
    return MVMCounts(
        mvm_macs=rows * cols * vectors,
        dac_conversions=rows * col_tiles * cycles * vectors,
        adc_conversions=cols * row_tiles * cycles * vectors,
        cell_reads=2 * rows * cols * cycles * vectors,
        partial_sum_adds=(row_tiles - 1) * cols * vectors,
        buffer_bits=(rows + cols) * bits * vectors,
    )


class Tiling(abc.ABC):
    """A weight matrix W (out x in; for a convolution out x (C k k)) on tiles of rows x cols
    cells, and the MVMs it takes part in. `LinearTiling` and `ConvTiling` implement one
    interface, so a `CrossbarArray` runs the same control flow for both.

    Partial sums hold the tile index at dim `tile_dim` (row tiles forward, column tiles
    transposed); `rows_used` (T_r,) and `cols_used` (T_c,) are the lines each tile uses. Inputs
    drive the DACs in `memory_format`. Shapes below: B samples, "..." the layer's own layout.
    """

    tile_dim: int
    memory_format: torch.memory_format

    def __init__(self, in_lines: int, out_lines: int, row_tiles: int, col_tiles: int,
                 rows_used: torch.Tensor, cols_used: torch.Tensor, lines_per_row_tile: int,
                 lines_per_col_tile: int, rows: int):
        self.in_lines, self.out_lines = in_lines, out_lines
        self.row_tiles, self.col_tiles = row_tiles, col_tiles
        self.rows_used, self.cols_used = rows_used, cols_used
        # W (out_lines x in_lines) row tile t holds input lines [t L_r, (t+1) L_r) on its first
        # L_r of `rows` physical rows; column tile t output lines [t L_c, (t+1) L_c)
        self.lines_per_row_tile, self.lines_per_col_tile = lines_per_row_tile, lines_per_col_tile
        self.physical_rows = rows

    def ir_drop(self, rg: torch.Tensor) -> torch.Tensor:
        """First-order IR-drop attenuation a of every cell (G_eff = G (1 - a)) from
        rg = r_wire x G (shape of W, dimensionless); see `ir_drop_attenuation`."""
        flat = rg.reshape(self.out_lines, self.in_lines)
        a = ir_drop_attenuation(flat, self.lines_per_row_tile, self.lines_per_col_tile,
                                self.physical_rows)
        return a.view(rg.shape)

    def counts(self, vectors: int, cfg_fwd: ConverterConfig,
               cfg_bwd: ConverterConfig) -> tuple[MVMCounts, MVMCounts]:
        """(forward, transposed) per-sample counts for `vectors` input vectors per sample."""
        fwd = _mvm_counts(self.in_lines, self.out_lines, self.row_tiles, self.col_tiles,
                          vectors, cfg_fwd)
        bwd = _mvm_counts(self.out_lines, self.in_lines, self.col_tiles, self.row_tiles,
                          vectors, cfg_bwd)
        return fwd, bwd

    @abc.abstractmethod
    def vectors(self, input_size: torch.Size) -> int:
        """Input vectors one sample of an input (B, ...) of `input_size` drives through W."""

    @abc.abstractmethod
    def tiles(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(forward, transposed) operands: W laid out for `partials` / `transposed_partials`."""

    @abc.abstractmethod
    def partials(self, codes: torch.Tensor, fwd: torch.Tensor) -> torch.Tensor:
        """Partial sums of input codes (B, ...) on every row tile (fresh, contiguous)."""

    @abc.abstractmethod
    def input_sums(self, squares: torch.Tensor) -> torch.Tensor:
        """Sum of per-input `squares` (shaped like the input codes) over the lines driving each
        forward partial sum (broadcastable against it)."""

    @abc.abstractmethod
    def transposed_partials(self, g: torch.Tensor, bwd: torch.Tensor,
                            input_size: torch.Size) -> torch.Tensor:
        """Partial sums of error codes g (B, ...) on every column tile (fresh, contiguous)."""

    @abc.abstractmethod
    def error_sums(self, squares: torch.Tensor, input_size: torch.Size) -> torch.Tensor:
        """Sum of per-error `squares` (shaped like the error codes) over the lines driving each
        transposed partial sum (broadcastable against it)."""

    @abc.abstractmethod
    def to_layout(self, y: torch.Tensor) -> torch.Tensor:
        """A result summed over tiles (`tile_dim` removed) in the layer's layout (a view)."""

    @abc.abstractmethod
    def exact(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """W x without periphery (float reference)."""

    @abc.abstractmethod
    def exact_transposed(self, g: torch.Tensor, w: torch.Tensor,
                         input_size: torch.Size) -> torch.Tensor:
        """W^T g without periphery, shaped `input_size` (float reference)."""

    @abc.abstractmethod
    def weight_grad(self, x: torch.Tensor, g: torch.Tensor, weight_size: torch.Size
                    ) -> torch.Tensor:
        """dW (`weight_size`): the digital outer products of errors g and inputs x."""


class LinearTiling(Tiling):
    """An in_features -> out_features weight (out x in); partial sums (T, B, n)."""

    tile_dim = 0
    memory_format = torch.preserve_format

    def __init__(self, in_features: int, out_features: int, rows: int, cols: int,
                 device: torch.device):
        row_tiles, _ = _split(in_features, rows)
        col_tiles, _ = _split(out_features, cols)
        super().__init__(in_features, out_features, row_tiles, col_tiles,
                         _lines_used(in_features, rows, row_tiles, device),
                         _lines_used(out_features, cols, col_tiles, device), rows, cols, rows)
        self.rows, self.cols = rows, cols

    def vectors(self, input_size: torch.Size) -> int:
        return 1

    def tiles(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(W, W^T) as views: the tiles are strided views of them (no copy)."""
        return w, w.t()

    def partials(self, codes: torch.Tensor, fwd: torch.Tensor) -> torch.Tensor:
        """(T_r, B, out) from x (B, in)."""
        return _tiled_products(codes, fwd, self.rows)

    def input_sums(self, squares: torch.Tensor) -> torch.Tensor:
        """(T_r, B, 1)."""
        return _slice_sums(squares, self.row_tiles, self.rows)

    def transposed_partials(self, g: torch.Tensor, bwd: torch.Tensor,
                            input_size: torch.Size) -> torch.Tensor:
        """(T_c, B, in) from g (B, out)."""
        return _tiled_products(g, bwd, self.cols)

    def error_sums(self, squares: torch.Tensor, input_size: torch.Size) -> torch.Tensor:
        """(T_c, B, 1)."""
        return _slice_sums(squares, self.col_tiles, self.cols)

    def to_layout(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def exact(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.linear(x, w)

    def exact_transposed(self, g: torch.Tensor, w: torch.Tensor,
                         input_size: torch.Size) -> torch.Tensor:
        return g @ w

    def weight_grad(self, x: torch.Tensor, g: torch.Tensor, weight_size: torch.Size
                    ) -> torch.Tensor:
        return g.t() @ x


def _slice_sums(x: torch.Tensor, n_tiles: int, lines: int) -> torch.Tensor:
    """(T, B, 1) sum of each tile's slice of `lines` elements of x (B, n)."""
    x = _pad_dim(x, 1, n_tiles * lines)
    return x.view(x.shape[0], n_tiles, lines).sum(-1).t().unsqueeze(-1)


class ConvTiling(Tiling):
    """Channel-aligned tiling of a Conv2d weight (out, C, k, k); stride/padding as torch's.
    Partial sums (B, H, W, T, n): views of channels-last grouped (transposed) convolutions."""

    tile_dim = 3
    memory_format = torch.channels_last

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int],
                 stride: tuple[int, int], padding: tuple[int, int], rows: int, cols: int,
                 device: torch.device):
        area = kernel[0] * kernel[1]
        if area > rows:
            raise ValueError(f"a {kernel[0]}x{kernel[1]} kernel needs {area} rows per input "
                             f"channel but a tile has {rows}; use tile rows >= {area}")
        channels_per_tile = min(rows // area, in_channels)
        row_tiles, self.channels_padded = _split(in_channels, channels_per_tile)
        out_per_tile = min(cols, out_channels)
        col_tiles, self.out_padded = _split(out_channels, out_per_tile)
        super().__init__(in_channels * area, out_channels, row_tiles, col_tiles,
                         _lines_used(in_channels, channels_per_tile, row_tiles, device) * area,
                         _lines_used(out_channels, out_per_tile, col_tiles, device),
                         channels_per_tile * area, out_per_tile, rows)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel, self.stride, self.padding, self.area = kernel, stride, padding, area
        self.channels_per_tile, self.out_per_tile = channels_per_tile, out_per_tile

    def vectors(self, input_size: torch.Size) -> int:
        """Output positions H' x W'."""
        return math.prod((input_size[2 + i] + 2 * self.padding[i] - self.kernel[i])
                         // self.stride[i] + 1 for i in range(2))

    def tiles(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(grouped forward weight (T_r*out, C/T_r, k, k), grouped transposed weight), both
        channels-last copies."""
        o, c = self.out_channels, self.channels_per_tile
        wp = _pad_dim(w, 1, self.channels_padded)
        fwd = (wp.view(o, self.row_tiles, c, *self.kernel).transpose(0, 1)
               .reshape(self.row_tiles * o, c, *self.kernel)
               .contiguous(memory_format=torch.channels_last))
        bwd = _pad_dim(w, 0, self.out_padded).contiguous(memory_format=torch.channels_last)
        return fwd, bwd

    def partials(self, codes: torch.Tensor, fwd: torch.Tensor) -> torch.Tensor:
        """(B, H', W', T_r, out) from x (B, C, H, W) (channels-last grouped convolution:
        several times faster on CPU than the NCHW one)."""
        x = _channels_last(_pad_dim(codes, 1, self.channels_padded))
        y = F.conv2d(x, fwd, None, self.stride, self.padding, 1, self.row_tiles)
        return _tiles_last(y, self.row_tiles)

    def input_sums(self, squares: torch.Tensor) -> torch.Tensor:
        """(B, H', W', T_r, 1): sum over each tile's im2col patch."""
        x = _channels_last(_pad_dim(squares, 1, self.channels_padded))
        ones = x.new_ones(self.row_tiles, self.channels_per_tile, *self.kernel)
        s = F.conv2d(x, _channels_last(ones), None, self.stride, self.padding, 1, self.row_tiles)
        return _tiles_last(s, self.row_tiles)

    def transposed_partials(self, g: torch.Tensor, bwd: torch.Tensor,
                            input_size: torch.Size) -> torch.Tensor:
        """(B, H, W, T_c, C) from g (B, out, H', W'): the layout of the forward's activations,
        so the ReLU backward before it runs on matching layouts."""
        g = _channels_last(_pad_dim(g, 1, self.out_padded))
        y = F.conv_transpose2d(g, bwd, None, self.stride, self.padding,
                               self._output_padding(g, input_size), self.col_tiles)
        return _tiles_last(y, self.col_tiles)

    def error_sums(self, squares: torch.Tensor, input_size: torch.Size) -> torch.Tensor:
        """(B, H, W, T_c, 1): sum over the errors driving each input position's cells."""
        g = _channels_last(_pad_dim(squares, 1, self.out_padded))
        ones = g.new_ones(self.out_padded, 1, *self.kernel)
        s = F.conv_transpose2d(g, ones, None, self.stride, self.padding,
                               self._output_padding(g, input_size), self.col_tiles)
        return _tiles_last(s, self.col_tiles)

    def to_layout(self, y: torch.Tensor) -> torch.Tensor:
        """(B, H, W, n) -> (B, n, H, W), channels-last."""
        return y.permute(0, 3, 1, 2)

    def exact(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, None, self.stride, self.padding)

    def exact_transposed(self, g: torch.Tensor, w: torch.Tensor,
                         input_size: torch.Size) -> torch.Tensor:
        return torch.nn.grad.conv2d_input(input_size, w, g, self.stride, self.padding)

    def weight_grad(self, x: torch.Tensor, g: torch.Tensor, weight_size: torch.Size
                    ) -> torch.Tensor:
        return torch.nn.grad.conv2d_weight(x, weight_size, g, self.stride, self.padding)

    def _output_padding(self, g: torch.Tensor, input_size: torch.Size) -> tuple[int, int]:
        """conv_transpose2d output padding that recovers the forward input's height/width."""
        return tuple(input_size[2 + i] - ((g.shape[2 + i] - 1) * self.stride[i]
                                          - 2 * self.padding[i] + self.kernel[i])
                     for i in range(2))


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _tiles_last(y: torch.Tensor, tiles: int) -> torch.Tensor:
    """A (B, tiles*n, H, W) tensor as a contiguous (B, H, W, tiles, n): a view when y is
    channels-last, a copy when a convolution returned it contiguous (torch does for a
    single-channel input, whose memory format is ambiguous)."""
    b, _, h, w = y.shape
    return y.permute(0, 2, 3, 1).contiguous().view(b, h, w, tiles, -1)


def _pad_dim(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """x zero-padded along `dim` to `size` (x itself when already that size)."""
    extra = size - x.shape[dim]
    if extra == 0:
        return x
    pad = [0, 0] * (x.dim() - 1 - dim) + [0, extra]
    return F.pad(x, pad)


def _lines_used(total: int, size: int, tiles: int, device: torch.device) -> torch.Tensor:
    used = torch.full((tiles,), float(size), device=device)
    used[-1] = total - size * (tiles - 1)
    return used
