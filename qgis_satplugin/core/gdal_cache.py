"""A small GDAL block cache for steps that stream rasters strip by strip or chunk by chunk.

GDAL's default cache is 5 % of RAM, and written blocks wait in it until it is full or the
file is closed: writing a full tile's five ground-truth rasters held 1.2 GB there. These
steps read or write every block once, so a small cache costs nothing in speed.
"""
from __future__ import annotations

GDAL_CACHE_MB = 64


def small_block_cache(at_least_bytes: int = 0):
    """A context in which GDAL's block cache is GDAL_CACHE_MB (or ``at_least_bytes``, if more);
    rasterio restores the previous size after."""
    import rasterio

    return rasterio.Env(GDAL_CACHEMAX=max(GDAL_CACHE_MB * 1024 * 1024, int(at_least_bytes)))
