"""The distance raster: metres from each labelled pixel to its parcel's edge, chunk by chunk.

The label strips are gathered into chunks of :data:`DISTANCE_CHUNK_ROWS`, whatever the
strips' height, and each chunk's distances are measured with :data:`DISTANCE_HALO` rows
of its neighbours above and below; deeper values are capped, so the result does not
depend on how the grid is cut.
"""
from __future__ import annotations

import numpy as np

# Distance is measured within this many pixels of each chunk; deeper values are capped.
DISTANCE_HALO = 128
# Rows measured at once. Each chunk's column pass also covers its halo rows, which its
# neighbours cover again (the row pass measures each row once): taller chunks repeat less
# of it but hold more memory until written. 512 was faster than 1024 on a full tile and
# took 130 MB less.
DISTANCE_CHUNK_ROWS = 512


def distance_to_edge(ids: np.ndarray, pixel_size: float, rows: tuple | None = None) -> np.ndarray:
    """Metres from each labelled pixel centre to its parcel's edge (0 off parcels), as float32.

    Measured on the label raster: edge pixels are parcel pixels with a 4-neighbour of
    another parcel, of background or outside the window (a parcel cut by the grid ends
    there); an edge pixel's centre lies half a pixel from the edge. Distances are exact
    (see ``distance_kernel``) and capped at DISTANCE_HALO pixels. ``rows`` (start, stop)
    measures only those rows, the others serving as their neighbours; default all.
    """
    from .distance_kernel import distance_metres

    start, stop = rows if rows is not None else (0, ids.shape[0])
    if not 0 <= start <= stop <= ids.shape[0]:
        raise ValueError(f"rows {start}..{stop} are not rows of a window of {ids.shape[0]}")  # the kernel does not check
    out = np.empty((stop - start, ids.shape[1]), dtype=np.float32)
    return distance_metres(np.ascontiguousarray(ids, dtype=np.int32), DISTANCE_HALO, float(pixel_size), out, start)


class DistanceWindow:
    """Gathers label strips, top to bottom, into chunks measured with their halo."""

    def __init__(self, pixel_size, chunk_rows: int = DISTANCE_CHUNK_ROWS):
        self.pixel_size = pixel_size
        self.chunk_rows = chunk_rows
        self.rows: list = []  # label rows from row self.first on, as strips
        self.first = 0  # the grid row of the first held row
        self.done = 0  # rows before this one have their distances

    def push(self, row0, ids):
        """Add the next strip; return (row0, distances) for each chunk now measurable."""
        if row0 != self.first + self._held():
            raise ValueError(f"strips must come in order: expected row {self.first + self._held()}, got {row0}")
        self.rows.append(ids)
        chunks = []
        while self.first + self._held() >= self.done + self.chunk_rows + DISTANCE_HALO:
            chunks.append(self._measure(self.done + self.chunk_rows))
        return chunks

    def finish(self):
        """(row0, distances) for the rows left, or an empty list."""
        end = self.first + self._held()
        return [self._measure(end)] if end > self.done else []

    def _held(self):
        return sum(len(strip) for strip in self.rows)

    def _measure(self, stop):
        window = np.concatenate(self.rows) if len(self.rows) > 1 else self.rows[0]
        top = max(self.done - DISTANCE_HALO, self.first)
        below_end = min(stop + DISTANCE_HALO, self.first + len(window))
        row0 = self.done
        dist = distance_to_edge(window[top - self.first : below_end - self.first], self.pixel_size, (row0 - top, stop - top))
        self.done = stop
        # Keep what the next chunk needs: its halo above and everything after.
        keep_from = max(self.done - DISTANCE_HALO, self.first) - self.first
        self.rows = [window[keep_from:].copy()] if keep_from < len(window) else []  # a copy frees the window
        self.first += keep_from
        return row0, dist
