"""A GeoPackage's polygons read with Python's own sqlite3: the common case of ``polygon_file``, fast.

Importing pyogrio costs a quarter of a second (it imports pandas), about as much as reading
100,000 parcels; a ground truth from a GeoPackage, the most common file and the one QGIS
writes for a selection or a filter, pays it in every engine run. A GeoPackage is an SQLite
database whose geometries are WKB behind a short header (OGC GeoPackage 1.3, 2.1.3), so
the plain cases read here give the same values as GDAL does:

* the file's only table, or the feature table named, whose one key column is SQLite's
  rowid (INTEGER PRIMARY KEY): GDAL's FID, and its reading order;
* geometries that are NULL, or standard GeoPackage blobs of little-endian 2D Polygon or
  MultiPolygon WKB that ends where the geometry ends: the bytes GDAL hands over;
* wanted fields declared INTEGER, INT, MEDIUMINT, REAL, DOUBLE or TEXT, each value of its
  declared kind (text without NUL) or NULL;
* an SRS of organisation EPSG whose code is its srs_id and known to PROJ (GDAL reports it
  by that code).

Anything else, such as curves, 3D, big-endian or malformed WKB, dates, float32 fields, a
value SQLite stored against its column's type, a custom or undefined SRS, several tables and
none named, a missing field, a file in WAL mode or with a journal beside it (QGIS editing
it, a crashed writer), or a file that is not a GeoPackage, returns None, and GDAL reads the
file (pyogrio). The file is opened read-only, and nothing is written beside it.
"""
from __future__ import annotations

import re
import sqlite3
import struct
from pathlib import Path

# Bytes of the header's envelope, by its indicator (bits 1-3 of the flags byte); 5-7 are invalid.
ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}
# The header GDAL and QGIS write: version 0, little-endian, an x/y envelope (32 bytes).
COMMON_HEADER = b"GP\x00\x03"
# The first bytes of little-endian 2D Polygon and MultiPolygon WKB, and of those with one ring.
POLYGON_START, MULTIPOLYGON_START = b"\x01\x03\x00\x00\x00", b"\x01\x06\x00\x00\x00"
ONE_RING_POLYGON = POLYGON_START + b"\x01\x00\x00\x00"
ONE_RING_MULTIPOLYGON = MULTIPOLYGON_START + b"\x01\x00\x00\x00" + ONE_RING_POLYGON
# Declared column types whose values GDAL hands over as SQLite stores them: its 64-bit
# integers (INT, INTEGER), its 32-bit ones (MEDIUMINT: values that fit), doubles, and text.
# GDAL casts SMALLINT, TINYINT and FLOAT values to narrower types, so GDAL reads those.
INT32_TYPE = "MEDIUMINT"
INTEGER_TYPES = {"INTEGER", "INT", INT32_TYPE}
FLOAT_TYPES = {"REAL", "DOUBLE"}
TEXT_TYPE = re.compile(r"TEXT(\(\d+\))?$")
INT32_RANGE = (-(2**31), 2**31 - 1)
FLOAT_EXACT = 2**53  # integers up to this survive a double


def read_plain_geopackage(path: str, layer: str | None, columns: list) -> dict | None:
    """``fids``, ``wkb`` (bytes or None), ``columns`` (name -> values) and ``crs`` of a plain GeoPackage
    layer, every feature in FID order; None when the file is not one of the plain cases above."""
    if Path(path).suffix.lower() != ".gpkg" or not _closed_rollback_database(Path(path)):
        return None
    try:
        with _ReadOnly(path) as db:
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


class _ReadOnly:
    """An SQLite connection that cannot write (a journal in WAL mode included), closed on exit."""

    def __init__(self, path):
        # No waiting on a writer's lock (sqlite3 waits 5 s by default): GDAL then reads the file.
        self.db = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, timeout=0)

    def __enter__(self):
        return self.db

    def __exit__(self, *exc):
        self.db.close()


def _read(db, layer, columns):
    contents = db.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall()
    if layer is None and len(contents) != 1:
        return None  # GDAL's choice of a "first" layer (an attribute table may be it): let it choose
    table = layer if layer is not None else contents[0][0]
    if (table, "features") not in contents:
        return None  # a name GDAL matches loosely, or not a feature table
    found = db.execute("SELECT column_name, srs_id FROM gpkg_geometry_columns WHERE table_name = ?", (table,)).fetchall()
    if len(found) != 1:
        return None
    (geometry_column, srs_id), = found
    declared = {row[1]: (row[2].upper(), row[5]) for row in db.execute(f"PRAGMA table_info({_quoted(table)})")}
    keys = [name for name, (kind, key) in declared.items() if key]
    rowid = next((name for name in ("_rowid_", "rowid", "oid") if name not in declared), None)
    kinds = [_kind(declared[c][0]) if c in declared and c not in (*keys, geometry_column) else None for c in columns]
    crs = _crs(db, srs_id)
    if len(keys) != 1 or declared[keys[0]][0] != "INTEGER" or rowid is None or None in kinds or crs is False:
        return None
    fid = keys[0]
    rows = db.execute(
        f"SELECT {rowid}, {', '.join(map(_quoted, [fid, geometry_column, *columns]))} FROM {_quoted(table)} ORDER BY {rowid}"
    ).fetchall()
    # GDAL's FID is the key when it is SQLite's rowid (INTEGER PRIMARY KEY), and it reads in rowid
    # order; a key that is not the rowid (declared DESC, say) is another case.
    if any(row[0] != row[1] for row in rows):
        return None
    wkb = _plain_wkbs([row[2] for row in rows])
    if wkb is None:
        return None
    values = {}
    for k, (name, kind) in enumerate(zip(columns, kinds), start=3):
        column = [row[k] for row in rows]
        if not all(v is None or type(v) is kind for v in column):
            return None  # SQLite keeps a value of another type than the column's; GDAL converts it
        if declared[name][0] == INT32_TYPE and any(v is not None and not INT32_RANGE[0] <= v <= INT32_RANGE[1]
                                                   for v in column):
            return None  # GDAL reads MEDIUMINT as 32 bits
        if kind is str and any(v is not None and "\x00" in v for v in column):
            return None  # GDAL's strings end at a NUL
        if kind is int and None in column and any(v is not None and abs(v) > FLOAT_EXACT for v in column):
            return None  # pyogrio hands an integer column with NULLs over as doubles, which round these
        values[name] = column
    return {"fids": [row[1] for row in rows], "wkb": wkb, "columns": values, "crs": crs}


def _crs(db, srs_id):
    """'EPSG:<code>' as GDAL reports it, None for no SRS, False for what GDAL should interpret.

    GDAL takes the EPSG code only when it is the srs_id itself and PROJ knows it; otherwise
    it reads the definition's WKT.
    """
    found = db.execute(
        "SELECT organization, organization_coordsys_id, definition FROM gpkg_spatial_ref_sys WHERE srs_id = ?",
        (srs_id,),
    ).fetchone()
    if srs_id in (0, -1) or found is None or str(found[0]).upper() != "EPSG" or found[1] != srs_id:
        return False  # the "undefined" systems (how GDAL reports them depends on its version), WKT, a mismatch
    if str(found[2]).strip().lower() == "undefined":
        return False
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        CRS.from_epsg(srs_id)
    except CRSError:
        return False
    return f"EPSG:{srs_id}"


def _kind(declared: str):
    if declared in INTEGER_TYPES:
        return int
    if declared in FLOAT_TYPES:
        return float
    if TEXT_TYPE.match(declared):
        return str
    return None


def _plain_wkbs(blobs):
    """The WKB in each blob (None for NULL), or None when any blob is not a plain polygon's.

    A plain WKB is what GDAL writes back out unchanged: little-endian 2D Polygon or
    MultiPolygon of little-endian 2D Polygons, ending where the geometry ends (GDAL drops
    trailing bytes, and gives NULL for a geometry it cannot parse).
    """
    found = []
    for blob in blobs:
        if blob is None:
            found.append(None)
            continue
        wkb = _blob_wkb(blob)
        if wkb is None or _plain_end(wkb) != len(wkb):
            return None
        found.append(wkb)
    return found


def _blob_wkb(blob):
    """The WKB behind a standard GeoPackage blob's header; None for any other value (SQLite keeps any type)."""
    if not isinstance(blob, bytes):
        return None
    if blob[:4] == COMMON_HEADER:
        return blob[40:]
    if len(blob) < 8 or blob[:2] != b"GP" or blob[2] != 0:
        return None
    flags = blob[3]
    envelope = ENVELOPE_BYTES.get((flags >> 1) & 0b111)
    if envelope is None or flags & 0b11110000:  # an invalid envelope; the empty flag, extended or reserved bits
        return None
    return blob[8 + envelope:]


def _plain_end(wkb) -> int:
    """Where a plain (Multi)Polygon WKB ends, or -1 when it is not one."""
    # Most parcels are one ring: a Polygon, or a MultiPolygon of one Polygon (as QGIS writes them).
    if wkb[:9] == ONE_RING_POLYGON:
        return 13 + 16 * int.from_bytes(wkb[9:13], "little") if len(wkb) >= 13 else -1
    if wkb[:18] == ONE_RING_MULTIPOLYGON:
        return 22 + 16 * int.from_bytes(wkb[18:22], "little") if len(wkb) >= 22 else -1
    try:
        if wkb[:5] == POLYGON_START:
            return _polygon_end(wkb, 0)
        if wkb[:5] == MULTIPOLYGON_START:
            (count,), at = struct.unpack_from("<I", wkb, 5), 9
            for _ in range(count):  # each member takes at least 9 bytes, so a huge count stops soon
                if wkb[at:at + 5] != POLYGON_START:
                    return -1
                at = _polygon_end(wkb, at)
            return at
    except struct.error:  # a count that runs past the end
        return -1
    return -1


def _polygon_end(wkb, at: int) -> int:
    (rings,), at = struct.unpack_from("<I", wkb, at + 5), at + 9
    for _ in range(rings):
        (points,) = struct.unpack_from("<I", wkb, at)
        at += 4 + 16 * points
    return at


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
