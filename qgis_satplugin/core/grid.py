"""Pixel grids: a CRS, a north-up origin, a pixel size and a shape.

Sentinel-2 tiles start on multiples of 60 m in their UTM zone, so a grid whose origin
is snapped to 60 m lines up with the 10, 20 and 60 m bands of every tile in the zone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from pyproj import CRS, Transformer

from .errors import SatPluginError

S2_GRID_STEP_M = 60.0


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
        return CRS.from_user_input(self.crs)


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
    left = math.floor(x0 / snap) * snap
    top = math.ceil(y1 / snap) * snap
    width = max(1, math.ceil(round((x1 - left) / pixel_size, 9)))
    height = max(1, math.ceil(round((top - y0) / pixel_size, 9)))
    return PixelGrid.square(crs, left, top, pixel_size, width, height)


def utm_grid_for_bounds(bounds, crs, pixel_size: float) -> PixelGrid:
    """A Sentinel-2-aligned grid in the UTM zone of the centre of ``bounds`` (given in ``crs``)."""
    src = CRS.from_user_input(crs)
    to_lonlat = Transformer.from_crs(src, CRS.from_epsg(4326), always_xy=True)
    cx, cy = (bounds[0] + bounds[2]) / 2.0, (bounds[1] + bounds[3]) / 2.0
    lon, lat = to_lonlat.transform(cx, cy)
    epsg = utm_epsg_for(lon, lat)
    utm_bounds = transform_bounds(bounds, src, CRS.from_epsg(epsg))
    return snapped_grid(utm_bounds, f"EPSG:{epsg}", pixel_size)


def transform_bounds(bounds, src, dst, densify: int = 21):
    """Bounds in ``dst`` of a rectangle in ``src``, following its curved edges."""
    src, dst = CRS.from_user_input(src), CRS.from_user_input(dst)
    if src == dst:
        return tuple(float(v) for v in bounds)
    transformer = Transformer.from_crs(src, dst, always_xy=True)
    return transformer.transform_bounds(*bounds, densify_pts=densify)
