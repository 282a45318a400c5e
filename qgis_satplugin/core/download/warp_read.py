"""Read one band raster onto the target grid: only the window needed, overviews when coarse.

Used for STAC assets (over HTTP, through :mod:`remote_file`) and local files (JPEG 2000
inside .SAFE folders or zips, COGs). The steps:

1. when the target pixel is at least twice the source pixel, the coarsest overview
   that is still no coarser than the target is read instead of the full resolution;
2. a file that does not reach the grid (checked on its bounds) is not read at all;
3. GDAL's warper (``rasterio.warp.reproject`` from the open dataset) reads only the
   source blocks under the grid, plus the few pixels the kernel needs around them, and
   resamples them: bilinear for reflectance, nearest for classes, 0 as no-data on both
   sides. Over HTTP that means range requests for the tiles over the AOI only.

The result equals reprojecting the whole file (or the same overview) at once.
"""

from __future__ import annotations

import math

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile
from rasterio.warp import reproject
from rasterio.windows import Window, from_bounds

from ..grid import PixelGrid, transform_bounds
from ..http.client import BadAnswer
from ..http.hrefs import is_http_url
from .remote_file import remote_opener

PAD_PX = 2
# GDAL must not list folders next to a file it opens (a SAFE granule folder is large).
GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}


def is_remote(href: str) -> bool:
    """Read through the plugin's HTTP client (never through GDAL's own network access)."""
    return is_http_url(href)


def choose_overview(src_res: float, target_res: float, decimations: list[int]) -> int | None:
    """Index of the overview to read, or None for full resolution.

    The chosen overview is the coarsest whose pixel is still no larger than the target's.
    """
    factor = target_res / src_res
    best = None
    for i, d in enumerate(decimations):
        if 2 <= d <= factor + 1e-9 and (best is None or d > decimations[best]):
            best = i
    return best


def read_onto_grid(
    href: str, grid: PixelGrid, resampling: Resampling, dtype, pool=None, nodata: int = 0, sign=None
) -> np.ndarray:
    """The band at ``href`` resampled onto ``grid`` (a ``(height, width)`` array; 0 = no data).

    A file GDAL cannot decode raises :class:`BadAnswer` (worth another download when
    remote); a failed or canceled transfer raises what the transfer raised. ``sign``
    turns the remote URL into the one to request (a signed URL), request by request.
    """
    blob = None
    try:
        with rasterio.Env(**GDAL_ENV):
            path, opener = href, None
            if is_remote(href):
                path, opener, blob = remote_opener(href, pool, sign)
            with rasterio.open(path, opener=opener) as src:
                src_res = min(abs(src.transform.a), abs(src.transform.e))
                level = choose_overview(src_res, min(grid.pixel_width, grid.pixel_height), src.overviews(1))
            options = {} if level is None else {"overview_level": level}
            result = _read_and_warp(path, opener, grid, resampling, dtype, nodata, options)
    except (RasterioError, CPLE_BaseError) as exc:
        if blob is not None and blob.error is not None:
            raise blob.error from None
        raise BadAnswer(f"could not read {_name(href)}: {exc}") from None
    if blob is not None and blob.error is not None:
        # GDAL sometimes reports a failed read only as a warning: never keep such data.
        raise blob.error
    return result


def _read_and_warp(path, opener, grid: PixelGrid, resampling, dtype, nodata, open_options) -> np.ndarray:
    with rasterio.open(path, opener=opener, **open_options) as src:
        if source_window(src, grid) is None:
            return np.full((grid.height, grid.width), nodata, dtype=dtype)  # the file does not reach the grid
        # The warper reads the source blocks it needs itself, and computes every output
        # pixel from the file's own geotransform: the result is the same as warping
        # the whole file, whatever part of it is read. The target is a georeferenced
        # in-memory dataset rather than a bare array (which makes rasterio warn).
        profile = dict(driver="MEM", width=grid.width, height=grid.height, count=1, dtype=np.dtype(dtype).name,
                       crs=grid.pyproj_crs().to_wkt(), transform=grid.transform, nodata=nodata)
        with MemoryFile() as mem, mem.open(**profile) as dst:
            reproject(
                rasterio.band(src, 1),
                rasterio.band(dst, 1),
                src_nodata=src.nodata if src.nodata is not None else nodata,
                dst_nodata=nodata,
                resampling=resampling,
                num_threads=1,
            )
            return dst.read(1)


def source_window(src, grid: PixelGrid) -> Window | None:
    """The source pixels under the grid, padded by :data:`PAD_PX`; None when they do not overlap."""
    bounds = transform_bounds(grid.bounds, grid.pyproj_crs(), src.crs.to_wkt())
    win = from_bounds(*bounds, transform=src.transform)
    col0 = max(0, math.floor(win.col_off) - PAD_PX)
    row0 = max(0, math.floor(win.row_off) - PAD_PX)
    col1 = min(src.width, math.ceil(win.col_off + win.width) + PAD_PX)
    row1 = min(src.height, math.ceil(win.row_off + win.height) + PAD_PX)
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def _name(href: str) -> str:
    """The file's name for a message: never a query string, which may be a credential."""
    return href.split("?", 1)[0].rsplit("/", 1)[-1]
