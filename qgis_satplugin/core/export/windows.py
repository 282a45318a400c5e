"""Patch windows and the order they are read in.

Windows are whole image pixels: starts at 0, stride, 2 x stride, ... and, when the last
one falls short of the edge, one more window shifted inward to end exactly at the edge
(DeepSatData drops that remainder). Offsets are integers computed once, so there is no
drift however large the raster.

Reading goes by *chunks*: a few rows of windows (up to the files' internal block height,
so each compressed block is decoded about once) and as many columns as fit a memory
budget for all dates at once. Peak memory is therefore bounded by the budget (or one row
of windows, if that is larger), whatever the AOI size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SatPluginError

CHUNK_BUDGET_BYTES = 128 * 1024 * 1024


def axis_starts(length: int, size: int, stride: int, align: int = 1) -> np.ndarray:
    """Window starts along one axis; the edge window is shifted inward, not dropped.

    With ``align`` > 1 (native-resolution bands) the shifted start is rounded down to a
    multiple of ``align``, so up to ``align - 1`` edge pixels may stay uncovered.
    """
    if size > length:
        raise SatPluginError(f"The patch ({size} px) is larger than the images ({length} px along one side); choose a smaller patch_size.")
    starts = list(range(0, length - size + 1, stride))
    last = (length - size) // align * align
    if starts[-1] < last:
        starts.append(last)
    return np.asarray(starts, dtype=np.int64)


@dataclass(frozen=True)
class PatchGrid:
    """Every candidate window, in row-major order: ``rows[i]``, ``cols[i]`` are its top-left pixel."""

    size: int
    stride: int
    row_starts: np.ndarray
    col_starts: np.ndarray

    @property
    def rows(self) -> np.ndarray:
        return np.repeat(self.row_starts, self.col_starts.size)

    @property
    def cols(self) -> np.ndarray:
        return np.tile(self.col_starts, self.row_starts.size)

    def __len__(self) -> int:
        return self.row_starts.size * self.col_starts.size


def patch_grid(height: int, width: int, size: int, stride: int, align: int = 1) -> PatchGrid:
    if size < 1 or stride < 1:
        raise SatPluginError(f"patch_size and stride must be at least 1 pixel (got {size} and {stride}).")
    return PatchGrid(size, stride, axis_starts(height, size, stride, align), axis_starts(width, size, stride, align))


@dataclass(frozen=True)
class ReadChunk:
    """One read: image rows ``row0..row1`` x columns ``col0..col1`` cover ``patches`` entirely."""

    row0: int
    row1: int
    col0: int
    col1: int
    patches: np.ndarray  # indices into the kept patches


def read_chunks(rows: np.ndarray, cols: np.ndarray, size: int, bytes_per_patch: int, block_rows: int,
                budget: int = CHUNK_BUDGET_BYTES) -> list:
    """Group the kept patches into chunks (see the module docstring), in row-major order."""
    chunks = []
    if rows.size == 0:
        return chunks
    row_values = np.unique(rows)
    per_row = {r: np.flatnonzero(rows == r) for r in row_values}
    tall = max(size, int(block_rows))
    start = 0
    while start < row_values.size:
        # Rows of windows that fit inside one block height (and the budget, one column each).
        end = start + 1
        while (end < row_values.size and row_values[end] + size - row_values[start] <= tall
               and (end + 1 - start) * bytes_per_patch <= budget):
            end += 1
        members = np.concatenate([per_row[r] for r in row_values[start:end]])
        col_values = np.unique(cols[members])
        by_col = {c: members[cols[members] == c] for c in col_values}
        group: list = []
        load = 0
        for c in col_values:
            n = by_col[c].size * bytes_per_patch
            if group and load + n > budget:
                chunks.append(_chunk(group, rows, cols, size))
                group, load = [], 0
            group.append(by_col[c])
            load += n
        if group:
            chunks.append(_chunk(group, rows, cols, size))
        start = end
    return chunks


def _chunk(groups, rows, cols, size) -> ReadChunk:
    idx = np.sort(np.concatenate(groups))
    return ReadChunk(int(rows[idx].min()), int(rows[idx].max()) + size, int(cols[idx].min()), int(cols[idx].max()) + size, idx)
