"""Cloud over the AOI, from the L2A scene classification (SCL) layer.

The scene cloud % of a 110 km tile says little about a 5 km AOI in its corner. SCL
tells, per 20 m pixel, what the processor saw. Only a coarse read is needed for a
percentage, so the window over the AOI is read at a reduced size, and GDAL serves it
from the COG's overviews: a few hundred kB per product even over HTTP.
"""

from __future__ import annotations

import math

import numpy as np
import rasterio
import shapely
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.features import geometry_mask
from rasterio.windows import Window, from_bounds

from ..area import DENSIFY_DEG, reproject
from ..sentinel2 import SCL_CLOUD_CLASSES, SCL_NO_DATA

# Cloud is SCL_CLOUD_CLASSES (cloud shadow, cloud medium and high probability, thin
# cirrus). No data (SCL_NO_DATA) is left out of the total, so a product half outside its
# swath is judged on the half it has.
# Longest side of the array read over the AOI; 512 px gives % to well under 1 point.
MAX_READ_PIXELS = 512

# Opening a COG over HTTP must not list its "directory" (S3 answers slowly, a plain
# file server not at all), and a flaky connection deserves a few retries.
_GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.jp2",
    # GDAL reads these itself, past the plugin's client and its deadlines: bound each of
    # its HTTP requests as a whole (a few hundred kB), so a trickling server cannot hold it.
    "GDAL_HTTP_TIMEOUT": "120",
    "GDAL_HTTP_CONNECTTIMEOUT": "30",
}


def aoi_cloud_percent(scl_href: str, aoi_4326) -> float | None:
    """% of the AOI's valid SCL pixels that are cloud or cloud shadow; None if none are valid.

    ``scl_href`` is a local product's file (a path or its ``/vsizip/`` path) or an http(s)
    URL; the search only hands over hrefs that passed :mod:`.hrefs`.
    """
    with rasterio.Env(**_GDAL_ENV), rasterio.open(scl_href) as src:
        aoi = _to_crs(aoi_4326, src.crs)
        full = Window(0, 0, src.width, src.height)
        try:
            window = from_bounds(*aoi.bounds, transform=src.transform).intersection(full)
        except Exception:  # rasterio raises WindowError when they do not overlap
            return None
        col0, row0 = math.floor(window.col_off), math.floor(window.row_off)
        col1 = math.ceil(round(window.col_off + window.width, 6))
        row1 = math.ceil(round(window.row_off + window.height, 6))
        window = Window(col0, row0, col1 - col0, row1 - row0)
        if window.width < 1 or window.height < 1:
            return None
        scale = max(1.0, max(window.width, window.height) / MAX_READ_PIXELS)
        out_h = max(1, math.ceil(window.height / scale))
        out_w = max(1, math.ceil(window.width / scale))
        data = src.read(1, window=window, out_shape=(out_h, out_w), resampling=Resampling.nearest)
        transform = src.window_transform(window) * rasterio.Affine.scale(window.width / out_w, window.height / out_h)

    inside = geometry_mask([aoi], out_shape=data.shape, transform=transform, invert=True)
    if not inside.any():
        # An AOI smaller than one coarse pixel still has the pixel it touches.
        inside = geometry_mask([aoi], out_shape=data.shape, transform=transform, invert=True, all_touched=True)
    values = data[inside]
    valid = values[values != SCL_NO_DATA]
    if valid.size == 0:
        return None
    return float(100.0 * np.isin(valid, SCL_CLOUD_CLASSES).sum() / valid.size)


def _to_crs(geom_4326, crs):
    target = crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs)
    if CRS.from_user_input(target).equals(CRS.from_epsg(4326)):
        return geom_4326
    return reproject(shapely.segmentize(geom_4326, DENSIFY_DEG), "EPSG:4326", target)
