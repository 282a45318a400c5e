"""The area of interest: geometry + CRS, checked once, sent to servers in a light form, measured in m².

Every step receives its area as an :class:`Area` (WKT and the CRS it is in) and reprojects it
here, in the core, to whatever it needs: lon/lat for a search, the image CRS for an export.

Areas are measured in a Lambert azimuthal equal-area projection centred on the AOI.
Being equal-area, its area ratios are exact wherever the AOI is, and being centred
there keeps shapes nearly true, which a single UTM zone cannot do for an AOI that
crosses zones. Edges are densified in degrees first so that long footprint edges
follow the same lines on the ground after projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .errors import SatPluginError
from .options import StepOptions, engine_checks, option

# shapely and pyproj are imported where they are used: the plugin's QGIS side builds Areas
# in a QGIS whose Python may have neither, and the engine checks them when it reads the job.

# Servers reject or slow down on huge request bodies; a hull is a safe superset
# because coverage is measured locally against the exact AOI afterwards.
MAX_QUERY_VERTICES = 500
# Densify footprint and AOI edges to about 5 km before projecting.
DENSIFY_DEG = 0.05


@dataclass(frozen=True)
class Area(StepOptions):
    """A polygon area as plain values: its WKT and the CRS that WKT is in."""

    wkt: str = option(help="the area's polygons as WKT")
    crs: str = option("EPSG:4326", help="the CRS of the WKT (EPSG code, WKT or PROJ string)")

    def check(self) -> None:
        if not engine_checks():
            return
        import shapely
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            shapely.from_wkt(self.wkt)
        except (shapely.errors.GEOSException, TypeError, ValueError):
            raise SatPluginError("The area is not valid WKT.") from None
        try:
            CRS.from_user_input(self.crs)
        except CRSError:
            raise SatPluginError(f"The area's CRS {self.crs!r} is not a CRS pyproj knows.") from None

    @classmethod
    def from_geometry(cls, geometry, crs: str = "EPSG:4326") -> "Area":
        # Exact, so the area read back is the same geometry, coordinate for coordinate.
        return cls(exact_wkt(geometry), str(crs))

    def geometry(self):
        """The geometry in its own CRS."""
        import shapely

        return shapely.from_wkt(self.wkt)

    def in_crs(self, crs) -> object:
        """The geometry reprojected to ``crs`` (unchanged when it is already there)."""
        return reproject(self.geometry(), self.crs, crs)

    def lonlat(self):
        """The checked area in EPSG:4326, as searches and downloads need it."""
        return prepare_aoi(self.in_crs("EPSG:4326"))


def exact_wkt(geometry) -> str:
    """WKT whose numbers read back as the very same floats.

    GEOS writes at most 16 significant digits, which rounds off the last bit of some
    coordinates (0.1 + 0.2 comes back as 0.3); Python's shortest round-trip repr does not.
    """
    kind = geometry.geom_type.upper()
    if geometry.is_empty:
        return f"{kind} EMPTY"
    if kind == "GEOMETRYCOLLECTION":
        return f"{kind} ({', '.join(exact_wkt(part) for part in geometry.geoms)})"
    dims = " Z" if geometry.has_z else ""
    parts = geometry.geoms if kind.startswith("MULTI") else None
    body = ", ".join(_wkt_body(part) for part in parts) if parts is not None else _wkt_body(geometry)[1:-1]
    return f"{kind}{dims} ({body})"


def _wkt_body(geometry) -> str:
    if geometry.is_empty:
        return "EMPTY"
    if geometry.geom_type == "Polygon":
        return f"({', '.join(_wkt_body(ring) for ring in (geometry.exterior, *geometry.interiors))})"
    numbers = (" ".join(_number(v) for v in xy) for xy in geometry.coords)
    return f"({', '.join(numbers)})"


def _number(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def reproject(geometry, source_crs, target_crs):
    """``geometry`` (one, or an array of them) from ``source_crs`` to ``target_crs``, vertex by vertex.

    Vertices only, as QGIS reprojects a layer: polygons drawn in one CRS keep their vertices,
    and a split or parcel boundary lands where the user sees it on the map. The transformer
    is made once per pair of CRSs, so reprojecting features one by one stays cheap.
    """
    import numpy as np
    import shapely

    if geometry is None:
        return geometry
    transformer = _transformer(str(source_crs), str(target_crs))
    if transformer is None:
        return geometry

    def coords(xy):
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometry, coords)


@lru_cache(maxsize=32)
def _transformer(source_crs: str, target_crs: str):
    from pyproj import CRS, Transformer

    src, dst = CRS.from_user_input(source_crs), CRS.from_user_input(target_crs)
    return None if src == dst else Transformer.from_crs(src, dst, always_xy=True)


def prepare_aoi(aoi):
    """A valid, non-empty polygonal geometry in EPSG:4326, or a clear error."""
    import shapely

    from .geometry import polygonal_part

    if aoi is None:
        raise SatPluginError("The area of interest is missing.")
    geom = shapely.make_valid(aoi) if not shapely.is_valid(aoi) else aoi
    geom = polygonal_part(geom)
    if geom is None or geom.is_empty or geom.area == 0:
        raise SatPluginError("The area of interest has no area: give a polygon layer or extent.")
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180.5 or maxx > 180.5 or miny < -90.5 or maxy > 90.5:
        raise SatPluginError(
            "The area of interest is not in longitude/latitude degrees (EPSG:4326); reproject it first."
        )
    return geom


def query_geometry(aoi) -> dict:
    """GeoJSON for the ``intersects`` of a search, simplified to a hull when it is big."""
    import shapely
    from shapely.geometry import mapping

    if shapely.get_num_coordinates(aoi) > MAX_QUERY_VERTICES:
        aoi = aoi.convex_hull
    return mapping(aoi)


class EqualAreaFrame:
    """Projects lon/lat geometries to an equal-area plane centred on the AOI."""

    def __init__(self, aoi):
        from pyproj import CRS

        centre = aoi.centroid
        self._proj4 = f"+proj=laea +lat_0={centre.y:.6f} +lon_0={centre.x:.6f} +datum=WGS84 +units=m +no_defs"
        self.crs = CRS.from_proj4(self._proj4)

    def project(self, geom):
        import shapely

        return reproject(shapely.segmentize(geom, DENSIFY_DEG), "EPSG:4326", self._proj4)

    def area_m2(self, geom) -> float:
        return float(self.project(geom).area) if geom is not None and not geom.is_empty else 0.0
