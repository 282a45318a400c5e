"""Strips of rows: how many rows a strip holds, and the polygons' ranks that break ties.

Each pixel goes to the polygon with the largest share, ties broken by parcel id then
class (a polygon's rank), so the result does not depend on feature order (the burning
itself is ``burn_kernel``'s).
"""
from __future__ import annotations

import numpy as np

from ..grid import GEOTIFF_TILE, PixelGrid, check_memory
from .distance import DISTANCE_CHUNK_ROWS, DISTANCE_HALO
from .options import STRIP_ROWS

# The burner's work arrays (52 bytes a pixel, see burn_kernel.new_scratch) and the four output
# layers (11) of the strip being burnt and of the two the writer holds (see writer.StripWriter).
BYTES_PER_STRIP_PIXEL = 52 + 3 * 11
# The distance lane: a chunk with its halo, as held labels, their joined copy and column
# distances, plus the label strips queued for it and two chunks of metres (one measured,
# one waiting for its turn to be written; see writer.StripWriter).
DISTANCE_BYTES_PER_COLUMN = (DISTANCE_CHUNK_ROWS + 2 * DISTANCE_HALO) * 12 + DISTANCE_CHUNK_ROWS * (8 + 2 * 4)
# Every output holds at most 4 bytes a pixel (class, id, coverage, conflict, distance).
OUTPUT_BYTES_PER_PIXEL = 2 + 4 + 4 + 1 + 4
# Wider grids get fewer rows per strip, so a strip stays under this.
STRIP_BUDGET_BYTES = 1 << 29


def strip_rows_for(grid: PixelGrid, wanted: int = STRIP_ROWS) -> int:
    """Rows per strip: ``wanted`` unless a strip that tall would pass STRIP_BUDGET_BYTES.

    Refuses a grid so wide that its strips do not fit the machine's memory.
    """
    per_row = BYTES_PER_STRIP_PIXEL * grid.width
    rows = max(1, min(int(wanted), STRIP_BUDGET_BYTES // per_row))
    if rows >= GEOTIFF_TILE and rows % GEOTIFF_TILE:
        rows -= rows % GEOTIFF_TILE  # whole rows of tiles: GDAL writes each tile once
    check_memory(
        rows * per_row + DISTANCE_BYTES_PER_COLUMN * grid.width,
        f"Rasterizing a grid {grid.width} pixels wide",
        f"use a larger PIXEL_SIZE (now {grid.pixel_width:g}) or a narrower extent.",
    )
    return rows


def feature_ranks(parcel_ids: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """Rank 0 wins ties: smallest parcel id, then smallest class id."""
    order = np.lexsort((np.arange(len(parcel_ids)), class_ids, parcel_ids))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def tile_row_bytes(grid: PixelGrid) -> int:
    """The bytes of one row of tiles of every output: what GDAL's cache must hold while a
    strip that ends inside a tile row waits for the next one."""
    return GEOTIFF_TILE * grid.width * OUTPUT_BYTES_PER_PIXEL
