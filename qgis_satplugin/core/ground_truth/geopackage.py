"""A GeoPackage's polygons read with Python's own sqlite3: the common case of ``polygon_file``, fast.

Importing pyogrio costs a quarter of a second (it imports pandas), about as much as reading
100,000 parcels; a ground truth from a GeoPackage, the most common file and the one QGIS
writes for a selection or a filter, pays it in every engine run. A GeoPackage is an SQLite
database whose geometries are WKB behind a short header (OGC GeoPackage 1.3, 2.1.3), so
the plain cases read here give the same values as GDAL does:

* a feature table (not a view) with an integer primary key, which GDAL takes as the FID;
* geometries that are NULL, or standard GeoPackage blobs holding little-endian 2D Polygon or
  MultiPolygon WKB: those bytes are what GDAL hands over;
* wanted fields declared INTEGER, INT, MEDIUMINT, REAL, DOUBLE or TEXT, each value of its
  declared kind or NULL;
* an SRS of organisation EPSG (GDAL reports it by its code), or none.

Anything else, such as curves, 3D, big-endian WKB, dates, float32 fields, a value SQLite
stored against its column's type, several layers and none named, a missing field, a file in
WAL mode or with a journal beside it (QGIS editing it, a crashed writer), or a file that is
not a GeoPackage, returns None, and GDAL reads the file (pyogrio). The file is opened
read-only, and nothing is written beside it.
"""
from __future__ import annotations

import re
import sqlite3
from pathlib import Path

# Bytes of the header's envelope, by its indicator (bits 1-3 of the flags byte); 5-7 are invalid.
ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}
# The first five bytes of little-endian 2D Polygon and MultiPolygon WKB.
PLAIN_WKB_STARTS = (b"\x01\x03\x00\x00\x00", b"\x01\x06\x00\x00\x00")
# Declared column types whose values GDAL hands over as SQLite stores them: its 64-bit
# integers (INT, INTEGER), its 32-bit ones (MEDIUMINT: values that fit), doubles, and text.
# GDAL casts SMALLINT, TINYINT and FLOAT values to narrower types, so GDAL reads those.
INT32_TYPE = "MEDIUMINT"
INTEGER_TYPES = {"INTEGER", "INT", INT32_TYPE}
FLOAT_TYPES = {"REAL", "DOUBLE"}
TEXT_TYPE = re.compile(r"TEXT(\(\d+\))?$")
INT32_RANGE = (-(2**31), 2**31 - 1)


def read_plain_geopackage(path: str, layer: str | None, columns: list) -> dict | None:
    """``fids``, ``wkb`` (bytes or None), ``columns`` (name -> values) and ``crs`` of a plain GeoPackage
    layer, every feature in FID order; None when the file is not one of the plain cases above."""
    if Path(path).suffix.lower() != ".gpkg" or not _closed_rollback_database(Path(path)):
        return None
    try:
        with _read_only(path) as db:
            return _read(db, layer, columns)
    except (sqlite3.Error, ValueError):
        return None  # not SQLite, locked, or not a GeoPackage layout: GDAL says what is wrong


def _closed_rollback_database(path: Path) -> bool:
    """An SQLite file in rollback-journal mode with no journal beside it: one that SQLite reads
    without writing. In WAL mode even a read-only connection creates the -wal and -shm files,
    and a hot journal (a writer that crashed) is only recovered by writing."""
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError:
        return False
    journals = (path.with_name(path.name + suffix) for suffix in ("-journal", "-wal"))
    # Bytes 18 and 19 of the header are the write and read versions: 1 rollback, 2 WAL.
    return header[:16] == b"SQLite format 3\x00" and header[18:20] == b"\x01\x01" and not any(
        j.exists() for j in journals)


class _read_only:
    """An SQLite connection that cannot write (a journal in WAL mode included), closed on exit."""

    def __init__(self, path):
        self.db = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)

    def __enter__(self):
        return self.db

    def __exit__(self, *exc):
        self.db.close()


def _read(db, layer, columns):
    tables = db.execute(
        "SELECT c.table_name, g.column_name, g.srs_id FROM gpkg_contents c JOIN gpkg_geometry_columns g"
        " ON g.table_name = c.table_name WHERE c.data_type = 'features'"
    ).fetchall()
    chosen = [t for t in tables if layer is None or t[0] == layer]
    if len(chosen) != 1:
        return None  # GDAL's choice of a "first" layer, or a name it matches loosely: let it choose
    table, geometry_column, srs_id = chosen[0]
    crs = _crs(db, srs_id)
    declared = {row[1]: (row[2].upper(), row[5]) for row in db.execute(f"PRAGMA table_info({_quoted(table)})")}
    fid_columns = [name for name, (kind, pk) in declared.items() if pk and kind == "INTEGER"]
    if crs is False or len(fid_columns) != 1 or not all(c in declared and c not in (fid_columns[0], geometry_column)
                                                      for c in columns):
        return None
    kinds = [_kind(declared[c][0]) for c in columns]
    if None in kinds:
        return None
    names = [fid_columns[0], geometry_column, *columns]
    rows = db.execute(
        f"SELECT {', '.join(map(_quoted, names))} FROM {_quoted(table)} ORDER BY {_quoted(fid_columns[0])}"
    ).fetchall()
    wkb = [_wkb(row[1]) for row in rows]
    if False in wkb:
        return None
    values = {}
    for k, (name, kind) in enumerate(zip(columns, kinds), start=2):
        column = [row[k] for row in rows]
        if not all(v is None or type(v) is kind for v in column):
            return None  # SQLite keeps a value of another type than the column's; GDAL converts it
        if declared[name][0] == INT32_TYPE and any(v is not None and not INT32_RANGE[0] <= v <= INT32_RANGE[1]
                                                   for v in column):
            return None  # GDAL reads MEDIUMINT as 32 bits
        values[name] = column
    return {"fids": [row[0] for row in rows], "wkb": wkb, "columns": values, "crs": crs}


def _crs(db, srs_id):
    """'EPSG:<code>' as GDAL reports it, None for no SRS, False for what GDAL should interpret."""
    if srs_id in (0, -1):
        return False  # GeoPackage's "undefined" systems: how GDAL reports them depends on its version
    found = db.execute(
        "SELECT organization, organization_coordsys_id FROM gpkg_spatial_ref_sys WHERE srs_id = ?", (srs_id,)
    ).fetchone()
    if found is None or str(found[0]).upper() != "EPSG" or not isinstance(found[1], int) or found[1] <= 0:
        return False
    return f"EPSG:{found[1]}"


def _kind(declared: str):
    if declared in INTEGER_TYPES:
        return int
    if declared in FLOAT_TYPES:
        return float
    if TEXT_TYPE.match(declared):
        return str
    return None


def _wkb(blob):
    """The WKB of a standard GeoPackage blob of a plain polygon; None for NULL; False otherwise."""
    if blob is None:
        return None
    if not isinstance(blob, bytes) or len(blob) < 8 or blob[:2] != b"GP" or blob[2] != 0:
        return False
    flags = blob[3]
    envelope = ENVELOPE_BYTES.get((flags >> 1) & 0b111)
    if envelope is None or flags & 0b11110000:  # an invalid envelope; the empty flag, extended or reserved bits
        return False
    wkb = blob[8 + envelope:]
    return wkb if wkb[:5] in PLAIN_WKB_STARTS else False


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
