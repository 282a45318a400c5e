"""The search result as a GeoPackage layer: one feature per product, clipped to the AOI.

The file is written under a temporary name in the target folder and then renamed over
the target, so QGIS (or a model step reading it) never sees half a file, and a failed
or canceled run leaves the previous result intact. :func:`.options.check_footprints_path` refuses an
output that cannot be written before the search runs, so a long search is not lost to
a read-only folder at the very end.

pyogrio's raw writer is called directly rather than through a GeoDataFrame: it takes
exact field types and NULL masks, so an unknown orbit stays NULL instead of becoming
a float NaN or a 0, and the module does not depend on geopandas.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from pyogrio.raw import write as ogr_write
from pyproj import CRS
from shapely.geometry import MultiPolygon

from ..atomic import user_error_for
from ..errors import SatPluginError
from ..geometry import polygonal_part
from ..products import Product, product_row
from .options import check_footprints_path

DEFAULT_LAYER = "products"

# Field name -> numpy dtype of the column (object = text). Unknown values are written
# as NULL through a mask, never as 0 or "".
FIELDS = {
    "product_id": object,
    "datetime": object,  # ISO 8601 UTC text: sorts correctly and survives every format
    "platform": object,
    "mgrs_tile": object,
    "rel_orbit": np.int32,
    "baseline": object,
    "collection": object,
    "cloud": np.float64,  # scene cloud %
    "aoi_cover": np.float64,  # % of the AOI inside the footprint
    "aoi_cloud": np.float64,  # % cloud over the AOI, NULL when not measured
    "rank": np.int32,
    "selected": np.int32,  # 0/1: GeoPackage has no boolean that every reader agrees on
    "backend": object,
    "download": object,  # JSON text
    "acq_group": object,  # date + relative orbit: tiles of one overpass
}


def _row(p: Product) -> dict:
    # The GeoPackage stores the download references as JSON text and the selection as 0/1.
    row = product_row(p)
    return {**row, "selected": int(row["selected"]), "download": json.dumps(row["download"], sort_keys=True)}


def _as_multipolygon(geom):
    geom = polygonal_part(geom)
    if geom is None:
        return None
    return geom if geom.geom_type == "MultiPolygon" else MultiPolygon([geom])


def _columns(products: list[Product]):
    """Field arrays and null masks in the layout ``pyogrio.raw.write`` takes."""
    rows = [_row(p) for p in products]
    data, masks = [], []
    for name, dtype in FIELDS.items():
        values = [r[name] for r in rows]
        mask = np.array([v is None for v in values], dtype=bool)
        if dtype is object:
            column = np.array(["" if v is None else str(v) for v in values], dtype=object)
        else:
            fill = np.nan if dtype is np.float64 else 0
            column = np.array([fill if v is None else v for v in values], dtype=dtype)
        data.append(column)
        masks.append(mask if mask.any() else None)
    return data, masks


def write_footprints_gpkg(products: list[Product], path, layer: str = DEFAULT_LAYER) -> str:
    """Write the products to ``path`` (replacing it) and return the path.

    An empty list still gives a valid layer with all fields, so a model that chains on
    the result gets an empty layer instead of an error.
    """
    target = check_footprints_path(path)
    folder = target.parent if str(target.parent) else Path(".")
    data, masks = _columns(products)
    geoms = [_as_multipolygon(p.aoi_footprint if p.aoi_footprint is not None else p.footprint) for p in products]
    wkb = np.array([None if g is None else shapely.to_wkb(g) for g in geoms], dtype=object)
    tmp = folder / f".{target.stem}.{uuid.uuid4().hex[:8]}.tmp.gpkg"
    try:
        ogr_write(
            str(tmp),
            wkb,
            data,
            list(FIELDS),
            field_mask=masks,
            layer=layer,
            driver="GPKG",
            geometry_type="MultiPolygon",
            crs=CRS.from_epsg(4326).to_wkt(),
        )
        os.replace(tmp, target)
    except (OSError, DataSourceError, DataLayerError) as exc:
        # GDAL's messages are not OSErrors: the folder's state says what went wrong.
        error = user_error_for(exc, folder, "The previous result, if any, is unchanged.")
        if error is None:
            check_footprints_path(target)
            error = SatPluginError(
                f"Could not write {target.name} in {folder} ({exc}); check that the folder is writable and has "
                "free space. The previous result, if any, is unchanged."
            )
        raise error from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            if leftover.exists():
                leftover.unlink()
    return str(target)
