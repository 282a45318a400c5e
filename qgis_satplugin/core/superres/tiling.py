"""Tiles over a raster and the windows that blend them back without seams.

The raster is padded by ``margin`` pixels on every side (by reflection, see
:mod:`.input_strips`) and covered by equal tiles that overlap by at least ``overlap``
pixels; the last tile of a row or column is aligned to the end rather than shrunk, so
every tile has one shape and batches stack.

A model whose reflectance is kept over blocks of several input pixels (band sharpening:
2 x 2 blocks of a 20 m band on a 10 m grid) needs every tile row and column to start on a
block: with ``align`` > 1, the margin, the tile and its step are multiples of ``align``, and
the bottom and right are padded further (by reflection too) up to a multiple of it.

Blending weights form a partition of unity along each axis (so the 2-D weights, their
products, do too, and no weight image is accumulated): where two tiles overlap, the
later one's weight rises from 0 to 1 along a raised cosine and the earlier one's falls
in step. The ramps start ``margin`` pixels inside the overlap and end ``margin`` pixels
before its end: the outer ``margin`` pixels of every tile, where the network saw zero
padding instead of real neighbours, get weight 0. With ``margin`` at least the
model's receptive field, every pixel that contributes is exactly what the model gives
on the whole raster at once, so the tiled result does not depend on the tile size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SatPluginError


def check_tiling(tile: int, overlap: int) -> None:
    """Refuse a tile size or an overlap the layout cannot use (one sentence each)."""
    if tile < 8:
        raise SatPluginError(f"TILE_SIZE must be at least 8 pixels, got {tile}.")
    if not 0 <= overlap < tile // 2:
        raise SatPluginError(f"OVERLAP must be at least 0 and less than half of TILE_SIZE ({tile}), got {overlap}.")


def aligned_tiling(tile: int, overlap: int, align: int) -> tuple:
    """The tile size and overlap nearest to those asked that are multiples of ``align`` and
    still pass :func:`check_tiling`: the tile rounded down (up where that would leave it
    under 8 pixels), the overlap rounded up, or to the largest multiple under half the tile
    where rounding up would reach it."""
    if align <= 1:
        return tile, overlap
    tile = max(tile // align * align, -(-8 // align) * align)
    overlap = -(-overlap // align) * align
    if overlap >= tile // 2:
        overlap = (tile // 2 - 1) // align * align
    return tile, overlap


def context_margin(overlap: int, receptive_field=None, align: int = 1) -> int:
    """Input pixels discarded at each tile edge: the model's receptive field when the overlap
    has room for it on both sides, else as much as fits; a quarter of the overlap when the
    model does not say. A multiple of ``align``: rounded up while it fits, else down."""
    margin = overlap // 4 if receptive_field is None else min(int(receptive_field), overlap // 2)
    up = -(-margin // align) * align
    return up if 2 * up <= overlap else margin // align * align


def tile_starts(length: int, tile: int, overlap: int) -> np.ndarray:
    """Start offsets of tiles of ``tile`` px covering ``length`` px, overlapping >= ``overlap``."""
    if length <= tile:
        return np.zeros(1, dtype=np.int64)
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return np.asarray(starts, dtype=np.int64)


def _window(tile_out: int, margin_out: int, ramp_out: int, first: bool, last: bool) -> np.ndarray:
    """One tile's raw window: 0 in the margins, raised-cosine ramps, 1 in the core.

    The outer sides of the first and last tiles face the padded raster edge, which is
    cropped away, so they get no ramp and no zero margin.
    """
    w = np.ones(tile_out, dtype=np.float64)
    if ramp_out > 0:
        t = (np.arange(ramp_out, dtype=np.float64) + 0.5) / ramp_out
        rise = 0.5 - 0.5 * np.cos(np.pi * t)
    else:
        rise = np.zeros(0)
    if not first:
        w[:margin_out] = 0.0
        w[margin_out:margin_out + ramp_out] = rise
    if not last:
        w[tile_out - margin_out:] = 0.0
        w[tile_out - margin_out - ramp_out:tile_out - margin_out] = rise[::-1]
    return w


def axis_weights(starts: np.ndarray, tile: int, overlap: int, margin: int, scale: int) -> np.ndarray:
    """[tiles, tile*scale] blending weights in output pixels along one axis, summing to 1.

    Where two tiles overlap by exactly ``overlap`` their ramps share one interval and
    add up to 1 already; where the end-aligned last tile overlaps more, or three tiles
    meet, dividing by the sum keeps the partition of unity.
    """
    count = starts.size
    tile_out, margin_out = tile * scale, margin * scale
    ramp_out = max(0, (overlap - 2 * margin) * scale)
    raw = np.stack([_window(tile_out, margin_out, ramp_out, k == 0, k == count - 1) for k in range(count)])
    total = np.zeros(int(starts[-1]) * scale + tile_out, dtype=np.float64)
    for k in range(count):
        total[int(starts[k]) * scale:int(starts[k]) * scale + tile_out] += raw[k]
    out = np.empty_like(raw, dtype=np.float32)
    for k in range(count):
        s = int(starts[k]) * scale
        out[k] = raw[k] / total[s:s + tile_out]
    return out


@dataclass(frozen=True)
class TileLayout:
    """Tiles over a ``height`` x ``width`` raster padded by ``margin`` on every side."""

    height: int
    width: int
    tile: int
    overlap: int
    scale: int
    margin: int
    align: int = 1

    def __post_init__(self):
        check_tiling(self.tile, self.overlap)
        if not 0 <= 2 * self.margin <= self.overlap:
            raise ValueError(f"margin {self.margin} does not fit twice in the overlap {self.overlap}")
        if any(v % self.align for v in (self.margin, self.tile, self.overlap)):
            raise ValueError(f"margin, tile and overlap must be multiples of {self.align}")

    @property
    def padded_height(self) -> int:
        return self.height + 2 * self.margin + (-self.height) % self.align

    @property
    def padded_width(self) -> int:
        return self.width + 2 * self.margin + (-self.width) % self.align

    @property
    def tile_h(self) -> int:
        return min(self.tile, self.padded_height)

    @property
    def tile_w(self) -> int:
        return min(self.tile, self.padded_width)

    @property
    def row_starts(self) -> np.ndarray:
        """Tile rows in padded coordinates (padded row r is raster row r - margin)."""
        return tile_starts(self.padded_height, self.tile_h, self.overlap)

    @property
    def col_starts(self) -> np.ndarray:
        return tile_starts(self.padded_width, self.tile_w, self.overlap)

    def row_weights(self) -> np.ndarray:
        return axis_weights(self.row_starts, self.tile_h, self.overlap, self.margin, self.scale)

    def col_weights(self) -> np.ndarray:
        return axis_weights(self.col_starts, self.tile_w, self.overlap, self.margin, self.scale)

    @property
    def count(self) -> int:
        return self.row_starts.size * self.col_starts.size
