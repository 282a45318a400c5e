"""The compiled core of the rasterizer: exact shares, and each pixel's winner, one strip at a time.

Exact shares. Work in pixel units (column x, row y) with edges oriented so that covered
area is positive (``coverage.polygon_segments``). The method is the signed-area
accumulation of font rasterisers: cut every edge at the grid lines into pieces that each
lie in one cell; in a cell of row r a piece adds ``dy * (c + 1 - x_mid)`` (the trapezoid
between the piece and the cell's right side) to that cell, and its whole ``dy`` to every
cell further right. So along each row of a polygon a running sum gives every cell's
share: cells a piece falls in ("boundary cells") get the sum so far plus their own
trapezoids, and the cells between two boundary cells are wholly inside (the sum is 1) or
outside (0). Holes wind the other way, so holes and multipolygons need nothing special;
the result is exact up to float rounding (about 1e-12) and does not depend on the order
of features. Cells left of the grid share column -1: they only shift a row's sum.

Winners. Each pixel goes to the polygon with the largest share (as float32, the share
written), ties to the lowest rank (smallest parcel id, then class). The conflict code counts the polygons touching a pixel (share above 1e-6), those
covering it whole, and whether their classes differ.

Compiled with numba; the first call compiles (a few seconds) and caches the result next
to this file for later processes (see ``..compiled``).
"""
from __future__ import annotations

import numpy as np

from ..compiled import as_engine_module, kernel

as_engine_module(globals())  # one numba cache for the engine and the plugin (see ..compiled)

# Shares below this are float noise from edges that only touch a cell.
COVERAGE_EPS = 1e-9
# A share of a pixel under this counts as touching, not covering, for conflict masks.
CONFLICT_EPS = 1e-6
FULL_EPS = 1e-6


@kernel
def _accumulate(x0, y0, x1, y1, s_lo, s_hi, row0, row1, width, area, dy_sum, has, first_j, last_j):  # pragma: no cover
    """Add the pieces of edges [s_lo, s_hi) inside rows [row0, row1) to the cell buffers.

    Buffers are (rows, width + 1): index 0 holds column -1 (everything left of the grid),
    index c + 1 column c. Pieces right of the grid are dropped: no cell in the grid is
    right of them. ``first_j``/``last_j`` keep each row's first and last touched index,
    so that a long thin polygon costs its length, not its bounding box.
    """
    for s in range(s_lo, s_hi):
        ya0, ya1 = y0[s], y1[s]
        if ya0 == ya1:
            continue  # horizontal edges add nothing
        lo, hi = min(ya0, ya1), max(ya0, ya1)
        a, b = max(lo, row0), min(hi, row1)
        if b <= a:
            continue
        sign = 1.0 if ya1 > ya0 else -1.0
        xs = x0[s]
        slope = (x1[s] - xs) / (ya1 - ya0)
        if not abs(slope) < np.inf:
            # A rise so small that the slope overflows (near-zero coordinates, ~1e-308 apart): it
            # adds no area, and its NaN columns would spoil the polygon's other pieces.
            continue
        first_row = int(np.floor(a))
        last_row = max(int(np.ceil(b)), first_row + 1)
        for row in range(first_row, last_row):
            ya, yb = max(a, row), min(b, row + 1.0)
            if yb <= ya:
                continue
            xa, xb = xs + (ya - ya0) * slope, xs + (yb - ya0) * slope
            x_lo, x_hi = min(xa, xb), max(xa, xb)
            dy_total = yb - ya
            width_x = x_hi - x_lo
            first_col = int(np.floor(x_lo))
            last_col = max(int(np.ceil(x_hi)), first_col + 1)
            r = row - row0
            for col in range(first_col, last_col):
                if col >= width:
                    break
                if width_x == 0.0:
                    dy = sign * dy_total
                    x_mid = x_lo
                else:
                    u, v = max(x_lo, col), min(x_hi, col + 1.0)
                    dy = sign * dy_total * ((v - u) / width_x)
                    x_mid = 0.5 * (u + v)
                if dy == 0.0:
                    continue
                j = col + 1 if col >= 0 else 0
                area[r, j] += dy * (col + 1 - x_mid) if col >= 0 else dy
                dy_sum[r, j] += dy
                has[r, j] = 1
                if j < first_j[r]:
                    first_j[r] = j
                if j > last_j[r]:
                    last_j[r] = j


@kernel
def _emit(r_lo, r_hi, c_hi, row0, width, area, dy_sum, has, first_j, last_j, pix, share):  # pragma: no cover - compiled
    """Each pixel's share of one polygon, from its cell buffers; the buffers are left clean.

    Writes (pixel index in the strip, share in [0, 1]) for every pixel whose share is not
    float noise, and returns how many. Cells wholly inside get exactly 1. Before a row's
    first touched cell the running sum is 0; after its last one it stays what it is up to
    the window's right side (a polygon past the grid's right edge).
    """
    n = 0
    for row in range(r_lo, r_hi):
        r = row - row0
        if last_j[r] < 0:
            continue  # no piece in this row: nothing of the polygon here
        left = 0.0  # the running sum: the winding of the cells after the last boundary cell
        stop = last_j[r]
        for j in range(first_j[r], c_hi + 1):
            if j > stop and abs(left) <= COVERAGE_EPS:
                break
            col = j - 1
            if has[r, j]:
                cover = left + area[r, j]
                left = left + dy_sum[r, j]
                area[r, j] = 0.0
                dy_sum[r, j] = 0.0
                has[r, j] = 0
                if col >= 0 and abs(cover) > COVERAGE_EPS:
                    pix[n] = r * width + col
                    share[n] = min(max(cover, 0.0), 1.0)
                    n += 1
            elif col >= 0 and abs(left) > COVERAGE_EPS:
                pix[n] = r * width + col
                # A horizontal edge along the row cuts its height: then the share is a fraction.
                share[n] = 1.0 if abs(left - 1.0) <= COVERAGE_EPS else min(max(left, 0.0), 1.0)
                n += 1
        first_j[r] = width + 1
        last_j[r] = -1
    return n


@kernel
def _polygon_shares(f, x0, y0, x1, y1, seg_start, f_row0, f_row1, f_col0, f_col1, row0, row1, width, buffers,
                    pix, share):  # pragma: no cover - compiled
    """Polygon f's shares in rows [row0, row1) into ``pix``/``share``; returns how many (0 if it is elsewhere)."""
    area, dy_sum, has, first_j, last_j = buffers
    # The rows of the strip and the columns (-1: left of the grid) the polygon may touch.
    r_lo, r_hi = max(f_row0[f], row0), min(f_row1[f], row1)
    c_lo, c_hi = max(f_col0[f], -1), min(f_col1[f], width)
    if r_lo >= r_hi or c_lo >= c_hi:
        return 0
    _accumulate(x0, y0, x1, y1, seg_start[f], seg_start[f + 1], row0, row1, width, area, dy_sum, has, first_j, last_j)
    return _emit(r_lo, r_hi, c_hi, row0, width, area, dy_sum, has, first_j, last_j, pix, share)


@kernel
def strip_shares(x0, y0, x1, y1, seg_start, f_row0, f_row1, f_col0, f_col1, row0, row1, width):  # pragma: no cover
    """Every (polygon, pixel) share in rows [row0, row1): arrays of feature, row, column, share."""
    rows = row1 - row0
    area = np.zeros((rows, width + 1))
    dy_sum = np.zeros((rows, width + 1))
    has = np.zeros((rows, width + 1), np.uint8)
    buffers = (area, dy_sum, has, np.full(rows, width + 1, np.int64), np.full(rows, -1, np.int64))
    pix = np.empty(rows * width, np.int64)
    share = np.empty(rows * width)
    out_f, out_pix, out_share = [], [], []
    for f in range(seg_start.size - 1):
        n = _polygon_shares(f, x0, y0, x1, y1, seg_start, f_row0, f_row1, f_col0, f_col1, row0, row1, width, buffers,
                            pix, share)
        for k in range(n):
            out_f.append(f)
            out_pix.append(pix[k])
            out_share.append(share[k])
    fs, ps, ss = np.array(out_f, np.int64), np.array(out_pix, np.int64), np.array(out_share)
    return fs, ps // width + row0, ps % width, ss


@kernel
def burn_strip(x0, y0, x1, y1, seg_start, f_row0, f_row1, f_col0, f_col1, rank, class_of, row0, row1, width,
               min_coverage, class_by_owner, id_by_owner, scratch, out_class, out_id, out_coverage, out_conflict,
               pixel_counts, conflict_counts):  # pragma: no cover - compiled
    """Burn rows [row0, row1): class, parcel id, the winner's share and the conflict code per pixel.

    ``scratch`` is ``new_scratch(rows, width)``, reused from strip to strip (it is left
    clean). ``class_by_owner``/``id_by_owner`` are indexed by 1 + rank, row 0 meaning "no
    winner". Pixel counts per class and per conflict code are added to the two count arrays.
    """
    buffers, pix, share, best_share, best_rank, touch, full, first_class, mixed = scratch
    min_share = np.float32(min_coverage) - np.float32(1e-6)
    for f in range(seg_start.size - 1):
        n = _polygon_shares(f, x0, y0, x1, y1, seg_start, f_row0, f_row1, f_col0, f_col1, row0, row1, width, buffers,
                            pix, share)
        f_rank = rank[f]
        cls = class_of[f]
        for k in range(n):
            p, s = pix[k], share[k]
            s32 = np.float32(s)
            # The larger share wins (compared as float32, as written), then the lower rank.
            if s32 > best_share[p] or (s32 == best_share[p] and f_rank < best_rank[p]):
                best_share[p] = s32
                best_rank[p] = f_rank
            if s > CONFLICT_EPS:
                if touch[p] == 0:
                    first_class[p] = cls
                elif cls != first_class[p]:
                    mixed[p] = 1
                if touch[p] < 2:
                    touch[p] += 1
                if s >= 1.0 - FULL_EPS:
                    full[p] = 1
    rows = row1 - row0
    background_class, background_id = class_by_owner[0], id_by_owner[0]
    zero = np.float32(0.0)
    untouched = 0  # counted here, not per pixel in the count arrays: most pixels of a tile are untouched
    for r in range(rows):
        base = r * width
        for c in range(width):
            p = base + c
            value = best_share[p]
            if value < 0:  # no polygon here (-1), so no state to clean either
                out_class[r, c] = background_class
                out_id[r, c] = background_id
                out_coverage[r, c] = zero
                out_conflict[r, c] = 0
                untouched += 1
                continue
            owner = 0
            coverage = zero
            if not value < min_share:
                owner = best_rank[p] + 1
                coverage = value
            code = 0
            if touch[p] >= 2:
                code = 2 if full[p] else (1 if mixed[p] else 0)
            cid = class_by_owner[owner]
            out_class[r, c] = cid
            out_id[r, c] = id_by_owner[owner]
            out_coverage[r, c] = coverage
            out_conflict[r, c] = code
            pixel_counts[cid] += 1
            conflict_counts[code] += 1
            best_share[p] = -1.0
            touch[p] = 0
            full[p] = 0
            mixed[p] = 0
    pixel_counts[background_class] += untouched
    conflict_counts[0] += untouched


def new_scratch(rows: int, width: int):
    """Work arrays for :func:`burn_strip`, all clean: cell buffers, one polygon's shares, per-pixel state."""
    cells = (rows, width + 1)
    n = rows * width
    return (
        (np.zeros(cells), np.zeros(cells), np.zeros(cells, np.uint8),  # area, dy sum, has pieces
         np.full(rows, width + 1, np.int64), np.full(rows, -1, np.int64)),  # each row's first and last touched cell
        np.empty(n, np.int64), np.empty(n),  # one polygon's pixels and shares
        np.full(n, -1.0, np.float32), np.zeros(n, np.int64),  # the best share so far (-1: none) and its rank
        np.zeros(n, np.uint8), np.zeros(n, np.uint8),  # polygons touching (counted to 2), one covering whole
        np.zeros(n, np.int32), np.zeros(n, np.uint8),  # first touching class, classes differ
    )
