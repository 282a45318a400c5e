"""The exact distance transform behind the distance raster, compiled with numba.

One pass finds the edge pixels and each pixel's distance, in rows, to the nearest edge
pixel of its column; a second finds, row by row, the exact squared distance in pixels
(dx² + dy², a whole number) and writes metres. Rows with short distances, as in a tile
of fields, are searched outwards from each pixel; rows inside large parcels use
Meijster's linear-time lower envelope, so a tile-sized polygon costs no more than
fields do. The first call compiles the kernel (about 1.5 s) and caches it next to this
file for later processes (see ``..compiled``).
"""
from __future__ import annotations

import numpy as np

from ..compiled import as_engine_module, kernel

as_engine_module(globals())  # one numba cache for the engine and the plugin (see ..compiled)

# A row is searched outwards while its summed column distances stay under this many per pixel.
SEARCH_BUDGET_PER_PIXEL = 8


@kernel
def _column_distances(ids, cap):  # pragma: no cover - compiled
    """Rows from each pixel to the nearest edge pixel of its column, capped at ``cap``.

    An edge pixel is a parcel pixel (id >= 0) with a 4-neighbour of another id, or on the
    window's border (a parcel cut by the window ends there).
    """
    h, w = ids.shape
    g = np.empty((h, w), np.int32)
    for y in range(h):
        if y == 0 or y == h - 1:  # the window's first and last rows: every parcel pixel there is an edge
            for x in range(w):
                g[y, x] = 0 if ids[y, x] >= 0 else (cap if y == 0 else min(g[y - 1, x] + 1, cap))
            continue
        for x in (0, w - 1):
            g[y, x] = 0 if ids[y, x] >= 0 else min(g[y - 1, x] + 1, cap)
        # Inner pixels without branches (| and &, not or/and), so that the compiler vectorises the row.
        for x in range(1, w - 1):
            v = ids[y, x]
            edge = (v >= 0) & ((ids[y - 1, x] != v) | (ids[y + 1, x] != v) | (ids[y, x - 1] != v) | (ids[y, x + 1] != v))
            g[y, x] = 0 if edge else min(g[y - 1, x] + 1, cap)
    for y in range(h - 2, -1, -1):
        for x in range(w):
            g[y, x] = min(g[y, x], g[y + 1, x] + 1)
    return g


@kernel
def _row_search(gy, y_ids, squared):  # pragma: no cover - compiled
    """Squared distances of one row's parcel pixels, each searched outwards.

    A column dx away cannot give less than dx², so the search stops there.
    """
    w = gy.size
    for x in range(w):
        if y_ids[x] < 0:
            continue
        best = np.int64(gy[x]) * gy[x]
        dx = 1
        while dx * dx < best:
            if x >= dx:
                c = dx * dx + np.int64(gy[x - dx]) * gy[x - dx]
                if c < best:
                    best = c
            if x + dx < w:
                c = dx * dx + np.int64(gy[x + dx]) * gy[x + dx]
                if c < best:
                    best = c
            dx += 1
        squared[x] = best


@kernel
def _row_envelope(gy, squared, f, s, t):  # pragma: no cover - compiled
    """Squared distances of one row by Meijster's lower envelope of parabolas, in O(width)."""
    w = gy.size
    for x in range(w):
        f[x] = np.int64(gy[x]) * gy[x]
    q = 0
    s[0] = 0
    t[0] = 0
    for u in range(1, w):
        while q >= 0 and (t[q] - s[q]) ** 2 + f[s[q]] > (t[q] - u) ** 2 + f[u]:
            q -= 1
        if q < 0:
            q = 0
            s[0] = u
        else:
            i = s[q]
            sep = (u * u - i * i + f[u] - f[i]) // (2 * (u - i))
            if sep + 1 < w:
                q += 1
                s[q] = u
                t[q] = sep + 1
    for u in range(w - 1, -1, -1):
        i = s[q]
        squared[u] = (u - i) * (u - i) + f[i]
        if u == t[q]:
            q -= 1


@kernel
def distance_metres(ids, cap, pixel_size, out, first_row):  # pragma: no cover - compiled
    """Metres from each parcel pixel's centre to its parcel's edge (0 off parcels), for rows
    [first_row, first_row + len(out)) of ``ids``, into ``out``.

    Every row of ``ids`` counts for the column distances; only the rows asked for are
    measured along the row (a chunk's halo rows are measured by their own chunk).
    Distances are capped at ``cap`` pixels; an edge pixel's centre lies half a pixel
    from the edge. The arithmetic after the exact squared distance is float32, as numpy
    would do it: sqrt, + 0.5, × pixel size.
    """
    h, w = ids.shape
    g = _column_distances(ids, cap)
    squared = np.empty(w, np.int64)
    f = np.empty(w, np.int64)
    s = np.empty(w, np.int64)
    t = np.empty(w, np.int64)
    limit = np.int64(cap) * cap
    half = np.float32(0.5)
    size = np.float32(pixel_size)
    for r in range(out.shape[0]):
        y = first_row + r
        effort = 0
        for x in range(w):
            if ids[y, x] >= 0:
                effort += g[y, x]
        if effort <= SEARCH_BUDGET_PER_PIXEL * w:
            _row_search(g[y], ids[y], squared)
        else:
            _row_envelope(g[y], squared, f, s, t)
        for x in range(w):
            if ids[y, x] < 0:
                out[r, x] = 0
            else:
                d2 = squared[x] if squared[x] < limit else limit
                out[r, x] = (np.float32(np.sqrt(np.float32(d2))) + half) * size
    return out
