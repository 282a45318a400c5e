"""The polygons before burning: decoded, checked, repaired, reprojected, clipped to the grid.

Everything here works on whole arrays of geometries (shapely's vectorised functions),
so a layer of a hundred thousand parcels is prepared in a fraction of a second.
"""
from __future__ import annotations

import numpy as np
import shapely
from pyproj import CRS

from ..area import reproject
from ..errors import SatPluginError
from ..feedback import Feedback
from ..geometry import polygonal_part
from ..grid import PixelGrid

# Shapely type ids a polygon layer may hold: Polygon, MultiPolygon, GeometryCollection (from repair).
POLYGONAL_TYPES = {3, 6, 7}


def decode_polygons(polygons) -> np.ndarray:
    """Shapely geometries from WKB hex strings; None (a NULL geometry) stays missing."""
    items = np.empty(len(polygons), dtype=object)
    try:
        # Python turns hex into bytes 5 x faster than GEOS's hex reader reads it.
        items[:] = [None if p is None else bytes.fromhex(p) for p in polygons]
        return shapely.from_wkb(items)
    except ValueError as exc:
        raise SatPluginError(f"A polygon is not valid WKB hex ({exc}).") from None
    except shapely.errors.GEOSException as exc:
        raise SatPluginError(f"A polygon is not valid WKB ({exc}).") from None


# Below this many geometries a second thread costs more than it saves.
THREADED_MIN = 10_000


def _in_two_threads(function, geoms: np.ndarray) -> np.ndarray:
    """``function(geoms)`` for a vectorised shapely function, its two halves computed at once.

    GEOS releases the GIL, so the validity check of 100,000 parcels takes half the time on
    two cores (it is the largest part of the preparation).
    """
    if len(geoms) < THREADED_MIN:
        return function(geoms)
    from concurrent.futures import ThreadPoolExecutor

    half = len(geoms) // 2
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="satplugin-prepare") as pool:
        first = pool.submit(function, geoms[:half])
        second = function(geoms[half:])
        return np.concatenate([first.result(), second])


def prepare_polygons(polygons, source_crs, grid: PixelGrid, feedback: Feedback):
    """Repaired polygons in the grid's CRS. Returns (geoms, n_repaired, n_empty)."""
    geoms = decode_polygons(polygons)
    if geoms.size == 0:
        raise SatPluginError("There are no polygons to rasterize: the layer, the selection or the filter is empty.")
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    types = set(shapely.get_type_id(geoms[~missing]).tolist())
    if types - POLYGONAL_TYPES:
        raise SatPluginError("The input layer must contain polygons; found points or lines.")
    invalid = ~missing & ~_in_two_threads(shapely.is_valid, geoms)
    n_repaired = int(invalid.sum())
    if n_repaired:
        geoms[invalid] = [polygonal_part(g) for g in shapely.make_valid(geoms[invalid])]
        feedback.log(f"Repaired {n_repaired} invalid geometries (self-intersections, bad rings).")
    geoms[missing] = None
    n_empty = int(missing.sum())
    if n_empty:
        feedback.log(f"Skipped {n_empty} features without geometry.")
    src, dst = CRS.from_user_input(source_crs), grid.pyproj_crs()
    if src != dst:
        present = ~shapely.is_missing(geoms)
        geoms[present] = reproject(geoms[present], source_crs, grid.crs)  # the whole array, one transformer
        feedback.log(f"Reprojected polygons from {src.to_string()} to {dst.to_string()}.")
    return geoms, n_repaired, n_empty


def clip_to_grid(geoms: np.ndarray, grid: PixelGrid):
    """The polygons clipped to the grid plus a pixel, and a mask of those with area left.

    Polygons crossing the grid's edge are cut, not dropped.
    """
    margin_x, margin_y = grid.pixel_width, grid.pixel_height
    rect = (grid.x_min - margin_x, grid.y_min - margin_y, grid.x_max + margin_x, grid.y_max + margin_y)
    # Only the polygons that reach past the rectangle are cut (clipping costs as much as the rest of the preparation).
    bounds = shapely.bounds(geoms)
    with np.errstate(invalid="ignore"):  # missing geometries have NaN bounds
        within = (bounds[:, 0] >= rect[0]) & (bounds[:, 1] >= rect[1]) & (bounds[:, 2] <= rect[2]) & (bounds[:, 3] <= rect[3])
    clipped = np.array(geoms, dtype=object)
    clipped[~within] = shapely.clip_by_rect(clipped[~within], *rect)
    inside = ~shapely.is_missing(clipped) & ~shapely.is_empty(clipped) & (shapely.area(clipped) > 0)
    return clipped, inside
