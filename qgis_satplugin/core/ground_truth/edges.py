"""Polygon edges in pixel units, as the compiled rasterizer takes them (see ``burn_kernel``).

Edges come as flat arrays, grouped by feature and oriented from each ring's signed area
(exteriors +1, holes -1, whatever the winding in the source data), with each feature's
window of pixel rows and columns. :func:`strip_shares` lists every (polygon, pixel) share
of a strip: what the rasterizer decides winners from, for inspection and tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely


@dataclass
class Segments:
    """Polygon edges in pixel coordinates, oriented so that covered area is positive."""

    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    feature: np.ndarray  # index of the feature each edge belongs to
    n_features: int

    def offsets(self) -> np.ndarray:
        """Feature f's edges are [offsets[f], offsets[f + 1])."""
        return np.searchsorted(self.feature, np.arange(self.n_features + 1))


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


def feature_windows(geoms, x_min: float, y_max: float, pixel_width: float, pixel_height: float):
    """Per feature, the pixel rows [row0, row1) and columns [col0, col1) its edges can reach.

    From the same coordinates and arithmetic as :func:`polygon_segments`, plus a pixel on
    every side: where an edge is cut at a grid line its x can round a hair outside the
    feature's bounds. An empty or missing geometry gets an empty window.
    """
    bounds = shapely.bounds(np.asarray(geoms, dtype=object))
    empty = np.isnan(bounds).any(axis=1)
    bx0, by0, bx1, by1 = np.where(empty[:, None], 0.0, bounds).T
    col0 = np.floor((bx0 - x_min) / pixel_width) - 1
    col1 = np.floor((bx1 - x_min) / pixel_width) + 2
    row0 = np.floor((y_max - by1) / pixel_height) - 1
    row1 = np.where(empty, row0, np.floor((y_max - by0) / pixel_height) + 2)
    return tuple(v.astype(np.int64) for v in (row0, row1, col0, col1))


def kernel_edges(geoms, grid) -> tuple:
    """The polygons' edges, their offsets and windows on ``grid``: the first arguments of ``burn_strip``."""
    at = (grid.x_min, grid.y_max, grid.pixel_width, grid.pixel_height)
    seg = polygon_segments(geoms, *at)
    return (seg.x0, seg.y0, seg.x1, seg.y1, seg.offsets(), *feature_windows(geoms, *at))


def strip_shares(seg: Segments, windows, row0: int, row1: int, width: int):
    """Every (feature, pixel) share over rows [row0, row1): arrays of feature, row, column, share."""
    from .burn_kernel import strip_shares as shares

    return shares(seg.x0, seg.y0, seg.x1, seg.y1, seg.offsets(), *windows, row0, row1, width)

