"""``index.gpkg``: every sample's footprint as a polygon, to see the dataset on a map.

Loaded in QGIS, it shows where each split lies (style by ``split``), which areas were
dropped, and answers "which file holds this field?". pyogrio's raw writer takes exact
field types, without going through geopandas. The file's "last change" stamp is the
newest acquisition it indexes, not the clock, so the same export gives the same bytes
(a rerun or an interrupted run can be checked against an undisturbed one) with the same
GDAL: another GDAL release may write another GeoPackage version and other R-tree
triggers for the same rows.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import shapely

NAME = "index.gpkg"
LAYER = "samples"
FIELDS = {
    "sample_id": object,
    "split": object,
    "path": object,
    "row": np.int32,
    "col": np.int32,
    "n_dates": np.int32,
    "first_date": object,
    "last_date": object,
    "dates": object,  # JSON list of ISO datetimes
    "class_hist": object,  # JSON {class id: label pixels}; {} without class labels
}


def index_row(sample, path: str, class_hist: dict, patch_size: int) -> dict:
    dates = sample.iso_dates
    return {
        "sample_id": sample.sample_id,
        "split": sample.split,
        "path": path,
        "row": sample.row,
        "col": sample.col,
        "n_dates": len(dates),
        "first_date": dates[0],
        "last_date": dates[-1],
        "dates": json.dumps(dates),
        "class_hist": json.dumps({str(k): int(v) for k, v in sorted(class_hist.items())}),
        "_footprint": footprint(sample.transform, patch_size),
        "_index": sample.index,
        "_transform": tuple(float(v) for v in sample.transform),  # for the STAC item (stac_catalog.py)
    }


def footprint(transform, size: int):
    a, _, c, _, e, f = transform
    return shapely.box(c, f + size * e, c + size * a, f)


def write_index(folder: Path, rows: list, crs_wkt: str, extra_fields: dict | None = None, name: str = NAME) -> Path:
    """The index of ``rows`` (each with FIELDS, ``extra_fields``, ``_footprint`` and ``_index``), in ``_index`` order."""
    from pyogrio.raw import write as ogr_write

    rows = sorted(rows, key=lambda r: r["_index"])
    path = Path(folder) / name
    fields = {**FIELDS, **(extra_fields or {})}
    data = []
    for field, dtype in fields.items():
        values = [r[field] for r in rows]
        data.append(np.array(values, dtype=object) if dtype is object else np.array(values, dtype=dtype))
    wkb = np.array([shapely.to_wkb(r["_footprint"]) for r in rows], dtype=object)
    stamp = max((r["last_date"] for r in rows), default="2015-06-23T00:00:00Z")  # else Sentinel-2A's launch
    with _gdal_config(OGR_CURRENT_DATE=stamp.replace("Z", ".000Z") if "." not in stamp else stamp):
        ogr_write(str(path), wkb, data, list(fields), layer=LAYER, driver="GPKG", geometry_type="Polygon", crs=crs_wkt)
    return path


@contextmanager
def _gdal_config(**options):
    """GDAL configuration options for one call, then the previous values again."""
    import pyogrio

    previous = {k: pyogrio.get_gdal_config_option(k) for k in options}
    pyogrio.set_gdal_config_options(options)
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options(previous)
