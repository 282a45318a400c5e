"""One strip of rows: which polygon labels each pixel, its share, and the conflict code.

Within a strip every (polygon, pixel) share is exact (see ``coverage``); each pixel goes
to the polygon with the largest share, ties broken by parcel id then class (a polygon's
rank), so the result does not depend on feature order. Also how many rows a strip holds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..coverage import expand_ranges
from ..grid import PixelGrid, check_memory
from .distance import DISTANCE_HALO
from .options import STRIP_ROWS

BYTES_PER_STRIP_PIXEL = 60
# Wider grids get fewer rows per strip, so a strip stays under this (at least DISTANCE_HALO rows).
STRIP_BUDGET_BYTES = 1 << 30
# A share of a pixel under this counts as touching, not covering, for conflict masks.
CONFLICT_EPS = 1e-6
FULL_EPS = 1e-6


def strip_rows_for(grid: PixelGrid, wanted: int = STRIP_ROWS) -> int:
    """Rows per strip: ``wanted`` unless a strip that tall would pass STRIP_BUDGET_BYTES.

    Refuses a grid so wide that even DISTANCE_HALO rows do not fit the machine's memory.
    """
    per_row = BYTES_PER_STRIP_PIXEL * grid.width
    rows = max(DISTANCE_HALO, min(int(wanted), STRIP_BUDGET_BYTES // per_row))
    check_memory(
        2 * rows * per_row,  # one strip computed while the previous one is written
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


@dataclass
class Strip:
    row0: int
    winner: np.ndarray  # rank of the labelling polygon per pixel, -1 where none
    coverage: np.ndarray
    conflict: np.ndarray


def _pack(share, rank):
    """One uint64 per (share, rank): larger share first, then lower rank, so that a
    single scatter-max picks each pixel's winner."""
    bits = np.asarray(share, dtype=np.float32).view(np.uint32).astype(np.uint64) << np.uint64(32)
    return bits | (np.uint64(0xFFFFFFFF) - np.asarray(rank, dtype=np.uint64))


def _unpack(key):
    share = (key >> np.uint64(32)).astype(np.uint32).view(np.float32)
    rank = (np.uint64(0xFFFFFFFF) - (key & np.uint64(0xFFFFFFFF))).astype(np.int64)
    return share, rank


def resolve_strip(cov, row0, rows, width, rank, class_of, min_coverage) -> Strip:
    """Per pixel: the winning polygon (as a rank), its share, and the conflict code.

    Runs of whole pixels are painted directly; only boundary cells, and the rare
    pixels inside two polygons, go through per-entry reductions.
    """
    n = rows * width
    run_owner, run_offset = expand_ranges(cov.runs_col1 - cov.runs_col0)
    run_pix = (cov.runs_row[run_owner] - row0) * width + cov.runs_col0[run_owner] + run_offset
    run_rank = rank[cov.runs_feature][run_owner]
    run_count = np.bincount(run_pix, minlength=n)
    winner = np.full(n, -1, dtype=np.int32)
    winner[run_pix] = run_rank
    coverage = (run_count >= 1).astype(np.float32)
    multi = run_count >= 2
    if multi.any():
        # Inside two or more polygons at once: the lowest rank wins the tie at share 1.
        in_multi = multi[run_pix]
        pix, ranks = run_pix[in_multi], run_rank[in_multi]
        order = np.lexsort((ranks, pix))
        first = np.r_[True, pix[order][1:] != pix[order][:-1]]
        winner[pix[order][first]] = ranks[order][first]

    # Boundary cells compete with each other and with any run covering the same pixel.
    # Dense marks give the distinct cell pixels in pixel order without sorting.
    cell_pix = (cov.cells_row - row0) * width + cov.cells_col
    cell_rank = rank[cov.cells_feature]
    share = cov.cells_cover
    marked = np.zeros(n, dtype=bool)
    marked[cell_pix] = True
    uniq = np.flatnonzero(marked)
    slot = np.empty(n, dtype=np.int32)
    slot[uniq] = np.arange(uniq.size, dtype=np.int32)
    inverse = slot[cell_pix]
    best = np.zeros(uniq.size, dtype=np.uint64)
    np.maximum.at(best, inverse, _pack(share, cell_rank))
    runs_here = run_count[uniq]
    inside = runs_here >= 1
    best[inside] = np.maximum(best[inside], _pack(np.ones(inside.sum()), winner[uniq[inside]]))
    cell_share, cell_winner = _unpack(best)
    winner[uniq] = cell_winner
    coverage[uniq] = cell_share

    # Conflicts can only occur where a boundary cell or an overlap of runs is.
    touching = share > CONFLICT_EPS
    n_cover = np.bincount(inverse[touching], minlength=uniq.size) + runs_here
    n_full = np.bincount(inverse[share >= 1.0 - FULL_EPS], minlength=uniq.size) + runs_here
    cls = class_of[cov.cells_feature[touching]].astype(np.float64)
    s1 = np.bincount(inverse[touching], weights=cls, minlength=uniq.size)
    s2 = np.bincount(inverse[touching], weights=cls * cls, minlength=uniq.size)
    mixed = s2 * n_cover != s1 * s1  # exact for integer classes, and run-free pixels
    code = np.where(n_cover >= 2, np.where(n_full >= 1, 2, np.where(mixed, 1, 0)), 0)
    conflict = multi.astype(np.uint8) * np.uint8(2)
    conflict[uniq] = code

    unlabelled = coverage < np.float32(min_coverage) - np.float32(1e-6)
    winner[unlabelled] = -1
    coverage[unlabelled] = 0
    return Strip(row0, winner.reshape(rows, width), coverage.reshape(rows, width), conflict.reshape(rows, width))
