"""Small geometry helpers shared by the core's steps."""
from __future__ import annotations

import shapely


def polygonal_part(geom):
    """Only the polygons of a geometry: repairs and intersections may add lines or points."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else None
