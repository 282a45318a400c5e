"""Pixel grids: a CRS, a north-up origin, a pixel size and a shape.

Sentinel-2 tiles start on multiples of 60 m in their UTM zone, so a grid whose origin
is snapped to 60 m lines up with the 10, 20 and 60 m bands of every tile in the zone.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import SatPluginError

if TYPE_CHECKING:  # pyproj is imported where it is used (see PixelGrid)
    from pyproj import CRS

S2_GRID_STEP_M = 60.0
# The largest grid one raster may have: 2^34 pixels is 140 full Sentinel-2 tiles at 10 m.
# A grid past it is nearly always a wrong pixel size or CRS, and would take hours or
# allocate terabytes before failing.
MAX_GRID_PIXELS = 1 << 34
# Share of the machine's memory one step may plan to hold at once.
MEMORY_SHARE = 0.5
# The tile side of the GeoTIFFs written on a grid (PixelGrid.geotiff_profile).
GEOTIFF_TILE = 256


@dataclass(frozen=True)
class PixelGrid:
    """A north-up raster grid. ``crs`` is anything pyproj accepts (EPSG code, WKT).

    Pixels may be slightly non-square, as in rasters resampled by other tools.
    """

    crs: str
    x_min: float
    y_max: float
    pixel_width: float
    pixel_height: float
    width: int
    height: int

    def __post_init__(self):
        for size in (self.pixel_width, self.pixel_height):
            if not (size > 0 and math.isfinite(size)):
                raise SatPluginError(f"Pixel size must be a positive number, got {size}.")
        if self.width < 1 or self.height < 1:
            raise SatPluginError(f"The grid is empty ({self.width} x {self.height} pixels).")

    @property
    def n_pixels(self) -> int:
        return self.width * self.height

    def check_size(self, pixel_size_hint: str = "PIXEL_SIZE") -> "PixelGrid":
        """Refuse a grid larger than :data:`MAX_GRID_PIXELS`, with its size and what to change."""
        if self.n_pixels > MAX_GRID_PIXELS:
            raise SatPluginError(
                f"The grid would be {self.width} x {self.height} pixels ({self.n_pixels:.3g} pixels of "
                f"{self.pixel_width:g} {_unit(self.crs)}), more than the {MAX_GRID_PIXELS:.3g} one raster may have; "
                f"use a larger {pixel_size_hint} or a smaller extent."
            )
        return self

    @classmethod
    def square(cls, crs, x_min, y_max, pixel_size, width, height) -> "PixelGrid":
        return cls(str(crs), float(x_min), float(y_max), float(pixel_size), float(pixel_size), int(width), int(height))

    @classmethod
    def from_transform(cls, crs, transform, width, height) -> "PixelGrid":
        """From a GDAL/rasterio affine transform; rotated grids are refused."""
        if transform.b != 0 or transform.d != 0 or transform.a <= 0 or transform.e >= 0:
            raise SatPluginError("Only north-up rasters (no rotation, no flipped axes) can serve as the grid.")
        return cls(str(crs), transform.c, transform.f, transform.a, -transform.e, int(width), int(height))

    @property
    def pixel_area(self) -> float:
        return self.pixel_width * self.pixel_height

    @property
    def x_max(self) -> float:
        return self.x_min + self.width * self.pixel_width

    @property
    def y_min(self) -> float:
        return self.y_max - self.height * self.pixel_height

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x_min, self.y_min, self.x_max, self.y_max)

    @property
    def transform(self):
        """The rasterio/GDAL affine transform."""
        from affine import Affine

        return Affine(self.pixel_width, 0.0, self.x_min, 0.0, -self.pixel_height, self.y_max)

    def pyproj_crs(self) -> CRS:
        from pyproj import CRS  # here: PixelGrid is part of the options, which load without pyproj

        return CRS.from_user_input(self.crs)

    def crs_wkt(self) -> str:
        """The CRS as WKT text that is the same whichever PROJ writes it, for outputs compared byte for byte.

        PROJ's WKT2 text for one EPSG code changes between PROJ releases (QGIS's and the
        engine's wheels differ), while GDAL's WKT1 with its ``AUTHORITY["EPSG", …]`` does
        not, and names the full definition for any reader. A CRS without an EPSG code
        keeps WKT2, which alone describes it completely.
        """
        crs = self.pyproj_crs()
        return crs.to_wkt("WKT1_GDAL") if crs.to_epsg() else crs.to_wkt()

    def geotiff_profile(self, count: int, dtype, nodata) -> dict:
        """``rasterio.open(path, "w", **profile)`` arguments for a GeoTIFF on this grid written in pieces.

        Tiled 256 x 256, so that writing a strip or a window touches few blocks, and BIGTIFF
        where GDAL judges the file may pass 4 GiB (a large AOI). Compression and layout are
        the caller's, as they depend on what the file is for.
        """
        return dict(
            driver="GTiff",
            width=self.width,
            height=self.height,
            count=count,
            dtype=dtype,
            nodata=nodata,
            crs=self.pyproj_crs().to_wkt(),
            transform=self.transform,
            tiled=True,
            blockxsize=GEOTIFF_TILE,
            blockysize=GEOTIFF_TILE,
            BIGTIFF="IF_SAFER",
        )


def _unit(crs) -> str:
    try:
        from pyproj import CRS  # here: PixelGrid is part of the options, which load without pyproj

        axis = CRS.from_user_input(crs).axis_info[0]
    except Exception:  # noqa: BLE001 - only for a message
        return "units"
    return {"metre": "m", "degree": "degrees"}.get(axis.unit_name, axis.unit_name or "units")


def memory_budget_bytes() -> int:
    """How much memory a step may plan to use: :data:`MEMORY_SHARE` of the physical memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - Windows
        total = 8 << 30
    return int(total * MEMORY_SHARE)


def check_memory(needed_bytes: int, what: str, advice: str) -> None:
    """Refuse work whose planned memory exceeds :func:`memory_budget_bytes`, before allocating it."""
    budget = memory_budget_bytes()
    if needed_bytes > budget:
        raise SatPluginError(
            f"{what} needs about {needed_bytes / 2**30:.1f} GiB of memory, more than the "
            f"{budget / 2**30:.1f} GiB this machine can give it; {advice}"
        )


def check_longitude_span(bounds, crs) -> None:
    """Refuse geographic bounds wider than half the globe: an area across the antimeridian.

    Such an area's longitudes jump from +180 to -180, so its bounds cover the whole
    globe the other way round, and no UTM grid fits it.
    """
    from pyproj import CRS  # here: PixelGrid is part of the options, which load without pyproj

    src = CRS.from_user_input(crs)
    if src.is_geographic and (bounds[2] - bounds[0]) > 180.0:
        raise SatPluginError(
            f"The area spans {bounds[2] - bounds[0]:.1f} degrees of longitude ({bounds[0]:.3f} to {bounds[2]:.3f}), "
            "which means it crosses the antimeridian (180 degrees); split it at 180 degrees and run each side "
            "separately, or give a projected CRS and extent."
        )


def utm_epsg_for(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 / UTM zone that contains a lon/lat point."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def snapped_grid(bounds, crs, pixel_size: float, snap: float = S2_GRID_STEP_M) -> PixelGrid:
    """The smallest grid covering ``bounds`` whose origin lies on multiples of ``snap``.

    The extent grows outwards to whole pixels, so every part of ``bounds`` is inside.
    """
    x0, y0, x1, y1 = (float(v) for v in bounds)
    if not (x1 > x0 and y1 > y0):
        raise SatPluginError(f"The extent {bounds} is empty.")
    if pixel_size <= 0:
        raise SatPluginError(f"Pixel size must be a positive number, got {pixel_size}.")
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1, pixel_size)):
        raise SatPluginError(f"The extent {bounds} or the pixel size {pixel_size} is not a finite number.")
    left = math.floor(x0 / snap) * snap
    top = math.ceil(y1 / snap) * snap
    width = max(1, math.ceil(round((x1 - left) / pixel_size, 9)))
    height = max(1, math.ceil(round((top - y0) / pixel_size, 9)))
    return PixelGrid.square(crs, left, top, pixel_size, width, height).check_size()


def utm_grid_for_bounds(bounds, crs, pixel_size: float) -> PixelGrid:
    """A Sentinel-2-aligned grid in the UTM zone of the centre of ``bounds`` (given in ``crs``)."""
    from pyproj import CRS, Transformer  # here: PixelGrid is part of the options, which load without pyproj

    src = CRS.from_user_input(crs)
    check_longitude_span(bounds, src)
    to_lonlat = Transformer.from_crs(src, CRS.from_epsg(4326), always_xy=True)
    cx, cy = (bounds[0] + bounds[2]) / 2.0, (bounds[1] + bounds[3]) / 2.0
    lon, lat = to_lonlat.transform(cx, cy)
    epsg = utm_epsg_for(lon, lat)
    utm_bounds = transform_bounds(bounds, src, CRS.from_epsg(epsg))
    return snapped_grid(utm_bounds, f"EPSG:{epsg}", pixel_size)


def transform_bounds(bounds, src, dst, densify: int = 21):
    """Bounds in ``dst`` of a rectangle in ``src``, following its curved edges."""
    from pyproj import CRS, Transformer  # here: PixelGrid is part of the options, which load without pyproj

    src, dst = CRS.from_user_input(src), CRS.from_user_input(dst)
    if src == dst:
        return tuple(float(v) for v in bounds)
    transformer = Transformer.from_crs(src, dst, always_xy=True)
    return transformer.transform_bounds(*bounds, densify_pts=densify)
