"""The ground truth's polygons read by the engine from a vector file, as QGIS would read them.

Every feature in file order, the feature id (GDAL's FID, which QGIS uses too) as the default
parcel id, NULL as None, integer fields as integers even where GDAL hands a column with
NULLs over as floats. The result is the inline job the QGIS side would have sent, so the
rest of the step cannot tell the two apart (tests/qgis/test_rasterize_alg.py compares them).
A plain GeoPackage is read without GDAL, to the same values (``geopackage``).
"""
from __future__ import annotations

import math
from dataclasses import replace

from ..errors import SatPluginError
from .geopackage import read_plain_geopackage
from .options import GroundTruthOptions, PolygonFile


def with_polygons_read(options: GroundTruthOptions) -> GroundTruthOptions:
    """``options`` with the polygons of its ``polygons_file`` inline (unchanged when it has none)."""
    spec = options.polygons_file
    if spec is None:
        return options
    found = read_polygons(spec)
    return replace(options, polygons=found["polygons"], class_values=found["class_values"],
                   parcel_ids=found["parcel_ids"], class_names=found["class_names"], polygons_file=None)


def read_polygons(spec: PolygonFile) -> dict:
    """The file's features as the inline job holds them (``polygons`` as WKB hex, ``class_values``,
    ``parcel_ids``, ``class_names``), and ``crs``, the file's CRS as GDAL reports it ('EPSG:<code>'
    or WKT; None when it has none)."""
    wanted = list(dict.fromkeys(f for f in (spec.class_field, spec.id_field, spec.name_field) if f))
    found = read_plain_geopackage(spec.path, spec.layer, wanted) or _read_with_gdal(spec, wanted)
    values, wkb = found["columns"], found["wkb"]
    ids = values[spec.id_field] if spec.id_field else found["fids"]
    if any(i is None for i in ids):
        raise SatPluginError(f"ID_FIELD: some features have no value in '{spec.id_field}'.")
    return {
        "polygons": tuple(None if g is None else g.hex() for g in wkb),
        "class_values": tuple(values[spec.class_field]),
        "parcel_ids": tuple(ids),
        "class_names": tuple(None if n is None else str(n) for n in values[spec.name_field]) if spec.name_field else None,
        "crs": found["crs"],
    }


def _read_with_gdal(spec: PolygonFile, wanted: list) -> dict:
    """What ``read_plain_geopackage`` gives, for any file GDAL reads."""
    import pyogrio.raw
    from pyogrio.errors import DataLayerError, DataSourceError, FieldError

    try:
        meta, fids, wkb, columns = pyogrio.raw.read(spec.path, layer=spec.layer, columns=wanted, return_fids=True)
    except (DataSourceError, DataLayerError, FieldError) as exc:
        raise SatPluginError(f"The polygon file {spec.path} cannot be read ({exc}).") from None
    names = list(meta["fields"])
    missing = [f for f in wanted if f not in names]
    if missing:
        raise SatPluginError(f"The polygon file has no field named '{missing[0]}'.")
    values = {name: _plain(column, dtype) for name, column, dtype in zip(names, columns, meta["dtypes"])}
    return {"fids": [int(fid) for fid in fids], "wkb": wkb, "columns": values, "crs": meta.get("crs")}


def _plain(column, dtype: str) -> list:
    """A column as QGIS gives its values: ints for integer fields, None for NULL."""
    if str(dtype).startswith(("int", "uint")):
        return [None if isinstance(v, float) and math.isnan(v) else int(v) for v in column.tolist()]
    if str(dtype).startswith("float"):
        return [None if math.isnan(v) else float(v) for v in column.tolist()]
    return [None if v is None else v for v in column.tolist()]
