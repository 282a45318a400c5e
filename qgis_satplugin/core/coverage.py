"""Exact area of polygon ∩ pixel for every pixel a polygon touches, vectorised.

The method is the signed-area accumulation used by font rasterisers. Work in pixel
units (column x, row y). For a polygon whose exterior runs one way and holes the
other, the winding number w(x, y) counts signed boundary crossings to the left of a
point, and the covered area of a cell is the integral of w over it. Cut every edge at
the grid lines into pieces that each lie in one cell. Then, in a cell of row r:

* a piece inside the cell contributes ``dy * (c + 1 - x_mid)`` (the trapezoid between
  the piece and the cell's right side), and
* every piece further left in the same row contributes its whole ``dy``.

So each (polygon, row) needs only a running sum over its boundary cells, in column
order. Between two boundary cells the winding is constant: those cells are wholly
inside (w = 1) or outside (w = 0), and come out as runs rather than pixels. The result
is exact up to float rounding (about 1e-12), independent of the order of features,
and correct for holes and multipolygons because holes wind the other way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

# Shares below this are float noise from edges that only touch a cell.
COVERAGE_EPS = 1e-9


@dataclass
class Segments:
    """Polygon edges in pixel coordinates, oriented so that covered area is positive."""

    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    feature: np.ndarray  # index of the feature each edge belongs to
    n_features: int

    def subset(self, mask) -> "Segments":
        return Segments(self.x0[mask], self.y0[mask], self.x1[mask], self.y1[mask], self.feature[mask], self.n_features)

    @property
    def y_lo(self):
        return np.minimum(self.y0, self.y1)

    @property
    def y_hi(self):
        return np.maximum(self.y0, self.y1)


def polygon_segments(geoms, x_min: float, y_max: float, pixel_width: float, pixel_height: float) -> Segments:
    """Edges of (multi)polygons, in pixel units of a north-up grid.

    Each ring is oriented from its signed area: exteriors count +1, holes -1, whatever
    the winding in the source data.
    """
    geoms = np.asarray(geoms, dtype=object)
    parts, part_feature = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of_coord = shapely.get_coordinates(rings, return_index=True)
    if len(coords) == 0:
        empty = np.zeros(0)
        return Segments(empty, empty, empty, empty, np.zeros(0, np.int64), len(geoms))
    px = (coords[:, 0] - x_min) / pixel_width
    py = (y_max - coords[:, 1]) / pixel_height
    # Rings are closed, so consecutive coordinates of the same ring are its edges.
    same_ring = ring_of_coord[1:] == ring_of_coord[:-1]
    start = np.flatnonzero(same_ring)
    x0, y0, x1, y1 = px[start], py[start], px[start + 1], py[start + 1]
    seg_ring = ring_of_coord[start]

    # Shoelace area per ring; in pixel space (y down) a positive sum here means
    # clockwise on the map. Exterior rings must count +1 and holes -1.
    cross = x0 * y1 - x1 * y0
    ring_area = np.bincount(seg_ring, weights=cross, minlength=len(rings))
    is_exterior = np.ones(len(rings), dtype=bool)
    is_exterior[1:] = ring_part[1:] != ring_part[:-1]
    want = np.where(is_exterior, 1.0, -1.0)
    flip = (np.sign(ring_area) * want)[seg_ring] > 0
    x0, x1 = np.where(flip, x1, x0), np.where(flip, x0, x1)
    y0, y1 = np.where(flip, y1, y0), np.where(flip, y0, y1)
    feature = part_feature[ring_part[seg_ring]]
    return Segments(x0, y0, x1, y1, feature.astype(np.int64), len(geoms))


def expand_ranges(counts):
    """For counts [2, 3] return owner [0, 0, 1, 1, 1] and offset [0, 1, 0, 1, 2]."""
    counts = counts.astype(np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    offset = np.arange(owner.size, dtype=np.int64) - starts[owner]
    return owner, offset


@dataclass
class StripCoverage:
    """Per-feature coverage in rows [row0, row1) of a grid ``width`` pixels wide.

    ``cells_*``: cells with a fractional (or full) share, one entry per (feature, cell).
    ``runs_*``: runs of cells wholly inside a feature, columns [col0, col1).
    """

    cells_feature: np.ndarray
    cells_row: np.ndarray
    cells_col: np.ndarray
    cells_cover: np.ndarray
    runs_feature: np.ndarray
    runs_row: np.ndarray
    runs_col0: np.ndarray
    runs_col1: np.ndarray
    runs_cover: np.ndarray


def strip_coverage(seg: Segments, row0: int, row1: int, width: int) -> StripCoverage:
    """Exact coverage of every feature over rows [row0, row1) of the grid."""
    # 1. Cut edges at the horizontal grid lines inside the strip. Horizontal edges
    #    add nothing (dy = 0) and are dropped.
    y_lo, y_hi = seg.y_lo, seg.y_hi
    keep = (y_hi > row0) & (y_lo < row1) & (y_hi > y_lo)
    x0, y0, x1, y1 = seg.x0[keep], seg.y0[keep], seg.x1[keep], seg.y1[keep]
    feat = seg.feature[keep]
    going_down = y1 > y0
    a = np.maximum(np.minimum(y0, y1), row0)
    b = np.minimum(np.maximum(y0, y1), row1)
    first_row = np.floor(a).astype(np.int64)
    n_rows = np.maximum(np.ceil(b).astype(np.int64) - first_row, 1)
    owner, k = expand_ranges(n_rows)
    row = first_row[owner] + k
    ya = np.maximum(a[owner], row)
    yb = np.minimum(b[owner], row + 1)
    slope = ((x1 - x0) / (y1 - y0))[owner]
    xa = x0[owner] + (ya - y0[owner]) * slope
    xb = x0[owner] + (yb - y0[owner]) * slope
    sign = np.where(going_down, 1.0, -1.0)[owner]
    feat = feat[owner]
    nonempty = yb > ya
    row, ya, yb, xa, xb, sign, feat = (v[nonempty] for v in (row, ya, yb, xa, xb, sign, feat))

    # 2. Cut each row piece at the vertical grid lines. Columns left of the grid are
    #    merged into column -1: they only shift the running sum of the row.
    x_lo, x_hi = np.minimum(xa, xb), np.maximum(xa, xb)
    dy_total = yb - ya
    first_col = np.floor(x_lo).astype(np.int64)
    n_cols = np.maximum(np.ceil(x_hi).astype(np.int64) - first_col, 1)
    owner, k = expand_ranges(n_cols)
    col = first_col[owner] + k
    u = np.maximum(x_lo[owner], col)
    v = np.minimum(x_hi[owner], col + 1)
    width_x = x_hi - x_lo
    vertical = width_x[owner] == 0
    frac = np.where(vertical, 1.0, (v - u) / np.where(vertical, 1.0, width_x[owner]))
    dy = sign[owner] * dy_total[owner] * frac
    x_mid = np.where(vertical, x_lo[owner], 0.5 * (u + v))
    col_c = np.maximum(col, -1)
    area = np.where(col >= 0, dy * (col + 1 - x_mid), dy)
    keep = (col < width) & (dy != 0)
    feat_p, row_p, col_p, dy, area = feat[owner][keep], row[owner][keep], col_c[keep], dy[keep], area[keep]

    # 3. Sum pieces per (feature, row, column), then run along each (feature, row).
    n_strip_rows = row1 - row0
    cols_per_row = width + 1
    group = feat_p * n_strip_rows + (row_p - row0)
    key = group * cols_per_row + (col_p + 1)
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.zeros(0, np.int64)
    cell_key = key[starts]
    cell_dy = np.add.reduceat(dy[order], starts) if starts.size else np.zeros(0)
    cell_area = np.add.reduceat(area[order], starts) if starts.size else np.zeros(0)
    cell_group = cell_key // cols_per_row
    cell_col = cell_key % cols_per_row - 1
    group_start = np.r_[True, cell_group[1:] != cell_group[:-1]][: cell_group.size]
    running = np.cumsum(cell_dy)
    before = running - cell_dy
    group_base = np.maximum.accumulate(np.where(group_start, np.arange(cell_dy.size), 0))
    left = before - before[group_base]
    cover = left + cell_area
    after = left + cell_dy
    cell_feature = cell_group // n_strip_rows
    cell_row = cell_group % n_strip_rows + row0

    # Runs: the cells after a boundary cell up to the next one in the same row. Their
    # share is the running sum itself: 1 inside, or a fraction when a horizontal edge
    # crosses the row (a horizontal edge adds no piece but cuts the row's height).
    next_col = np.r_[cell_col[1:], width][: cell_col.size]
    last_in_group = np.r_[group_start[1:], True][: cell_group.size]
    next_col = np.where(last_in_group, width, next_col)
    has_run = (next_col > cell_col + 1) & (np.abs(after) > COVERAGE_EPS)
    full = has_run & (np.abs(after - 1.0) <= COVERAGE_EPS)
    partial = np.flatnonzero(has_run & ~full)

    # Partial runs are rare (grid-aligned rectangles): list their cells one by one.
    owner, offset = expand_ranges(next_col[partial] - cell_col[partial] - 1)
    part_feature = cell_feature[partial][owner]
    part_row = cell_row[partial][owner]
    part_col = cell_col[partial][owner] + 1 + offset
    part_cover = after[partial][owner]

    in_grid = (cell_col >= 0) & (np.abs(cover) > COVERAGE_EPS)
    return StripCoverage(
        cells_feature=np.concatenate([cell_feature[in_grid], part_feature]),
        cells_row=np.concatenate([cell_row[in_grid], part_row]),
        cells_col=np.concatenate([cell_col[in_grid], part_col]),
        cells_cover=np.clip(np.concatenate([cover[in_grid], part_cover]), 0.0, 1.0),
        runs_feature=cell_feature[full],
        runs_row=cell_row[full],
        runs_col0=cell_col[full] + 1,
        runs_col1=next_col[full],
        runs_cover=np.ones(int(full.sum())),
    )
